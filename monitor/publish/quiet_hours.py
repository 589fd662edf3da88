"""Quiet hours: a daily stretch of local time (UTC or an IANA zone) when nobody is alerted.

``start`` and ``end`` are "HH:MM" wall-clock times in ``timezone``; a stretch that wraps past
midnight ("22:00" to "07:00") is what one usually wants. Equal times, or none, mean never quiet.
Daylight saving is the zone's: "22:00" is 22:00 on the local clock, summer and winter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from monitor.timebase import require_aware

CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def zone(name: str, setting: str = "timezone") -> ZoneInfo:
    """The IANA zone ``name``; ``ValueError`` naming the setting if there is no such zone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{setting}: {json.dumps(name)} is not an IANA time zone (e.g. UTC, Europe/Oslo)"
        ) from None


def _clock(text: str, setting: str) -> time | None:
    if text == "":
        return None
    match = CLOCK.fullmatch(text)
    if match is None:
        raise ValueError(f'{setting}: expected "HH:MM" (00:00 to 23:59), got {json.dumps(text)}')
    return time(int(match[1]), int(match[2]))


@dataclass(frozen=True)
class QuietHours:
    start: str = ""  # "HH:MM"; "" (with end ""): never quiet
    end: str = ""
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        zone(self.timezone)
        if (_clock(self.start, "start") is None) != (_clock(self.end, "end") is None):
            raise ValueError("start and end: set both or neither")

    def covers(self, moment: datetime) -> bool:
        """Whether ``moment`` (aware) falls in the quiet stretch."""
        start, end = _clock(self.start, "start"), _clock(self.end, "end")
        if start is None or end is None or start == end:
            return False
        local = require_aware(moment).astimezone(zone(self.timezone)).time()
        if start < end:
            return start <= local < end
        return local >= start or local < end
