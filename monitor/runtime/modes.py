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
from monitor.ingest.slots import Segment, SegmentGap
from monitor.ingest.store import Store
from monitor.runtime.cutter import WindowRange
from monitor.runtime.pipeline import SegmentSource
from monitor.runtime.resume import FeedStateFile, OnWriteError, ResumePoint, state_path
from monitor.timebase import format_utc, require_aware, utc_now


@dataclass(frozen=True, slots=True)
class FeedSource:
    """What a mode needs to open one feed's segments."""

    store: Store
    node: str
    settings: FollowerSettings
    margin_s: float  # re-read this far before a resume point's next window
    observer: FollowerObserver | None = None  # hears latest.txt and playlist ages (live)


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

    @property
    def forget_when_complete(self) -> bool:
        """Whether a feed whose source ran to its end removes its resume point."""
        ...

    def source(self, feed: FeedSource) -> SegmentSource: ...


def state_file(
    mode: Mode, directory: Path, node: str, min_interval_s: float, on_error: OnWriteError | None
) -> FeedStateFile:
    """``node``'s resume-point file in ``mode``'s scope."""
    return FeedStateFile(
        state_path(directory, mode.scope, node),
        node,
        min_interval_s,
        forget_when_complete=mode.forget_when_complete,
        on_error=on_error,
    )


@dataclass(frozen=True, slots=True)
class LiveMode:
    """Follow the live streams: from the resume point, else ``backfill`` ago, else now."""

    backfill: timedelta | None = None

    scope = "live"
    window_range = WindowRange()
    publishes_status = True  # feed health is about the live streams
    forget_when_complete = False

    def source(self, feed: FeedSource) -> SegmentSource:
        start_at = utc_now() - self.backfill if self.backfill is not None else None
        args = (feed.store, feed.node, feed.settings)

        def open_segments(resume: ResumePoint | None) -> AsyncIterator[Segment | SegmentGap]:
            if resume is not None:
                cursor = SegmentCursor(resume.folder_epoch, resume.number)
                return follow_live(*args, cursor=cursor, observer=feed.observer)
            return follow_live(*args, start_at=start_at, observer=feed.observer)

        return open_segments


@dataclass(frozen=True, slots=True)
class ReplayMode:
    """Read ``[start, end)`` of each feed from the archive, as fast as it goes."""

    start: datetime
    end: datetime

    publishes_status = False  # a replay is "behind" by design
    forget_when_complete = True  # a range read to its end needs no resume point

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

    def source(self, feed: FeedSource) -> SegmentSource:
        # The archive has no live node to watch: ``feed.observer`` is not used.
        margin = timedelta(seconds=feed.margin_s)

        async def open_segments(resume: ResumePoint | None) -> AsyncIterator[Segment | SegmentGap]:
            begin = self.start
            if resume is not None:
                begin = max(begin, resume.next_window_utc - margin)
            if begin >= self.end:
                return
            archive = feed.settings.archive
            async for item in read_archive(feed.store, feed.node, begin, self.end, archive):
                yield item

        return open_segments
