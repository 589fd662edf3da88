"""The per-feed state machine and its ``FeedStatus`` records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from monitor.detect.records import FeedInfo, FeedStatus
from monitor.detect.wire import encode
from monitor.health.analysis import AudioVerdict, ChannelAnalysis, SegmentAnalysis, analyze_audio
from monitor.health.board import HealthBoard
from monitor.health.feed_state import FeedHealth, FeedState, HealthSettings
from monitor.health.metrics import Metrics

T0 = datetime(2024, 6, 7, 12, 0, 0, tzinfo=UTC)
RATE = 48_000


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def verdict(v: AudioVerdict) -> SegmentAnalysis:
    return SegmentAnalysis(v, (ChannelAnalysis(-50.0, -50.0, 25.0, v),))


def test_a_new_feed_is_unknown_until_it_reports() -> None:
    health = FeedHealth("rpi_bush_point")
    assert health.state is FeedState.UNKNOWN
    assert health.evaluate(at(0)) is None


def test_walk_through_every_state() -> None:
    health = FeedHealth("rpi_bush_point", HealthSettings(offline_after_s=120, lagged_after_s=60))
    seen = []

    def step(change: FeedStatus | None) -> None:
        assert change is not None
        seen.append((change.previous, change.state))

    step(health.note_latest_missing(at(0)))
    step(health.note_playlist(at(5), at(10)))  # latest.txt appeared, playlist fresh
    step(health.note_audio(verdict(AudioVerdict.UP), at(0), at(20)))
    step(health.note_audio(verdict(AudioVerdict.UNINTELLIGIBLE), at(10), at(30)))
    step(health.note_audio(verdict(AudioVerdict.SILENT), at(20), at(40)))
    step(health.note_audio(verdict(AudioVerdict.UP), at(30), at(50)))
    health.note_playlist(at(100), at(101))
    step(health.note_processed(at(40), at(101)))  # 61 s behind real time
    step(health.note_processed(at(100), at(102)))
    step(health.evaluate(at(100 + 121)))  # playlist not modified for 121 s
    assert seen == [
        ("unknown", "absent"),
        ("absent", "unknown"),
        ("unknown", "up"),
        ("up", "unintelligible"),
        ("unintelligible", "silent"),
        ("silent", "up"),
        ("up", "lagged"),
        ("lagged", "up"),
        ("up", "offline"),
    ]


def test_lagged_message_and_details() -> None:
    health = FeedHealth("rpi_bush_point", HealthSettings(lagged_after_s=60))
    health.note_playlist(at(0), at(0))
    health.note_audio(verdict(AudioVerdict.UP), at(0), at(10))
    change = health.note_processed(at(0), at(75))
    assert change is not None
    assert (change.feed, change.previous, change.state) == (
        FeedInfo.unknown("rpi_bush_point"),
        FeedState.UP,
        FeedState.LAGGED,
    )
    assert change.since_utc == at(75)
    assert change.details == {
        "hint": "processing is behind real time: too little CPU, slow S3, or a large backlog",
        "reason": "behind real time",
        "lag_s": 75.0,
    }
    # One vocabulary: the wire spells the same state as its schema wants.
    message = encode(change)
    assert message["state"] == "Lagged" and message["since_utc"] == "2024-06-07T12:01:15.000Z"


def test_unknown_is_never_published() -> None:
    health = FeedHealth("f")
    health.note_latest_missing(at(0))
    back = health.note_playlist(at(0), at(1))  # latest.txt is back, nothing else known yet
    assert back is not None and back.state is FeedState.UNKNOWN
    with pytest.raises(ValueError, match="not published"):
        encode(back)


def test_worst_condition_wins() -> None:
    health = FeedHealth("f", HealthSettings(offline_after_s=120, lagged_after_s=60))
    health.note_playlist(at(0), at(0))
    health.note_audio(verdict(AudioVerdict.SILENT), at(0), at(1))
    health.note_processed(at(0), at(100))  # lagged too, but silent is worse
    assert health.state is FeedState.SILENT
    health.evaluate(at(130))  # and offline is worse still
    assert health.state is FeedState.OFFLINE
    health.note_latest_missing(at(131))
    assert health.state is FeedState.ABSENT


def test_offline_needs_more_than_the_limit() -> None:
    health = FeedHealth("f", HealthSettings(offline_after_s=120))
    health.note_playlist(at(0), at(0))
    health.note_audio(verdict(AudioVerdict.UP), at(0), at(0))
    assert health.evaluate(at(120)) is None
    message = health.evaluate(at(121))
    assert message is not None and message.state is FeedState.OFFLINE
    assert message.details["playlist_age_s"] == 121.0
    back = health.note_playlist(at(125), at(126))
    assert back is not None and (back.previous, back.state) == ("offline", "up")


def test_real_audio_drives_the_state() -> None:
    t = np.arange(10 * RATE) / RATE
    hum = (0.1 * np.sin(2 * np.pi * 60 * t)).astype(np.float32)[None]
    health = FeedHealth("f")
    health.note_playlist(at(0), at(0))
    message = health.note_audio(analyze_audio(hum, RATE, health.audio), at(0), at(1))
    assert message is not None and message.state == "unintelligible"
    channels = message.details["channels"]
    assert isinstance(channels, list) and channels[0]["verdict"] == "unintelligible"


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        FeedHealth("f").note_playlist(datetime(2024, 1, 1), at(0))  # noqa: DTZ001


def test_snapshot_for_status() -> None:
    health = FeedHealth("f")
    health.note_playlist(at(0), at(0))
    health.note_audio(verdict(AudioVerdict.UP), at(0), at(10))
    health.note_processed(at(10), at(30))
    health.note_gap("missing")
    health.note_gap("missing")
    health.note_gap("corrupt")
    health.note_restart()
    health.note_error("S3 timeout", at(31), hint="check the network")
    snap = health.snapshot()
    assert snap["state"] == "up"
    assert snap["last_segment_start"] == "2024-06-07T12:00:00.000Z"
    assert snap["lag_s"] == 20.0
    assert snap["gaps"] == 3 and snap["gaps_by_reason"] == {"missing": 2, "corrupt": 1}
    assert snap["restarts"] == 1
    assert snap["last_error"] == {
        "at": "2024-06-07T12:00:31.000Z",
        "message": "S3 timeout",
        "hint": "check the network",
    }


def test_board_tick_updates_states_and_metrics() -> None:
    metrics = Metrics()
    board = HealthBoard(HealthSettings(offline_after_s=120), metrics)
    for name in ("a", "b"):
        health = board.feed(name)
        board.changed(health.note_playlist(at(0), at(0)))
        board.changed(health.note_audio(verdict(AudioVerdict.UP), at(0), at(1)))
    board.feed("b").note_playlist(at(100), at(100))
    board.feed("a").note_processed(at(90), at(100))
    messages = board.tick(at(130))
    assert [(m.feed.node, m.state) for m in messages] == [("a", "offline")]
    text = metrics.exposition().decode()
    assert 'hydromon_feed_state{feed="a",hydromon_feed_state="offline"} 1.0' in text
    assert 'hydromon_feed_state{feed="b",hydromon_feed_state="up"} 1.0' in text
    assert 'hydromon_lag_seconds{feed="a"} 40.0' in text
    assert board.tick(at(131)) == []
