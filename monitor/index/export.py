"""``hydromon export``: closed detections from the index, one row each, reviews included.

- ``jsonl``: the API's DETECTION per line; ``csv``: flattened columns (``CSV_COLUMNS``);
- ``raven``: Raven tables per feed and UTC day (``<feed>.<day>.selections.txt``), the rows of the
  files output;
- ``training``: the reviewed detections as a dataset ``hydromon train prepare`` reads as it is:
  ``audio/<id>.flac`` (the detection's FLAC clip) and ``annotations/<id>.Table.1.selections.txt``
  (times within the clip). A confirmed detection's table holds its box, labelled; a rejected
  one's table is empty, so prepare cuts only noise clips from it: the reviewers' false alarms
  become hard negatives. Unreviewed, ``unsure`` and media-less detections are left out (counted).
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from models.fileio import atomic_path, atomic_write_text
from monitor.index.store import DetectionIndex, DetectionQuery
from monitor.media.layout import media_path
from monitor.publish import raven
from monitor.timebase import parse_utc

FORMATS = ("csv", "jsonl", "raven", "training")
CSV_COLUMNS = (
    "id",
    "feed",
    "feed_name",
    "label",
    "start_utc",
    "end_utc",
    "duration_s",
    "score_max",
    "score_mean",
    "positive_window_count",
    "close_reason",
    "contains_gap",
    "low_freq_hz",
    "high_freq_hz",
    "audio",
    "audio_archive",
    "spectrogram",
    "verdict",
    "note",
    "reviewed_utc",
)


@dataclass
class ExportResult:
    written: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


def closed(index: DetectionIndex, query: DetectionQuery) -> Iterator[dict[str, Any]]:
    return index.iter_detections(replace(query, status="closed"))


def csv_row(detection: dict[str, Any]) -> dict[str, Any]:
    media = detection.get("media") or {}
    review = detection.get("review") or {}
    return {
        "id": detection["id"],
        "feed": detection["feed"]["node"],
        "feed_name": detection["feed"]["display_name"],
        "label": detection["label"],
        "start_utc": detection["start_utc"],
        "end_utc": detection["end_utc"],
        "duration_s": detection["duration_s"],
        "score_max": detection["score"]["max"],
        "score_mean": detection["score"]["mean"],
        "positive_window_count": detection["positive_window_count"],
        "close_reason": detection["close_reason"],
        "contains_gap": detection["contains_gap"],
        "low_freq_hz": detection.get("low_freq_hz"),
        "high_freq_hz": detection.get("high_freq_hz"),
        "audio": media.get("audio"),
        "audio_archive": media.get("audio_archive"),
        "spectrogram": media.get("spectrogram"),
        "verdict": review.get("verdict"),
        "note": review.get("note"),
        "reviewed_utc": review.get("reviewed_utc"),
    }


def write_csv(detections: Iterable[dict[str, Any]], out: TextIO) -> int:
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for detection in detections:
        writer.writerow(csv_row(detection))
        count += 1
    return count


def write_jsonl(detections: Iterable[dict[str, Any]], out: TextIO) -> int:
    count = 0
    for detection in detections:
        out.write(json.dumps(detection, separators=(",", ":")) + "\n")
        count += 1
    return count


def write_raven(
    detections: Iterable[dict[str, Any]], directory: Path, band_hz: tuple[float, float]
) -> ExportResult:
    """One table per feed and UTC day, times from 00:00 UTC of that day."""
    tables: dict[Path, io.StringIO] = {}
    rows: dict[Path, int] = {}
    result = ExportResult()
    for detection in detections:
        start = parse_utc(detection["start_utc"])
        origin = start.replace(hour=0, minute=0, second=0, microsecond=0)
        feed = detection["feed"]["node"]
        path = directory / f"{feed}.{start:%Y-%m-%d}.selections.txt"
        if path not in tables:
            tables[path] = io.StringIO()
            tables[path].write(raven.HEADER)
            rows[path] = 0
        rows[path] += 1
        band = raven.band(detection, *band_hz)
        tables[path].write(raven.raven_row(rows[path], detection, origin, band))
        result.written += 1
    for path, text in tables.items():
        atomic_write_text(path, text.getvalue())
        result.files.append(path)
    return result


def write_training(
    detections: Iterable[dict[str, Any]],
    directory: Path,
    media_dir: Path,
    band_hz: tuple[float, float],
) -> ExportResult:
    """Confirmed and rejected detections with their clips, as prepare's source folder."""
    audio_dir, table_dir = directory / "audio", directory / "annotations"
    result = ExportResult()
    for detection in detections:
        verdict = (detection.get("review") or {}).get("verdict")
        if verdict not in ("confirmed", "rejected"):
            result.skip("not reviewed" if verdict is None else verdict)
            continue
        media = detection.get("media")
        source = None if not media else media_path(media_dir, media["audio_archive"])
        if source is None or not source.is_file():
            result.skip("no clip")
            continue
        name = detection["id"]
        with atomic_path(audio_dir / f"{name}.flac") as temporary:
            shutil.copyfile(source, temporary)
        table = raven.HEADER
        if verdict == "confirmed":
            band = raven.band(detection, *band_hz)
            table += raven.raven_row(1, detection, parse_utc(detection["start_utc"]), band,
                                     times_in_clip=True)  # fmt: skip
        path = table_dir / f"{name}.Table.1.selections.txt"
        atomic_write_text(path, table)
        result.files += [audio_dir / f"{name}.flac", path]
        result.written += 1
    return result
