"""What the HLS layer yields: one item per 10 s slot of a feed, in time order.

The live follower and the archive reader both yield ``Segment | SegmentGap``; nothing below the
segment iterator knows which one produced them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

NOMINAL_SEGMENT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """Where a piece of audio came from (provenance)."""

    bucket: str
    key: str
    folder_epoch: int
    number: int


@dataclass(frozen=True, slots=True)
class Segment:
    feed: str
    ref: SegmentRef
    start_utc: datetime
    nominal_duration: float
    data: bytes
    timing_source: str  # "number" or "program-date-time"

    @property
    def end_utc(self) -> datetime:
        return self.start_utc + timedelta(seconds=self.nominal_duration)


@dataclass(frozen=True, slots=True)
class SegmentGap:
    """A slot whose audio will not come: missing past the grace time, 0 bytes, or undecodable."""

    feed: str
    ref: SegmentRef | None
    start_utc: datetime
    end_utc: datetime
    reason: str
