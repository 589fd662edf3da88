"""Segment start times: the number rule, PROGRAM-DATE-TIME, and their precedence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from monitor.ingest.timing import (
    TimingSettings,
    TimingSource,
    number_covering,
    pdt_for,
    segment_start,
)

E = 1717761600  # 2024-06-07T12:00:00Z


def test_number_rule_is_epoch_plus_offset_plus_ten_seconds_per_segment():
    start, source = segment_start(E, 0, None, TimingSettings())
    assert start == datetime(2024, 6, 7, 12, 0, 2, tzinfo=UTC)
    assert source is TimingSource.NUMBER
    # a whole day in: exact, no EXTINF/TARGETDURATION drift
    start, _ = segment_start(E, 8640, None, TimingSettings())
    assert start == datetime(2024, 6, 8, 12, 0, 2, tzinfo=UTC)
    start, _ = segment_start(E, 3, None, TimingSettings(audio_offset_s=1.5))
    assert start == datetime(2024, 6, 7, 12, 0, 31, 500000, tzinfo=UTC)


def test_pdt_wins_by_default_and_number_precedence_ignores_it():
    pdt = datetime(2024, 6, 7, 5, 0, 33, 250000, tzinfo=timezone(timedelta(hours=-7)))
    start, source = segment_start(E, 3, pdt, TimingSettings())
    assert start == datetime(2024, 6, 7, 12, 0, 33, 250000, tzinfo=UTC)
    assert start.tzinfo is UTC
    assert source is TimingSource.PROGRAM_DATE_TIME
    start, source = segment_start(E, 3, pdt, TimingSettings(precedence="number"))
    assert start == datetime(2024, 6, 7, 12, 0, 32, tzinfo=UTC)
    assert source is TimingSource.NUMBER


def test_pdt_carried_from_nearest_stamped_segment():
    known = {4: datetime(2024, 6, 7, 12, 0, 42, 500000, tzinfo=UTC)}
    assert pdt_for(4, known) == known[4]
    assert pdt_for(7, known) == datetime(2024, 6, 7, 12, 1, 12, 500000, tzinfo=UTC)
    assert pdt_for(1, known) == datetime(2024, 6, 7, 12, 0, 12, 500000, tzinfo=UTC)
    assert pdt_for(1, {}) is None


def test_number_covering():
    settings = TimingSettings()
    assert number_covering(E, datetime(2024, 6, 7, 12, 0, 2, tzinfo=UTC), settings) == 0
    assert number_covering(E, datetime(2024, 6, 7, 12, 0, 11, 999999, tzinfo=UTC), settings) == 0
    assert number_covering(E, datetime(2024, 6, 7, 12, 0, 12, tzinfo=UTC), settings) == 1
    assert number_covering(E, datetime(2024, 6, 7, 12, 0, 1, tzinfo=UTC), settings) == -1


def test_bad_settings_and_naive_times_are_refused():
    with pytest.raises(ValueError):
        TimingSettings(precedence="targetduration")
    with pytest.raises(ValueError):
        TimingSettings(audio_offset_s=-1)
    with pytest.raises(ValueError):
        segment_start(E, 0, datetime(2024, 6, 7, 12, 0, 2), TimingSettings())  # noqa: DTZ001
