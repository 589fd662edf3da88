"""A replay range split into work units: one feed × one time chunk each.

A unit *owns* the detections that start inside ``[start, end)``; together the units of a range
own every detection of the single-process replay exactly once. To reproduce them a unit scores
more than it owns (``UnitReach``): from a warm-up before its start (the decoder, the stream
denoiser's context and the detections already open there) and past its end until the
detections it owns have closed (bounded by ``events.max_duration_s``). Neither reaches outside
the whole replay range, whose edges a single-process replay has too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.timebase import require_aware


@dataclass(frozen=True, slots=True)
class WorkUnit:
    feed: str
    start: datetime
    end: datetime

    @property
    def id(self) -> str:
        seconds = round((self.end - self.start).total_seconds())
        return f"{self.feed}@{self.start:%Y%m%dT%H%M%S}Z+{seconds}s"

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class ReplayRange:
    """The whole replay: its feeds and ``[start, end)``."""

    feeds: tuple[str, ...]
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", require_aware(self.start))
        object.__setattr__(self, "end", require_aware(self.end))
        if self.end <= self.start:
            raise ValueError("empty range: the start is not before the end")

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds() * len(self.feeds)


def plan_units(span: ReplayRange, unit_s: float) -> list[WorkUnit]:
    """Every feed's units, in time order per feed (feeds interleaved, so that work on all
    feeds goes on at once); unit boundaries are on whole seconds from the range start."""
    if unit_s <= 0:
        raise ValueError(f"unit_s must be > 0, got {unit_s}")
    step = timedelta(seconds=unit_s)
    starts = []
    moment = span.start
    while moment < span.end:
        starts.append(moment)
        moment += step
    return [
        WorkUnit(feed, begin, min(begin + step, span.end))
        for begin in starts
        for feed in span.feeds
    ]


@dataclass(frozen=True, slots=True)
class UnitReach:
    """What one attempt at a unit scores: windows starting in ``[first_window, last_window)``,
    with audio read from ``read_from`` (the resume margin before the first window, clipped to the
    range start)."""

    first_window: datetime
    last_window: datetime
    read_from: datetime
    at_range_start: bool  # the first window is the range's (not: no margin was needed)


def reach(
    unit: WorkUnit,
    span: ReplayRange,
    *,
    warmup_s: float,
    margin_s: float,
    follow_s: float,
) -> UnitReach:
    """The windows an attempt scores with ``warmup_s`` of warm-up (clipped to the range)."""
    first = max(span.start, unit.start - timedelta(seconds=warmup_s))
    # Never before the range start: the unbroken run reads nothing there either (stage 1's
    # background floor would hold audio it never had).
    read_from = max(span.start, first - timedelta(seconds=margin_s))
    last = min(span.end, unit.end + timedelta(seconds=follow_s))
    return UnitReach(first, last, read_from, first == span.start)


def follow_seconds(max_duration_s: float, quiet_s: float, window_s: float, hop_s: float) -> float:
    """How far past its end a unit may have to score: a detection that starts just before the
    end lasts at most ``max_duration_s`` and closes within ``quiet_s`` (and a hop) of its last
    positive window; 20 s more keep the stream denoiser's right context and a segment in reach.
    """
    return max_duration_s + quiet_s + window_s + 2 * hop_s + 20.0
