"""``hydromon export`` from a real index with real clips: CSV and JSON lines rows with the
verdicts, Raven tables that crowsetta and the training reader open as they are, and a training
dataset that ``hydromon train prepare`` turns into positives (confirmed) and negatives
(rejected) without any change."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import crowsetta
import numpy as np
import pytest

from monitor.cli.main import main
from monitor.detect.records import Detection
from monitor.detect.wire import encode
from monitor.index.store import DetectionIndex, IndexSettings
from monitor.ingest import demo_node
from monitor.media.capture import Clip, ClipAudio
from monitor.media.writer import MediaSettings, MediaWriter
from monitor.publish.files import FileOutput, FileSettings
from monitor.timebase import utc_now
from tests.support.detections import detection_series
from training.manifest import NOISE, read_manifest
from training.prepare import PrepareSettings, run_prepare
from training.raven import read_selections

DATA = Path(__file__).resolve().parents[1] / "data"
RATE = 48_000
CONFIRMED, REJECTED = 6, 3


def real_clip(start_s: float, seconds: float) -> np.ndarray:
    bed = demo_node.background(DATA / "orcasound-hls" / "normal")
    begin = round(start_s * RATE) % (bed.shape[0] - round(seconds * RATE))
    return bed[begin : begin + round(seconds * RATE)].astype(np.float32)


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Detection]]:
    """A config whose index holds 10 closed detections with real clips: 6 confirmed, 3
    rejected, 1 not reviewed."""
    root = tmp_path_factory.mktemp("export")
    config = root / "hydromon.toml"
    config.write_text(
        f'[index]\npath = "{root / "index.sqlite"}"\n[media]\ndirectory = "{root / "media"}"\n'
    )
    index = DetectionIndex(IndexSettings(path=root / "index.sqlite"))
    index.open()
    writer = MediaWriter(MediaSettings(directory=root / "media", margin_s=2.0))
    writer.retention.scan()
    closed = [m for m in detection_series(20) if m.status == "closed"]
    assert len(closed) == CONFIRMED + REJECTED + 1
    with_media = []
    for number, detection in enumerate(closed):
        summary = detection.summary
        seconds = (summary.end_utc - summary.start_utc).total_seconds() + 4.0
        clip = Clip(
            real_clip(number * 7.0, seconds), RATE, summary.start_utc - timedelta(seconds=2)
        )
        media = writer.write_now(detection, ClipAudio(clip))
        detection = dataclasses.replace(detection, media=media)
        index.put(encode(detection))
        with_media.append(detection)
    for number, detection in enumerate(with_media[: CONFIRMED + REJECTED]):
        verdict = "confirmed" if number < CONFIRMED else "rejected"
        index.review(detection.id, verdict, f"reviewer note {number}", utc_now())
    index.close()
    return config, with_media


def test_csv_and_jsonl_rows_carry_the_verdicts(reviewed, tmp_path, capsys) -> None:
    config, detections = reviewed
    out = tmp_path / "d.csv"
    assert main(["export", "--config", str(config), "--format", "csv", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [r["id"] for r in rows] == [d.id for d in detections]  # oldest first
    assert [r["verdict"] for r in rows] == ["confirmed"] * 6 + ["rejected"] * 3 + [""]
    assert rows[0]["audio"].endswith(".ogg") and rows[0]["note"] == "reviewer note 0"
    assert "exported 10 detection(s)" in capsys.readouterr().err

    assert main(["export", "--config", str(config), "--format", "jsonl"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 10 and lines[-1]["review"] is None
    assert lines[0]["review"]["verdict"] == "confirmed"
    since = detections[5].summary.start_utc.isoformat()
    assert main(["export", "--config", str(config), "--format", "jsonl", "--since", since]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5


def test_raven_tables_open_in_crowsetta_and_the_training_reader(reviewed, tmp_path) -> None:
    config, detections = reviewed
    out = tmp_path / "raven"
    assert main(["export", "--config", str(config), "--format", "raven", "--out", str(out)]) == 0
    (table,) = sorted(out.glob("*.selections.txt"))
    check_raven_table(table, detections)

    # the daemon's own files output writes the same tables
    files = FileOutput(FileSettings(directory=tmp_path / "files", fsync=False))

    async def write() -> None:
        await files.start()
        for detection in detections:
            await files.publish(detection)
        await files.close()

    asyncio.run(write())
    daemon_table = files.raven_path("rpi_orcasound_lab", detections[0].summary.start_utc)
    assert daemon_table.read_text() == table.read_text()


def check_raven_table(table: Path, detections: list[Detection]) -> None:
    annotation = crowsetta.formats.bbox.Raven.from_file(table, annot_col="Call Type")
    frame = annotation.df
    assert len(frame) == len(detections)
    assert frame["low_freq_hz"].dtype.kind == "f" and frame["high_freq_hz"].dtype.kind == "f"
    assert list(frame["annotation"]) == ["humpback"] * len(detections)
    day = detections[0].summary.start_utc.replace(hour=0, minute=0, second=0, microsecond=0)
    begin = [(d.summary.start_utc - day).total_seconds() for d in detections]
    np.testing.assert_allclose(frame["begin_time_s"], begin, atol=1e-3)
    rows = list(csv.DictReader(table.read_text().splitlines(), delimiter="\t"))
    assert [r["Begin File"] for r in rows] == [f"{d.id}.flac" for d in detections]
    assert {r["File Offset (s)"] for r in rows} == {"2.000"}
    ours = read_selections(table)  # the training reader, with its default label column
    assert [a.label for a in ours] == ["Humpback"] * len(detections)
    assert [a.begin_s for a in ours] == pytest.approx(begin, abs=1e-3)


def test_the_training_export_is_what_train_prepare_reads(reviewed, tmp_path) -> None:
    config, detections = reviewed
    out = tmp_path / "dataset"
    code = main(["export", "--config", str(config), "--format", "training", "--out", str(out)])
    assert code == 0
    audio = sorted(p.stem for p in (out / "audio").glob("*.flac"))
    assert audio == sorted(d.id for d in detections[: CONFIRMED + REJECTED])
    first = read_selections(out / "annotations" / f"{detections[0].id}.Table.1.selections.txt")
    assert len(first) == 1 and first[0].begin_s == pytest.approx(2.0)
    rejected = out / "annotations" / f"{detections[-2].id}.Table.1.selections.txt"
    assert read_selections(rejected) == []
    crowsetta.formats.bbox.Raven.from_file(
        out / "annotations" / f"{detections[0].id}.Table.1.selections.txt", annot_col="Call Type"
    )

    manifest = run_prepare(PrepareSettings(make_windows=False), tmp_path / "prepared", out)
    clips = read_manifest(manifest)
    positives = {c.recording for c in clips if c.binary == 1}
    negatives = {c.recording for c in clips if c.binary == 0}
    confirmed = {d.id for d in detections[:CONFIRMED]}
    rejected_ids = {d.id for d in detections[CONFIRMED : CONFIRMED + REJECTED]}
    assert positives == confirmed
    assert rejected_ids <= negatives  # the false alarms became negatives
    assert {c.label for c in clips if c.binary == 1} == {"Humpback"}
    assert {c.label for c in clips if c.binary == 0} == {NOISE}


def test_a_missing_index_is_one_line_and_exit_2(tmp_path, capsys) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[index]\npath = "{tmp_path / "none.sqlite"}"\n')
    assert main(["export", "--config", str(config), "--format", "csv"]) == 2
    assert "no index at" in capsys.readouterr().err
