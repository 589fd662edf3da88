"""Integers read from bucket content: folder epochs (``latest.txt``, folder names) and segment
numbers (``liveNNN.ts``), parsed as short ASCII digit strings in a sane range.

Anything else is ``None`` for the caller to log and count: ``str.isdigit`` accepts ``²``,
``int`` refuses 5,000 digits, and an epoch of 20 digits overflows ``datetime`` — none of these
may raise out of a feed's task.
"""

from __future__ import annotations

import re
from datetime import datetime

from monitor.timebase import require_aware, to_epoch

MIN_FOLDER_EPOCH = 1_420_070_400  # 2015-01-01T00:00:00Z: older than any Orcasound stream
MAX_SEGMENT_NUMBER = 9_999_999  # 10^7 segments of 10 s is ~3.2 years in one folder

_SEGMENT_DIGITS = len(str(MAX_SEGMENT_NUMBER))
_EPOCH_DIGITS = 11  # up to the year 5138: the upper bound is the clock, checked below
_ASCII_DIGITS = re.compile(r"[0-9]+")


def bounded_int(text: str, *, low: int, high: int, max_digits: int) -> int | None:
    """``text`` as an integer in ``[low, high]`` when it is 1..``max_digits`` ASCII digits."""
    if not 0 < len(text) <= max_digits or not _ASCII_DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if low <= value <= high else None


def parse_segment_number(text: str) -> int | None:
    """A segment number (the digits of ``liveNNN.ts``): 0 ≤ n ≤ ``MAX_SEGMENT_NUMBER``."""
    return bounded_int(text, low=0, high=MAX_SEGMENT_NUMBER, max_digits=_SEGMENT_DIGITS)


def parse_epoch(text: str, *, latest: datetime | None = None) -> int | None:
    """A folder epoch (Unix seconds) from 2015-01-01 up to ``latest`` (aware; no upper bound but
    the digit count when None)."""
    high = 10**_EPOCH_DIGITS if latest is None else int(to_epoch(require_aware(latest)))
    return bounded_int(text, low=MIN_FOLDER_EPOCH, high=high, max_digits=_EPOCH_DIGITS)
