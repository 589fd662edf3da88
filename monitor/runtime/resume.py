"""Per-feed resume points, persisted atomically so a restart loses no audio and repeats nothing.

A feed's resume point is the first segment to read again (``folder_epoch``, ``number``) and the
start of the first window not yet scored (``next_window_utc``). Reading restarts at that segment
and every window that starts before ``next_window_utc`` is dropped, so the windows that straddle
the last processed segment are neither lost nor scored twice.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from models.fileio import atomic_write_text
from monitor.health.logs import get_logger
from monitor.timebase import format_utc, parse_utc, require_aware

log = get_logger(__name__)

STATE_VERSION = 1
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class StateError(ValueError):
    """A state file exists but cannot be used (corrupt, wrong version, wrong feed)."""


@dataclass(frozen=True, slots=True)
class StateSettings:
    dir: Path | None = None  # None: no persistence (start from "now" every time)
    # at most one write per feed per interval (replay is fast)
    min_write_interval_s: float = field(default=1.0, metadata={"min": 0.0})


@dataclass(frozen=True, slots=True)
class ResumePoint:
    feed: str
    folder_epoch: int
    number: int  # first segment to read again
    next_window_utc: datetime  # windows starting before this were already scored
    updated_utc: datetime

    def to_json(self) -> dict[str, object]:
        return {
            "version": STATE_VERSION,
            "feed": self.feed,
            "folder_epoch": self.folder_epoch,
            "number": self.number,
            "next_window_utc": format_utc(self.next_window_utc),
            "updated_utc": format_utc(self.updated_utc),
        }

    @classmethod
    def from_json(cls, data: object, *, source: str) -> ResumePoint:
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise StateError(f"{source}: not a hydromon state file of version {STATE_VERSION}")
        try:
            return cls(
                feed=str(data["feed"]),
                folder_epoch=int(data["folder_epoch"]),
                number=int(data["number"]),
                next_window_utc=parse_utc(str(data["next_window_utc"])),
                updated_utc=parse_utc(str(data["updated_utc"])),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise StateError(f"{source}: bad state entry ({error})") from error


def state_path(directory: Path, scope: str, feed: str) -> Path:
    """One file per scope (``live`` or a replay range) and feed, with a file-system-safe name."""
    return directory / f"{_SAFE.sub('_', scope)}--{_SAFE.sub('_', feed)}.json"


def load_resume_point(path: Path, feed: str) -> ResumePoint | None:
    """The saved point, ``None`` when there is none; a damaged file is an error, not a restart
    from scratch (which would silently skip or repeat audio)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise StateError(
            f"{path}: corrupt state file ({error}); move it away to start over"
        ) from error
    point = ResumePoint.from_json(data, source=str(path))
    if point.feed != feed:
        raise StateError(f"{path}: holds feed {point.feed!r}, expected {feed!r}")
    return point


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one rename, fsynced (file and directory)."""
    atomic_write_text(path, text, durable=True)


# A failed write (full or read-only disk) is tried again after at least this long.
RETRY_S = 1.0

OnWriteError = Callable[[str, OSError], None]


class FeedStateFile:
    """Saves one feed's resume point, throttled, off the event loop.

    A write that fails (``OSError``: a full or read-only state disk) never stops the feed: the
    point stays pending, the error is logged and handed to ``on_error`` (the daemon reports it on
    /status and in the metrics), and the write is retried until it succeeds. With
    ``forget_when_complete`` (a replay) a source that ran to its end removes the file instead.
    """

    def __init__(
        self,
        path: Path,
        feed: str,
        min_interval_s: float = 1.0,
        *,
        forget_when_complete: bool = False,
        on_error: OnWriteError | None = None,
    ) -> None:
        self.path = path
        self.feed = feed
        self.min_interval_s = min_interval_s
        self.forget_when_complete = forget_when_complete
        self.on_error = on_error
        self.failures = 0  # writes that failed
        self.error: str | None = None  # the last write error, until a write succeeds again
        self._pending: ResumePoint | None = None
        self._last_attempt = float("-inf")
        self._lock = asyncio.Lock()
        self._later: asyncio.Task[None] | None = None

    @property
    def pending(self) -> ResumePoint | None:
        """The point not yet on disk (None when the file is up to date)."""
        return self._pending

    def load(self) -> ResumePoint | None:
        return load_resume_point(self.path, self.feed)

    async def save(self, point: ResumePoint, *, force: bool = False) -> None:
        require_aware(point.next_window_utc)
        self._pending = point
        wait = self.min_interval_s - (time.monotonic() - self._last_attempt)
        if not force and wait > 0:
            # Written when the interval is over, even if no newer point comes (a live feed
            # waiting for its next segment must not leave its last point unsaved).
            self._schedule(wait)
            return
        await self._write()

    async def close(self, point: ResumePoint | None, *, complete: bool) -> None:
        """The feed stops: save ``point`` now, or forget it when a replay range is complete."""
        if complete and self.forget_when_complete:
            await self.discard()
            log.info("range complete: resume point removed", feed=self.feed)
        elif point is not None:
            await self.save(point, force=True)
        self._cancel_later()  # nobody is left to retry a failed write

    def _schedule(self, delay: float) -> None:
        if self._later is None or self._later.done():
            self._later = asyncio.get_running_loop().create_task(self._write_after(delay))

    def _cancel_later(self) -> None:
        later, self._later = self._later, None
        if later is not None and later is not asyncio.current_task():
            later.cancel()

    async def _write_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._write()

    async def _write(self) -> None:
        try:
            await self.flush()
        except OSError as error:
            self.failures += 1
            self.error = f"{type(error).__name__}: {error}"
            retry_s = max(self.min_interval_s, RETRY_S)
            log.error(
                "cannot save the resume point: kept, retrying",
                feed=self.feed,
                path=str(self.path),
                error=self.error,
                retry_in_s=retry_s,
            )
            if self.on_error is not None:
                self.on_error(self.feed, error)
            self._schedule(retry_s)
            return
        if self.error is not None:
            log.info("resume point saved again", feed=self.feed, failed_writes=self.failures)
            self.error = None

    async def flush(self) -> None:
        """Write the pending point now (also cancels a scheduled write); raises what the write
        raised, the point still pending."""
        self._cancel_later()
        async with self._lock:
            point, self._pending = self._pending, None
            if point is None:
                return
            text = json.dumps(point.to_json(), indent=2) + "\n"
            self._last_attempt = time.monotonic()
            try:
                await asyncio.to_thread(write_atomically, self.path, text)
            except BaseException:
                if self._pending is None:  # not replaced by a newer point meanwhile
                    self._pending = point
                raise

    async def discard(self) -> None:
        """Forget the resume point (a finished replay): no pending write, no file."""
        self._cancel_later()
        async with self._lock:
            self._pending = None
            try:
                await asyncio.to_thread(self.path.unlink, missing_ok=True)
            except OSError as error:
                # Harmless: a later replay of this range finds the file and has nothing to do.
                log.error("cannot remove the resume point", feed=self.feed, error=str(error))
