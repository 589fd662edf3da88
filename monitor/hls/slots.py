"""Turning one 10 s slot of a folder into the item the HLS layer yields."""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.hls.feeds import folder_prefix
from monitor.hls.playlist import segment_name
from monitor.hls.segment import NOMINAL_SEGMENT_SECONDS, Segment, SegmentGap, SegmentRef
from monitor.hls.timing import TimingSettings, pdt_for, segment_start

GAP_MISSING = "missing"  # never arrived (within the grace time, or absent from the archive)
GAP_EMPTY = "empty"  # a 0-byte file
GAP_RESTART = "restart"  # time between one folder's last segment and the next folder's audio
GAP_UNAVAILABLE = "unavailable"  # S3 kept failing for this key after every retry

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
