"""What differs between ``hydromon run`` and ``hydromon replay``, chosen once.

A mode owns the segment source each feed's pipeline opens, the scope of the saved resume points,
the range of windows to score, whether feed-health changes are published, and what a feed that
reached the end of its source does with its resume point. The daemon asks the mode; nothing below
it (pipeline, cutter, state file) knows which mode runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from monitor.ingest.archive import read_archive
from monitor.ingest.live import FollowerObserver, FollowerSettings, SegmentCursor, follow_live
from monitor.ingest.s3 import S3Store
from monitor.ingest.slots import Segment, SegmentGap
from monitor.runtime.cutter import WindowRange
from monitor.runtime.pipeline import SegmentSource
from monitor.runtime.resume import FeedStateFile, OnWriteError, ResumePoint, state_path
from monitor.timebase import format_utc, require_aware, utc_now


class Mode(Protocol):
    @property
    def scope(self) -> str:
        """The state-file scope: one resume point per feed and scope."""
        ...

    @property
    def window_range(self) -> WindowRange: ...

    @property
    def publishes_status(self) -> bool:
        """Whether feed-health changes go out as ``feed_status`` messages."""
        ...

    def source(
        self,
        store: S3Store,
        node: str,
        settings: FollowerSettings,
        margin_s: float,
        observer: FollowerObserver | None,
    ) -> SegmentSource: ...

    def state_file(
        self, directory: Path, node: str, min_interval_s: float, on_error: OnWriteError | None
    ) -> FeedStateFile: ...


@dataclass(frozen=True, slots=True)
class LiveMode:
    """Follow the live streams: from the resume point, else ``backfill`` ago, else now."""

    backfill: timedelta | None = None

    scope = "live"
    window_range = WindowRange()
    publishes_status = True  # feed health is about the live streams

    def source(
        self,
        store: S3Store,
        node: str,
        settings: FollowerSettings,
        margin_s: float,
        observer: FollowerObserver | None,
    ) -> SegmentSource:
        start_at = utc_now() - self.backfill if self.backfill is not None else None

        def open_segments(resume: ResumePoint | None) -> AsyncIterator[Segment | SegmentGap]:
            if resume is not None:
                cursor = SegmentCursor(resume.folder_epoch, resume.number)
                return follow_live(store, node, settings, cursor=cursor, observer=observer)
            return follow_live(store, node, settings, start_at=start_at, observer=observer)

        return open_segments

    def state_file(
        self, directory: Path, node: str, min_interval_s: float, on_error: OnWriteError | None
    ) -> FeedStateFile:
        path = state_path(directory, self.scope, node)
        return FeedStateFile(path, node, min_interval_s, on_error=on_error)


@dataclass(frozen=True, slots=True)
class ReplayMode:
    """Read ``[start, end)`` of each feed from the archive, as fast as it goes."""

    start: datetime
    end: datetime

    publishes_status = False  # a replay is "behind" by design

    def __post_init__(self) -> None:
        # In UTC, so that ``scope`` (and every time derived from the range) reads as UTC.
        object.__setattr__(self, "start", require_aware(self.start))
        object.__setattr__(self, "end", require_aware(self.end))
        if self.end <= self.start:
            raise ValueError(
                f"empty range: {format_utc(self.start)} is not before {format_utc(self.end)}"
            )

    @property
    def scope(self) -> str:
        return f"replay-{self.start:%Y%m%dT%H%M%S}Z-{self.end:%Y%m%dT%H%M%S}Z"

    @property
    def window_range(self) -> WindowRange:
        return WindowRange(self.start, self.end)

    def source(
        self,
        store: S3Store,
        node: str,
        settings: FollowerSettings,
        margin_s: float,
        observer: FollowerObserver | None,
    ) -> SegmentSource:
        del observer  # the archive has no live node to watch

        async def open_segments(resume: ResumePoint | None) -> AsyncIterator[Segment | SegmentGap]:
            begin = self.start
            if resume is not None:
                begin = max(begin, resume.next_window_utc - timedelta(seconds=margin_s))
            if begin >= self.end:
                return
            async for item in read_archive(store, node, begin, self.end, settings.archive):
                yield item

        return open_segments

    def state_file(
        self, directory: Path, node: str, min_interval_s: float, on_error: OnWriteError | None
    ) -> FeedStateFile:
        # A range read to its end needs no resume point: its file is removed.
        path = state_path(directory, self.scope, node)
        return FeedStateFile(
            path, node, min_interval_s, forget_when_complete=True, on_error=on_error
        )
