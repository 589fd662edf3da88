"""Quiet hours in UTC and in an IANA zone (daylight saving included), and bad settings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.publish.quiet_hours import QuietHours


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_stretch_across_midnight_in_utc() -> None:
    quiet = QuietHours(start="22:00", end="07:00")
    assert quiet.covers(at("2024-06-07T23:30:00"))
    assert quiet.covers(at("2024-06-07T06:59:59"))
    assert not quiet.covers(at("2024-06-07T07:00:00"))
    assert not quiet.covers(at("2024-06-07T12:00:00"))
    assert quiet.covers(at("2024-06-07T22:00:00"))


def test_a_stretch_within_one_day_and_none() -> None:
    assert QuietHours(start="12:00", end="13:00").covers(at("2024-06-07T12:30:00"))
    assert not QuietHours(start="12:00", end="13:00").covers(at("2024-06-07T13:30:00"))
    assert not QuietHours().covers(at("2024-06-07T03:00:00"))


def test_local_clock_in_a_zone_follows_daylight_saving() -> None:
    quiet = QuietHours(start="22:00", end="07:00", timezone="America/Los_Angeles")
    # 05:30 UTC is 22:30 PDT in June (UTC−7) but 21:30 PST in January (UTC−8).
    assert quiet.covers(at("2024-06-07T05:30:00"))
    assert not quiet.covers(at("2024-01-07T05:30:00"))


def test_bad_settings_name_the_setting() -> None:
    with pytest.raises(ValueError, match=r"timezone: .*Mars/Olympus.* is not an IANA time zone"):
        QuietHours(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match='start: expected "HH:MM"'):
        QuietHours(start="25:00", end="07:00")
    with pytest.raises(ValueError, match="set both or neither"):
        QuietHours(start="22:00")
