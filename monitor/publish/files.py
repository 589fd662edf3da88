"""File outputs: JSON lines per UTC day, and Raven selection tables per feed and UTC day.

Files are named after the day of the event (a detection's start, a status change's ``since``),
so a replay writes into the days it replays. Each record is one ``write`` on a file opened for
append, then fsync; a torn last line left by a crash is ended before the next record so it
cannot corrupt it. Only ``closed`` detections go to Raven tables (they have final numbers);
Raven times are seconds from 00:00:00 UTC of the file's day, with absolute UTC in extra columns.
The Raven rows and their columns are ``monitor.publish.raven``'s.

A full disk (``ENOSPC``, ``EDQUOT``) loses nothing: a record that cannot be written is cut off
again (the file ends with its last complete line), kept in memory with the ones after it (in
order, at most ``max_pending``) and written every ``retry_s`` until the disk takes it.

Writes are idempotent: a file's ids (``message_id`` for JSON lines, the detection id for Raven)
are read from it the first time it is touched and kept in a small LRU of open indexes, so
replaying the same audio, or a Redis spool redelivery, never adds a second row.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import tempfile
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from monitor.detect.records import Detection, Message
from monitor.detect.wire import encode, wire_moment
from monitor.health.logs import get_logger
from monitor.publish import raven
from monitor.publish.output import OutputUnusable

log = get_logger(__name__)

# Errors that go away when space is freed: the record waits for it.
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


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
    # A full disk: how often the held records are tried again, and how many are held.
    retry_s: float = field(default=1.0, metadata={"gt": 0.0})
    max_pending: int = field(default=10_000, metadata={"min": 1})


class FilesBehind(Exception):
    """The disk has been full for ``max_pending`` records: this one is refused."""


@dataclass
class FileStats:
    written: int = 0  # records written (JSON lines and Raven rows)
    duplicates: int = 0  # records not written because the file already had them
    errors: int = 0  # writes that failed for want of space (retried)
    refused: int = 0  # messages not accepted: ``max_pending`` records already wait


@dataclass
class _FileIndex:
    """What one file already holds: the ids written to it and its data-row count."""

    ids: set[str] = field(default_factory=set)
    rows: int = 0


def event_time(message: Message) -> datetime:
    """The moment that names a message's files, as the message states it."""
    if isinstance(message, Detection):
        return wire_moment(message.summary.start_utc)
    return wire_moment(message.since_utc)


def day_start(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


class FileOutput:
    def __init__(self, settings: FileSettings, name: str = "files") -> None:
        self.name = name
        self.settings = settings
        self.stats = FileStats()
        self._lock = threading.Lock()
        self._indexes: OrderedDict[Path, _FileIndex] = OrderedDict()
        self._pending: deque[Message] = deque()  # waiting for disk space, oldest first
        self._flushing = asyncio.Lock()
        self._retry: asyncio.Task[None] | None = None

    @property
    def duplicates(self) -> int:
        return self.stats.duplicates

    @property
    def spool_depth(self) -> int:
        """Messages held in memory until the disk takes them (reported like a spool)."""
        return len(self._pending)

    def jsonl_path(self, moment: datetime) -> Path:
        return self.settings.directory / "jsonl" / f"{moment:%Y-%m-%d}.jsonl"

    def raven_path(self, feed: str, moment: datetime) -> Path:
        name = f"{feed}.{moment:%Y-%m-%d}.selections.txt"
        return self.settings.directory / "raven" / feed / name

    async def start(self) -> None:
        await asyncio.to_thread(self._check_directory)

    def _check_directory(self) -> None:
        """The folder exists and takes a file, or the daemon refuses to start."""
        directory = self.settings.directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=directory):
                pass
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise OutputUnusable(f"{directory}: cannot write detections here ({reason})") from None

    async def publish(self, message: Message) -> None:
        if len(self._pending) >= self.settings.max_pending:
            self.stats.refused += 1
            raise FilesBehind(f"{len(self._pending)} messages already wait for disk space")
        self._pending.append(message)
        await self._flush()

    async def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retry
            self._retry = None
        await self._flush()
        if self._pending:
            log.error(
                "disk still full at close: messages not written",
                output=self.name,
                lost=len(self._pending),
                first_message_id=self._pending[0].message_id,
            )

    async def _flush(self) -> None:
        """Write what waits, in order; at the first full-disk error keep the rest for later."""
        async with self._flushing:
            while self._pending:
                message = self._pending[0]
                try:
                    await asyncio.to_thread(self._write, message)
                except OSError as error:
                    if error.errno not in _NO_SPACE:
                        self._pending.popleft()
                        raise  # the fan-out logs and counts it
                    self.stats.errors += 1
                    if self._retry is None or self._retry.done():
                        log.error(
                            "disk full: holding messages until it has space",
                            output=self.name,
                            waiting=len(self._pending),
                            message_id=message.message_id,
                            error=str(error),
                        )
                        self._retry = asyncio.create_task(
                            self._retry_later(), name=f"{self.name}-retry"
                        )
                    return
                self._pending.popleft()

    async def _retry_later(self) -> None:
        while self._pending:
            await asyncio.sleep(self.settings.retry_s)
            await self._flush()
        log.info("disk has space again: held messages written", output=self.name)

    def _write(self, message: Message) -> None:
        moment = event_time(message)
        with self._lock:
            if self.settings.jsonl:
                path = self.jsonl_path(moment)
                index = self._index(path, _read_jsonl_ids)
                if message.message_id in index.ids:
                    self.stats.duplicates += 1
                else:
                    line = json.dumps(encode(message), separators=(",", ":")) + "\n"
                    self._append(path, line, header=None)
                    index.ids.add(message.message_id)
                    index.rows += 1
            if (
                self.settings.raven
                and isinstance(message, Detection)
                and message.status == "closed"
            ):
                self._write_raven(message, moment)

    def _write_raven(self, detection: Detection, start: datetime) -> None:
        summary = detection.summary
        wire = encode(detection)
        path = self.raven_path(summary.feed.node, start)
        index = self._index(path, _read_raven_ids)
        if summary.id in index.ids:
            self.stats.duplicates += 1
            return
        selection = index.rows + 1
        band_hz = raven.band(wire, self.settings.low_freq_hz, self.settings.high_freq_hz)
        row = raven.raven_row(selection, wire, day_start(start), band_hz)
        self._append(path, row, header=raven.HEADER)
        index.ids.add(summary.id)
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
            try:
                _write_all(fd, (prefix + text).encode())
                if self.settings.fsync:
                    os.fsync(fd)
            except OSError:
                # Never leave part of a record: the file ends where it ended before.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
            self.stats.written += 1
        finally:
            os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written (a full disk writes only part of it, then
    raises)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


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
    column = raven.RAVEN_COLUMNS.index("Detection Id")
    for line in lines[1:]:
        cells = line.split("\t")
        index.rows += 1
        if len(cells) > column:
            index.ids.add(cells[column])
    return index
