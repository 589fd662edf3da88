"""File outputs: JSON lines per UTC day, and Raven selection tables per feed and UTC day.

Files are named after the day of the event (a detection's start, a status change's ``since``),
so a replay writes into the days it replays. Each record is one ``write`` on a file opened for
append, then fsync; a torn last line left by a crash is ended before the next record so it
cannot corrupt it. Only ``closed`` detections go to Raven tables (they have final numbers);
Raven times are seconds from 00:00:00 UTC of the file's day, with absolute UTC in extra columns.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from dataclasses import dataclass
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
        self._raven_rows: dict[Path, int] = {}

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
                line = json.dumps(message, separators=(",", ":")) + "\n"
                self._append(self.jsonl_path(moment), line, header=None)
            if (
                self.settings.raven
                and message.get("kind") == "detection"
                and message.get("status") == "closed"
            ):
                self._write_raven(message, moment)

    def _write_raven(self, message: dict[str, Any], start: datetime) -> None:
        feed = message["feed"]["node"]
        path = self.raven_path(feed, start)
        if path not in self._raven_rows:
            self._raven_rows[path] = _count_rows(path)
        selection = self._raven_rows[path] + 1
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
        self._raven_rows[path] = selection

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


def _count_rows(path: Path) -> int:
    """Data rows already in a Raven table (a restart continues the Selection numbers)."""
    if not path.exists():
        return 0
    with path.open(encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip()]
    return max(0, len(lines) - 1)
