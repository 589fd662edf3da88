"""File outputs: JSON lines per UTC day, and Raven selection tables per feed and UTC day.

Files are named after the day of the event (a detection's start, a status change's ``since``),
so a replay writes into the days it replays. Each record is one ``write`` on a file opened for
append, then fsync; a torn last line left by a crash is ended before the next record so it
cannot corrupt it. Only ``closed`` detections go to Raven tables (they have final numbers);
Raven times are seconds from 00:00:00 UTC of the file's day, with absolute UTC in extra columns.

Writes are idempotent: a file's ids (``message_id`` for JSON lines, the detection id for Raven)
are read from it the first time it is touched and kept in a small LRU of open indexes, so
replaying the same audio, or a Redis spool redelivery, never adds a second row.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.timebase import format_utc, parse_utc

RAVEN_COLUMNS = (
    "Selection",
    "View",
    "Channel",
    "Begin Time (s)",
    "End Time (s)",
    "Low Freq (Hz)",
    "High Freq (Hz)",
    "Label",
    "Score Max",
    "Score Mean",
    "Positive Windows",
    "Begin UTC",
    "End UTC",
    "Detection Id",
)


@dataclass(frozen=True)
class FileSettings:
    directory: Path = Path("var/detections")
    jsonl: bool = True
    raven: bool = True
    # Detections carry no frequency band; Raven boxes span the classifier's band.
    low_freq_hz: float = 0.0
    high_freq_hz: float = 8000.0
    fsync: bool = True
    # How many files' id indexes stay in memory (a replay over many days rescans on return).
    index_files: int = 64


@dataclass
class _FileIndex:
    """What one file already holds: the ids written to it and its data-row count."""

    ids: set[str] = field(default_factory=set)
    rows: int = 0


def event_time(message: dict[str, Any]) -> datetime:
    if message.get("kind") == "detection":
        return parse_utc(message["start_utc"])
    if message.get("kind") == "feed_status":
        return parse_utc(message["since_utc"])
    raise ValueError(f"file output cannot place message kind {message.get('kind')!r}")


def day_start(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


class FileOutput:
    def __init__(self, settings: FileSettings, name: str = "files") -> None:
        self.name = name
        self.settings = settings
        self._lock = threading.Lock()
        self._indexes: OrderedDict[Path, _FileIndex] = OrderedDict()
        self.duplicates = 0  # records not written because the file already had them

    def jsonl_path(self, moment: datetime) -> Path:
        return self.settings.directory / "jsonl" / f"{moment:%Y-%m-%d}.jsonl"

    def raven_path(self, feed: str, moment: datetime) -> Path:
        name = f"{feed}.{moment:%Y-%m-%d}.selections.txt"
        return self.settings.directory / "raven" / feed / name

    async def start(self) -> None:
        await asyncio.to_thread(self.settings.directory.mkdir, parents=True, exist_ok=True)

    async def publish(self, message: dict[str, Any]) -> None:
        await asyncio.to_thread(self._write, message)

    async def close(self) -> None:
        return None

    def _write(self, message: dict[str, Any]) -> None:
        moment = event_time(message)
        with self._lock:
            if self.settings.jsonl:
                path = self.jsonl_path(moment)
                index = self._index(path, _read_jsonl_ids)
                ident = str(message["message_id"])
                if ident in index.ids:
                    self.duplicates += 1
                else:
                    line = json.dumps(message, separators=(",", ":")) + "\n"
                    self._append(path, line, header=None)
                    index.ids.add(ident)
                    index.rows += 1
            if (
                self.settings.raven
                and message.get("kind") == "detection"
                and message.get("status") == "closed"
            ):
                self._write_raven(message, moment)

    def _write_raven(self, message: dict[str, Any], start: datetime) -> None:
        feed = message["feed"]["node"]
        path = self.raven_path(feed, start)
        index = self._index(path, _read_raven_ids)
        if message["id"] in index.ids:
            self.duplicates += 1
            return
        selection = index.rows + 1
        origin = day_start(start)
        end = parse_utc(message["end_utc"])

        def seconds(moment: datetime) -> str:
            return f"{(moment - origin) / timedelta(seconds=1):.3f}"

        row = [
            str(selection),
            "Spectrogram 1",
            "1",
            seconds(start),
            seconds(end),
            f"{self.settings.low_freq_hz:g}",
            f"{self.settings.high_freq_hz:g}",
            message["label"],
            f"{message['score']['max']:.4f}",
            f"{message['score']['mean']:.4f}",
            str(message["positive_window_count"]),
            format_utc(start),
            format_utc(end),
            message["id"],
        ]
        self._append(path, "\t".join(row) + "\n", header="\t".join(RAVEN_COLUMNS) + "\n")
        index.ids.add(message["id"])
        index.rows = selection

    def _index(self, path: Path, read: Callable[[Path], _FileIndex]) -> _FileIndex:
        index = self._indexes.get(path)
        if index is None:
            index = read(path)
            self._indexes[path] = index
            while len(self._indexes) > max(1, self.settings.index_files):
                self._indexes.popitem(last=False)
        else:
            self._indexes.move_to_end(path)
        return index

    def _append(self, path: Path, text: str, header: str | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            prefix = ""
            if size == 0 and header is not None:
                prefix = header
            elif size > 0 and not _ends_with_newline(path, size):
                prefix = "\n"  # end a torn line from a crash
            os.write(fd, (prefix + text).encode())
            if self.settings.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)


def _ends_with_newline(path: Path, size: int) -> bool:
    with path.open("rb") as handle:
        handle.seek(size - 1)
        return handle.read(1) == b"\n"


def _read_jsonl_ids(path: Path) -> _FileIndex:
    """The message ids already in a JSON-lines file (a torn line from a crash is skipped)."""
    index = _FileIndex()
    if not path.exists():
        return index
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "message_id" in record:
                index.ids.add(str(record["message_id"]))
                index.rows += 1
    return index


def _read_raven_ids(path: Path) -> _FileIndex:
    """Detection ids and data rows already in a Raven table (Selection numbers continue)."""
    index = _FileIndex()
    if not path.exists():
        return index
    with path.open(encoding="utf-8", errors="replace") as handle:
        lines = [line.rstrip("\n") for line in handle if line.strip()]
    column = RAVEN_COLUMNS.index("Detection Id")
    for line in lines[1:]:
        cells = line.split("\t")
        index.rows += 1
        if len(cells) > column:
            index.ids.add(cells[column])
    return index
