"""The media folder's retention policy: at most ``max_gb`` (and, when set, nothing older than
``max_age_days``), oldest detections removed first.

The folder is scanned once at start; afterwards the policy keeps its own list of what it wrote
(``<feed>/<day>/<id>.*``, oldest first: days, then UUIDv7 ids, sort by time), so enforcing it
after each write costs no directory walk. A detection's files go together."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path


@dataclass(slots=True)
class _Entry:
    day: str
    paths: list[Path] = field(default_factory=list)
    size: int = 0


class Retention:
    def __init__(self, directory: Path, max_bytes: int, max_age: timedelta | None) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.total_bytes = 0
        self._entries: OrderedDict[tuple[str, str, str], _Entry] = OrderedDict()

    def scan(self) -> None:
        """What is on disk now (files left by earlier runs count against the budget)."""
        found: dict[tuple[str, str, str], _Entry] = {}
        for path in self.directory.glob("*/*/*"):
            if not path.is_file() or path.name.startswith("."):
                continue
            detection_id = path.name.split(".", 1)[0]
            key = (path.parent.name, detection_id, path.parent.parent.name)
            entry = found.setdefault(key, _Entry(path.parent.name))
            entry.paths.append(path)
            entry.size += path.stat().st_size
        self._entries = OrderedDict(sorted(found.items()))
        self.total_bytes = sum(entry.size for entry in self._entries.values())

    def add(self, feed: str, day: str, detection_id: str, paths: list[Path]) -> None:
        key = (day, detection_id, feed)
        entry = self._entries.pop(key, None) or _Entry(day)
        self.total_bytes -= entry.size
        entry.paths = sorted(set(entry.paths) | set(paths))
        entry.size = sum(path.stat().st_size for path in entry.paths if path.exists())
        self.total_bytes += entry.size
        self._entries[key] = entry
        if len(self._entries) > 1 and key < next(reversed(self._entries)):
            self._entries = OrderedDict(sorted(self._entries.items()))

    def enforce(self, now: datetime) -> list[str]:
        """Remove the oldest detections until the policy holds; their ids."""
        oldest_day = None if self.max_age is None else f"{now - self.max_age:%Y-%m-%d}"
        removed: list[str] = []
        while len(self._entries) > 1:  # never the detection just written
            (day, detection_id, feed), entry = next(iter(self._entries.items()))
            too_old = oldest_day is not None and day < oldest_day
            if not too_old and self.total_bytes <= self.max_bytes:
                break
            self._entries.popitem(last=False)
            self.total_bytes -= entry.size
            for path in entry.paths:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            with contextlib.suppress(OSError):  # an emptied day folder goes too
                (self.directory / feed / day).rmdir()
            removed.append(detection_id)
        return removed

    def __len__(self) -> int:
        return len(self._entries)
