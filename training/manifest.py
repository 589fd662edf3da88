"""The clip manifest: one CSV row per clip, paths stored relative to the manifest's folder."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from training.result_files import atomic_path

NOISE = "noise"
KINDS = ("call", "noise", "window")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Clip:
    clip_id: str
    path: Path  # absolute once read
    recording: str
    source_file: str
    start_s: float
    end_s: float
    label: str  # call type, or "noise"
    binary: int  # 1 = humpback call, 0 = noise
    kind: str  # call | noise | window
    split: str  # train | val | test
    sample_rate: int

    def moved(self, path: Path) -> Clip:
        return replace(self, path=path)


COLUMNS = [field.name for field in fields(Clip)]


def write_manifest(path: Path, clips: list[Clip]) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a manifest."""
    with atomic_path(path) as temporary, temporary.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        for clip in clips:
            row = {name: getattr(clip, name) for name in COLUMNS}
            row["path"] = Path(os.path.relpath(clip.path, path.parent)).as_posix()
            row["start_s"] = f"{clip.start_s:.6f}"
            row["end_s"] = f"{clip.end_s:.6f}"
            writer.writerow(row)


def manifest_file(path: Path) -> Path:
    """A manifest given as the file or as the folder holding ``manifest.csv``."""
    return path / "manifest.csv" if path.is_dir() else path


def read_manifest(path: Path) -> list[Clip]:
    path = manifest_file(path)
    if not path.is_file():
        raise FileNotFoundError(f"no clip manifest at {path}")
    clips: list[Clip] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path} is not a clip manifest: missing columns {sorted(missing)}")
        for number, row in enumerate(reader, start=2):
            try:
                clips.append(
                    Clip(
                        clip_id=row["clip_id"],
                        path=(path.parent / row["path"]).resolve(),
                        recording=row["recording"],
                        source_file=row["source_file"],
                        start_s=float(row["start_s"]),
                        end_s=float(row["end_s"]),
                        label=row["label"],
                        binary=int(row["binary"]),
                        kind=row["kind"],
                        split=row["split"],
                        sample_rate=int(row["sample_rate"]),
                    )
                )
            except (TypeError, ValueError) as error:
                raise ValueError(f"{path}:{number}: bad row: {error}") from error
    return clips
