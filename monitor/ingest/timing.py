"""When a segment starts, in aware UTC.

Segment N of folder ``E`` starts at ``E + audio_offset + 10.000 × N``: 468/469 AAC frames average
exactly 10.000 s with no drift over a day, and the node needs about 2 s after ``date +%s`` before
audio flows. Newer nodes also stamp each segment with PROGRAM-DATE-TIME. Which source wins is a
setting; TARGETDURATION and EXTINF are never used (TARGETDURATION 11 made other tools drift).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from monitor.timebase import from_epoch, require_aware

NOMINAL_SEGMENT_SECONDS = 10.0
_SEGMENT = timedelta(seconds=NOMINAL_SEGMENT_SECONDS)


class TimingSource(StrEnum):
    NUMBER = "number"
    PROGRAM_DATE_TIME = "program-date-time"


@dataclass(frozen=True, slots=True)
class TimingSettings:
    audio_offset_s: float = 2.0
    # "program-date-time": use the segment's PDT when the playlist has one, else the number rule.
    # "number": always the number rule (one clock for every generation of node).
    precedence: TimingSource = TimingSource.PROGRAM_DATE_TIME

    def __post_init__(self) -> None:
        object.__setattr__(self, "precedence", TimingSource(self.precedence))
        if not 0.0 <= self.audio_offset_s < 60.0:
            raise ValueError(f"audio_offset_s must be in [0, 60), got {self.audio_offset_s}")


def folder_audio_start(folder_epoch: int, settings: TimingSettings) -> datetime:
    """When segment 0 of a folder starts by the number rule."""
    return from_epoch(folder_epoch) + timedelta(seconds=settings.audio_offset_s)


def number_start(folder_epoch: int, number: int, settings: TimingSettings) -> datetime:
    # timedelta arithmetic keeps microseconds exact over 10,000s of segments
    return folder_audio_start(folder_epoch, settings) + _SEGMENT * number


def segment_start(
    folder_epoch: int,
    number: int,
    pdt: datetime | None,
    settings: TimingSettings,
) -> tuple[datetime, TimingSource]:
    """Start time of segment ``number`` and the source it came from."""
    if pdt is not None and settings.precedence is TimingSource.PROGRAM_DATE_TIME:
        return require_aware(pdt), TimingSource.PROGRAM_DATE_TIME
    return number_start(folder_epoch, number, settings), TimingSource.NUMBER


def number_covering(folder_epoch: int, moment: datetime, settings: TimingSettings) -> int:
    """The number of the segment whose slot holds ``moment`` (by the number rule; may be < 0)."""
    since = require_aware(moment) - folder_audio_start(folder_epoch, settings)
    return since // _SEGMENT


def pdt_for(number: int, known: dict[int, datetime]) -> datetime | None:
    """The PDT of ``number``: its own, else carried from the nearest stamped segment at 10.000 s.

    Keeps one clock inside a folder when some segments (the unlisted tail, a segment seen before
    the playlist) have no tag of their own.
    """
    if not known:
        return None
    if number in known:
        return known[number]
    nearest = min(known, key=lambda other: (abs(other - number), other))
    return known[nearest] + _SEGMENT * (number - nearest)
