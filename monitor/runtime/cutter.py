"""One feed's window cutter: decoded (or denoised) chunks into the ring buffer, windows out.

It keeps the windows to score inside the run's range (a replay's ``[start, end)``; unbounded
live) and after the first window not yet scored (``floor``: the resume point, or one hop after
the last window scored before a crash), and never hands out a window twice, even when a change of
sample rate starts a new ring.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.audio.chunks import AudioChunk, Window
from monitor.audio.ring import RingBuffer, RingBufferSettings
from monitor.audio.windows import WindowScheduler, WindowSettings
from monitor.health.metrics import Metrics
from monitor.ingest.slots import SegmentGap


@dataclass(frozen=True, slots=True)
class WindowRange:
    """Windows starting in ``[start, end)`` are scored; ``None`` is unbounded on that side."""

    start: datetime | None = None
    end: datetime | None = None

    def overlap_s(self, start: datetime, end: datetime) -> float:
        """Seconds of ``[start, end)`` inside the range."""
        lo = start if self.start is None else max(start, self.start)
        hi = end if self.end is None else min(end, self.end)
        return max(0.0, (hi - lo).total_seconds())


def later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a if b is None else b
    return max(a, b)


class WindowCutter:
    """``cut(chunk)`` writes a chunk and returns the windows it completes, oldest first."""

    def __init__(
        self,
        feed: str,
        windows: WindowSettings,
        span: WindowRange,
        ring_seconds: float,
        floor: datetime | None,
        metrics: Metrics | None = None,
    ) -> None:
        self.feed = feed
        self.windows = windows
        self.span = span
        self.ring_seconds = ring_seconds
        self.floor = later(span.start, floor)
        self.metrics = metrics
        self.last_start: datetime | None = None
        self._ring: RingBuffer | None = None
        self._scheduler: WindowScheduler | None = None
        self._skipped = {"gap": 0, "overrun": 0}

    @property
    def next_start(self) -> datetime | None:
        """The start of the first window not yet handed out (None before any is known)."""
        if self.last_start is not None:
            return self.last_start + timedelta(seconds=self.windows.hop_s)
        return self.floor

    @property
    def ring(self) -> RingBuffer | None:
        """The ring the windows are cut from (None before the first chunk)."""
        return self._ring

    def cut(self, chunk: AudioChunk) -> list[Window]:
        ring, scheduler = self._ring_for(chunk.sample_rate)
        before = ring.dropped_samples
        ring.write(chunk)
        if self.metrics is not None and ring.dropped_samples > before:
            self.metrics.ring_overrun(self.feed, ring.dropped_samples - before)
        out = []
        for window in scheduler.ready(ring):
            start = window.start_utc
            if self.floor is not None and start < self.floor:
                continue
            if self.span.end is not None and start >= self.span.end:
                continue
            if self.last_start is not None and start <= self.last_start:
                continue  # a new ring after a rate change: never score twice
            self.last_start = start
            out.append(window)
        self._count_skipped(scheduler)
        return out

    def mark_gap(self, gap: SegmentGap) -> None:
        if self._ring is not None:
            self._ring.mark_gap(gap)

    def _ring_for(self, sample_rate: int) -> tuple[RingBuffer, WindowScheduler]:
        if self._ring is None or self._scheduler is None or self._ring.sample_rate != sample_rate:
            settings = RingBufferSettings(self.ring_seconds, sample_rate)
            self._ring = RingBuffer(self.feed, settings)
            self._scheduler = WindowScheduler.from_settings(self.windows)
            self._skipped = {"gap": 0, "overrun": 0}
        return self._ring, self._scheduler

    def _count_skipped(self, scheduler: WindowScheduler) -> None:
        for reason, total in (
            ("gap", scheduler.skipped_gap),
            ("overrun", scheduler.skipped_overrun),
        ):
            seen = self._skipped[reason]
            if total > seen:
                if self.metrics is not None:
                    self.metrics.window_skipped(self.feed, reason, total - seen)
                self._skipped[reason] = total
