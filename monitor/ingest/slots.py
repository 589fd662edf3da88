"""What the HLS layer yields, one item per 10 s slot of a feed in time order, and how a slot
becomes one.

The live follower and the archive reader both yield ``Segment | SegmentGap``; nothing below the
segment iterator knows which one produced them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.ingest.keys import folder_prefix
from monitor.ingest.playlist import segment_name
from monitor.ingest.timing import NOMINAL_SEGMENT_SECONDS, TimingSettings, pdt_for, segment_start


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
    """A slot whose audio will not come: missing past the grace time, 0 bytes, too large, or
    undecodable; or the time between two folders ("restart")."""

    feed: str
    ref: SegmentRef | None
    start_utc: datetime
    end_utc: datetime
    reason: str


GAP_MISSING = "missing"  # never arrived (within the grace time, or absent from the archive)
GAP_EMPTY = "empty"  # a 0-byte file
GAP_RESTART = "restart"  # time between one folder's last segment and the next folder's audio
GAP_UNAVAILABLE = "unavailable"  # S3 kept failing for this key after every retry
GAP_OVERSIZED = "oversized"  # larger than S3Settings.max_segment_bytes: not read

_SLOT = timedelta(seconds=NOMINAL_SEGMENT_SECONDS)


def segment_key(node: str, folder_epoch: int, number: int) -> str:
    return folder_prefix(node, folder_epoch) + segment_name(number)


def slot_ref(bucket: str, node: str, folder_epoch: int, number: int) -> SegmentRef:
    return SegmentRef(
        bucket=bucket,
        key=segment_key(node, folder_epoch, number),
        folder_epoch=folder_epoch,
        number=number,
    )


def slot_start(
    folder_epoch: int, number: int, known_pdt: dict[int, datetime], timing: TimingSettings
) -> datetime:
    return segment_start(folder_epoch, number, pdt_for(number, known_pdt), timing)[0]


def make_segment(
    ref: SegmentRef,
    node: str,
    data: bytes,
    known_pdt: dict[int, datetime],
    timing: TimingSettings,
) -> Segment:
    start, source = segment_start(
        ref.folder_epoch, ref.number, pdt_for(ref.number, known_pdt), timing
    )
    return Segment(
        feed=node,
        ref=ref,
        start_utc=start,
        nominal_duration=NOMINAL_SEGMENT_SECONDS,
        data=data,
        timing_source=str(source),
    )


def slot_gap(
    ref: SegmentRef,
    node: str,
    reason: str,
    known_pdt: dict[int, datetime],
    timing: TimingSettings,
) -> SegmentGap:
    start = slot_start(ref.folder_epoch, ref.number, known_pdt, timing)
    return SegmentGap(feed=node, ref=ref, start_utc=start, end_utc=start + _SLOT, reason=reason)
