"""Step 2: cut the fetched recordings into labelled clips and a manifest.

Per recording: call clips (``clip_seconds`` centred on each annotation, clamped to the file),
noise clips (at least ``noise_margin_s`` from any annotation) and, optionally, the sliding-window
set (kept when one call type covers ``window_min_cover``…``window_max_cover`` of the window).
Recordings — not clips — are split into train/val/test. One recording is one unit of work.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from training.audio import load_mono, save_mono
from training.cli_support import step_command
from training.fetch_catalogue import ANNOTATION_DIR, AUDIO_DIR
from training.manifest import NOISE, Clip, read_manifest, write_manifest
from training.raven import Annotation, is_table, read_selections, recording_of
from training.result_files import atomic_write_json
from training.splits import split_recordings
from training.steprun import StepLog, StepRun

AUDIO_SUFFIXES = (".flac", ".wav")


@dataclass(frozen=True)
class PrepareSettings:
    sample_rate: int = 44100
    clip_format: str = "flac"  # flac or wav
    clip_seconds: float = 5.0
    noise_margin_s: float = 5.0
    noise_per_call: float = 1.0  # noise clips per call clip, per recording
    min_noise_per_recording: int = 2
    noise_grid_s: float = 0.5
    make_windows: bool = True
    window_step_s: float = 1.0
    window_min_cover: float = 0.1
    window_max_cover: float = 0.8
    min_class_count: int = 5  # call types with fewer annotations become other_label
    other_label: str = "other_call"
    label_column: str = "Call Type"
    unmatched_tables: str = "error"  # error | skip: a table whose audio file is not there
    split_fractions: tuple[float, ...] = (0.7, 0.15, 0.15)
    seed: int = 1234


@dataclass(frozen=True)
class Recording:
    name: str
    audio: Path
    table: Path
    annotations: tuple[Annotation, ...]


def find_recordings(source: Path, settings: PrepareSettings, log: StepLog) -> list[Recording]:
    audio_dir = source / AUDIO_DIR if (source / AUDIO_DIR).is_dir() else source
    table_dir = source / ANNOTATION_DIR if (source / ANNOTATION_DIR).is_dir() else source
    audio: dict[str, Path] = {}
    for path in sorted(audio_dir.iterdir()):
        if path.is_file() and path.suffix.lower() in AUDIO_SUFFIXES:
            if path.stem in audio:
                raise ValueError(f"two audio files for one recording: {audio[path.stem]}, {path}")
            audio[path.stem] = path
    tables = sorted(path for path in table_dir.iterdir() if path.is_file() and is_table(path))
    if not tables:
        raise ValueError(f"no Raven selection tables (*.selections.txt) in {table_dir}")
    recordings: list[Recording] = []
    unmatched = []
    for table in tables:
        name = recording_of(table)
        if name not in audio:
            unmatched.append(table.name)
            continue
        twin = next((r.table.name for r in recordings if r.name == name), None)
        if twin is not None:
            raise ValueError(
                f"two selection tables for recording {name}: {twin}, {table.name}; "
                "keep one (or merge them) per audio file"
            )
        annotations = tuple(read_selections(table, settings.label_column))
        recordings.append(Recording(name, audio[name], table, annotations))
    if unmatched and settings.unmatched_tables == "skip":
        log("skipped_tables_without_audio", tables=unmatched)
    elif unmatched:
        raise ValueError(
            "selection tables without an audio file of the same name (<name>.Table.1.selections"
            f".txt annotates <name>.flac) in {audio_dir}: {unmatched}; audio files: {sorted(audio)}"
            ' (set [prepare] unmatched_tables = "skip" to go on without them)'
        )
    for name in sorted(set(audio) - {r.name for r in recordings}):
        log("skipped_unannotated", recording=name)
    if not recordings:
        raise ValueError(f"no selection table in {table_dir} matches an audio file in {audio_dir}")
    return recordings


def label_map(
    recordings: list[Recording], settings: PrepareSettings
) -> tuple[dict[str, str], Counter[str]]:
    counts = Counter(a.label for r in recordings for a in r.annotations if a.label)
    mapping = {
        label: label if count >= settings.min_class_count else settings.other_label
        for label, count in counts.items()
    }
    return mapping, counts


def centred_clip(annotation: Annotation, length_s: float, duration_s: float) -> tuple[float, float]:
    centre = (annotation.begin_s + annotation.end_s) / 2
    start = min(max(0.0, centre - length_s / 2), max(0.0, duration_s - length_s))
    return start, min(duration_s, start + length_s)


def noise_starts(
    annotations: tuple[Annotation, ...],
    duration_s: float,
    count: int,
    settings: PrepareSettings,
    seed: int,
) -> list[float]:
    """Non-overlapping windows, each ≥ margin from every annotation, drawn from a grid."""
    length, margin = settings.clip_seconds, settings.noise_margin_s
    grid = np.arange(0.0, duration_s - length + 1e-9, settings.noise_grid_s)
    free = [
        float(start)
        for start in grid
        if all(
            start + length <= a.begin_s - margin or start >= a.end_s + margin for a in annotations
        )
    ]
    random.Random(seed).shuffle(free)
    chosen: list[float] = []
    for start in free:
        if len(chosen) == count:
            break
        if all(abs(start - other) >= length for other in chosen):
            chosen.append(start)
    return sorted(chosen)


def _covered(intervals: list[tuple[float, float]], start: float, end: float) -> float:
    clipped = sorted((max(a, start), min(b, end)) for a, b in intervals if b > start and a < end)
    total, reach = 0.0, start
    for a, b in clipped:
        a = max(a, reach)
        if b > a:
            total += b - a
            reach = b
    return total


def window_clips(
    annotations: tuple[Annotation, ...],
    mapping: dict[str, str],
    duration_s: float,
    settings: PrepareSettings,
) -> list[tuple[float, float, str, float]]:
    """(start, end, call type, coverage) of windows where one call type covers the set range."""
    by_label: dict[str, list[tuple[float, float]]] = {}
    for a in annotations:
        if a.label:
            by_label.setdefault(mapping[a.label], []).append((a.begin_s, a.end_s))
    length = settings.clip_seconds
    kept = []
    for start in np.arange(0.0, duration_s - length + 1e-9, settings.window_step_s):
        start = float(start)
        cover = {
            label: _covered(spans, start, start + length) / length
            for label, spans in by_label.items()
        }
        if not cover:
            break
        label, best = max(cover.items(), key=lambda item: (item[1], item[0]))
        if settings.window_min_cover <= best <= settings.window_max_cover:
            kept.append((start, start + length, label, best))
    return kept


def cut_recording(
    log: StepLog,
    recording: Recording,
    split: str,
    mapping: dict[str, str],
    settings: PrepareSettings,
    out: Path,
    seed: int,
) -> list[Clip]:
    rate = settings.sample_rate
    samples = load_mono(recording.audio, rate)
    duration = len(samples) / rate
    folder = out / "clips" / recording.name
    clips: list[Clip] = []

    skipped: list[str] = []

    def add(kind: str, index: int, start: float, end: float, label: str) -> None:
        first, last = round(start * rate), min(len(samples), round(end * rate))
        if last - first < rate // 10:  # an annotation past the end of the audio
            skipped.append(f"{kind}_{index:05d}")
            return
        path = folder / f"{kind}_{index:05d}.{settings.clip_format}"
        save_mono(path, samples[first:last], rate)
        clips.append(
            Clip(
                clip_id=f"{recording.name}/{kind}_{index:05d}",
                path=path,
                recording=recording.name,
                source_file=recording.audio.name,
                start_s=first / rate,
                end_s=last / rate,
                label=label,
                binary=0 if label == NOISE else 1,
                kind=kind,
                split=split,
                sample_rate=rate,
            )
        )

    calls = [a for a in recording.annotations if a.label]
    for index, annotation in enumerate(calls):
        add(
            "call",
            index,
            *centred_clip(annotation, settings.clip_seconds, duration),
            mapping[annotation.label],
        )
    wanted = max(settings.min_noise_per_recording, round(settings.noise_per_call * len(calls)))
    for index, start in enumerate(
        noise_starts(recording.annotations, duration, wanted, settings, seed)
    ):
        add("noise", index, start, start + settings.clip_seconds, NOISE)
    if settings.make_windows:
        for index, (start, end, label, _) in enumerate(
            window_clips(recording.annotations, mapping, duration, settings)
        ):
            add("window", index, start, end, label)
    if skipped:
        log("clips_outside_audio", recording=recording.name, duration_s=duration, clips=skipped)
    return clips


def run_prepare(
    settings: PrepareSettings, out: Path, source: Path, *, max_units: int | None = None
) -> Path:
    if settings.clip_format not in ("flac", "wav"):
        raise ValueError(f"[prepare] clip_format must be flac or wav, not {settings.clip_format!r}")
    if settings.unmatched_tables not in ("error", "skip"):
        raise ValueError(
            f"[prepare] unmatched_tables must be error or skip, not {settings.unmatched_tables!r}"
        )
    run = StepRun("prepare", out, settings, inputs={"source": source}, max_units=max_units)
    recordings = find_recordings(source, settings, run.log)
    mapping, counts = label_map(recordings, settings)
    splits = split_recordings([r.name for r in recordings], settings.split_fractions, settings.seed)
    parts = out / "parts"
    for number, recording in enumerate(tqdm(recordings, desc="prepare", unit="recording")):
        if run.progress.done(recording.name):
            continue
        clips = cut_recording(
            run.log,
            recording,
            splits[recording.name],
            mapping,
            settings,
            out,
            settings.seed + number,
        )
        write_manifest(parts / f"{recording.name}.csv", clips)
        run.log(
            "recording_done",
            recording=recording.name,
            split=splits[recording.name],
            clips=len(clips),
        )
        run.unit_done(recording.name, clips=len(clips))
    clips = [clip for r in recordings for clip in read_manifest(parts / f"{r.name}.csv")]
    write_manifest(out / "manifest.csv", clips)
    summary = {
        "recordings": {r.name: splits[r.name] for r in recordings},
        "raw_label_counts": dict(Counter(a.raw_label for r in recordings for a in r.annotations)),
        "clean_label_counts": dict(counts),
        "label_map": mapping,
        "clips": dict(Counter(f"{c.split}/{c.kind}" for c in clips)),
        "unlabelled_annotations": sum(1 for r in recordings for a in r.annotations if not a.label),
    }
    atomic_write_json(out / "labels.json", summary)
    run.finish(clips=len(clips), recordings=len(recordings))
    return out / "manifest.csv"


COMMAND = step_command("prepare", PrepareSettings, run_prepare)
main = COMMAND.main


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["PrepareSettings", "run_prepare"]
