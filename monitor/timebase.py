"""The one place where times are converted.

Every timestamp in hydromon is an aware UTC ``datetime`` or an integer sample index at a known
rate from a known UTC origin. Nothing here reads the host time zone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def from_epoch(seconds: float) -> datetime:
    """Unix seconds → aware UTC datetime."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def to_epoch(moment: datetime) -> float:
    """Aware datetime → Unix seconds. Naive datetimes are refused, never guessed."""
    return require_aware(moment).timestamp()


def to_epoch_ms(moment: datetime) -> int:
    """Aware datetime → whole Unix milliseconds (UUIDv7 prefixes, ``*_epoch_ms`` fields)."""
    return round(to_epoch(moment) * 1000)


def require_aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: hydromon needs timezone-aware times")
    return moment.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(tz=UTC)


def parse_utc(text: str) -> datetime:
    """ISO 8601 → aware UTC. A string without an offset is read as UTC (documented)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def format_utc(moment: datetime, *, timespec: str = "milliseconds") -> str:
    """Aware datetime → ``2024-06-07T12:00:00.000Z`` (``timespec`` as ``datetime.isoformat``)."""
    return require_aware(moment).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_duration(text: str | float | int) -> timedelta:
    """``"10m"``, ``"90s"``, ``"1.5h"``, ``"250ms"`` or a number of seconds → timedelta."""
    if isinstance(text, int | float):
        return timedelta(seconds=float(text))
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"bad duration {text!r}: use e.g. 90s, 10m, 1.5h, 250ms")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def samples_between(origin: datetime, moment: datetime, sample_rate: int) -> int:
    """Whole samples from ``origin`` to ``moment`` at ``sample_rate`` (rounded to nearest)."""
    delta = require_aware(moment) - require_aware(origin)
    # timedelta keeps microseconds exactly; avoid float seconds for long spans.
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return (micros * sample_rate + 500_000) // 1_000_000


def after_samples(origin: datetime, samples: int, sample_rate: int) -> datetime:
    """The moment ``samples`` samples after ``origin`` (microsecond resolution)."""
    micros = (samples * 1_000_000 + sample_rate // 2) // sample_rate
    return require_aware(origin) + timedelta(microseconds=micros)
