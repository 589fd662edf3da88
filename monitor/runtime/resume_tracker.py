"""Which segment a feed must read again to go on from a given window.

The consumer adds each segment once its windows are scored; ``point`` then names the segment
holding ``next window − margin`` (or the next slot when that time fell after everything read). The
point never passes the start of an open candidate or detection (``hold``): a process killed while
one is open re-reads its audio on restart and closes it.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

from monitor.ingest.slots import SegmentRef
from monitor.runtime.resume import ResumePoint
from monitor.timebase import utc_now

# Segments remembered at most (a day of 10 s slots); a hold older than this is let go.
_MAX_SEGMENTS = 8640


class ResumeTracker:
    def __init__(self, feed: str, margin_s: float) -> None:
        self.feed = feed
        self.margin = timedelta(seconds=margin_s)
        self._read: deque[tuple[SegmentRef, datetime]] = deque(maxlen=_MAX_SEGMENTS)
        self.next_start: datetime | None = None  # as last given to ``point``

    def add(self, ref: SegmentRef, end_utc: datetime) -> None:
        """Segment ``ref``, whose audio ends at ``end_utc``, is done."""
        self._read.append((ref, end_utc))

    def point(self, next_start: datetime | None, hold: datetime | None) -> ResumePoint | None:
        """The resume point for "the next window starts at ``next_start``", held back to
        ``hold`` if that is earlier; None before any window or segment is known."""
        self.next_start = next_start
        if next_start is None or not self._read:
            return None
        if hold is not None and hold < next_start:
            next_start = hold
        target = next_start - self.margin
        # Later points never go back before this target: what ends before it is not read again.
        while len(self._read) > 1 and self._read[0][1] <= target:
            self._read.popleft()
        for ref, end in self._read:
            if end > target:
                return ResumePoint(self.feed, ref.folder_epoch, ref.number, next_start, utc_now())
        last = self._read[-1][0]
        return ResumePoint(self.feed, last.folder_epoch, last.number + 1, next_start, utc_now())
