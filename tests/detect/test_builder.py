from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from monitor.detect.builder import EventSettings
from monitor.detect.ids import uuid7_millis
from monitor.timebase import to_epoch_ms
from tests.support.detections import (
    BUCKET,
    FOLDER,
    T0,
    make_builder,
    run_scores,
    window,
    wire,
)


def scored(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """The builder's detections for these scores, as the outputs write them."""
    return wire(run_scores(*args, **kwargs))


def test_single_positive_window_below_min_count_emits_nothing() -> None:
    builder = make_builder(min_positive_windows=2)
    assert scored(builder, [0.1, 0.9, 0.1, 0.1, 0.1, 0.1], flush=True) == []
    assert builder.discarded == 1


def test_min_positive_windows_follows_the_real_hop() -> None:
    settings = EventSettings(min_positive_s=2.0)
    assert settings.min_windows(1.0) == 2
    assert settings.min_windows(0.5) == 4
    assert settings.min_windows(3.0) == 1
    assert settings.min_windows(2.0 / 3.0) == 3  # no float creep to 4
    # With a 0.5 s hop, three positive windows (1.5 s) are not enough; four are.
    builder = make_builder(min_positive_windows=None, min_positive_s=2.0)
    assert scored(builder, [0.9] * 3 + [0.0] * 8, hop_s=0.5) == []
    builder = make_builder(min_positive_windows=None, min_positive_s=2.0)
    messages = scored(builder, [0.9] * 4 + [0.0] * 8, hop_s=0.5)
    assert [m["status"] for m in messages] == ["opened", "closed"]
    assert messages[0]["min_positive_windows"] == 4


def test_detection_opens_when_credible_and_closes_after_quiet_time() -> None:
    builder = make_builder(quiet_s=3.0, min_positive_windows=2)
    # windows start at T0 + i s, each 2 s long
    scores = [0.1, 0.7, 0.2, 0.9, 0.8, 0.1, 0.1, 0.1, 0.1]
    messages = scored(builder, scores)
    assert [m["status"] for m in messages] == ["opened", "closed"]
    opened, closed = messages
    assert opened["id"] == closed["id"]
    assert opened["message_id"] == f"{opened['id']}.opened"
    assert closed["message_id"] == f"{opened['id']}.closed"
    # opened at the second positive window (index 3), before the detection is over
    assert opened["positive_window_count"] == 2 and opened["window_count"] == 3
    assert opened["end_utc"] == "2024-06-07T12:00:05.000Z"
    # closed when a negative window starts 3 s after the last positive one (index 7)
    assert closed["close_reason"] == "quiet"
    assert closed["start_utc"] == "2024-06-07T12:00:01.000Z"
    assert closed["end_utc"] == "2024-06-07T12:00:06.000Z"
    assert closed["start_epoch_ms"] == to_epoch_ms(T0 + timedelta(seconds=1))
    assert closed["duration_s"] == 5.0
    assert closed["positive_window_count"] == 3 and closed["window_count"] == 4
    assert closed["score"] == {"max": 0.9, "mean": pytest.approx((0.7 + 0.9 + 0.8) / 3)}
    assert closed["threshold"] == 0.5 and closed["hop_s"] == 1.0 and closed["window_s"] == 2.0
    assert closed["species"]["itis_tsn"] == 180529
    assert closed["species"]["scientific_name"] == "Megaptera novaeangliae"
    assert closed["feed"]["display_name"] == "Orcasound Lab"
    assert closed["models"]["classifier"]["name"] == "ast-tiny-humpback"
    assert uuid7_millis(closed["id"]) == closed["start_epoch_ms"]
    # provenance: windows [1,3), [3,5), [4,6) all lie in segment 0
    provenance = closed["provenance"]
    assert provenance["bucket"] == BUCKET and provenance["folder_epochs"] == [FOLDER]
    assert provenance["segments"] == [
        {
            "bucket": BUCKET,
            "key": f"rpi_orcasound_lab/hls/{FOLDER}/live000.ts",
            "folder_epoch": FOLDER,
            "number": 0,
            "offset_s": 1.0,
            "duration_s": 5.0,
        }
    ]
    # latency: the test clock runs 0.5 s behind the newest window end; scoring took 0.2 s
    assert opened["latency_ms"] == 500 and opened["pipeline_lag_ms"] == 200


def test_provenance_spans_segments() -> None:
    builder = make_builder()
    messages = scored(builder, [0.0] * 8 + [0.9, 0.9, 0.9] + [0.0] * 4)
    segments = messages[-1]["provenance"]["segments"]
    assert [(s["number"], s["offset_s"], s["duration_s"]) for s in segments] == [
        (0, 8.0, 2.0),
        (1, 0.0, 2.0),
    ]


def test_same_audio_same_model_gives_the_same_id() -> None:
    first = scored(make_builder(), [0.9, 0.9, 0.0, 0.0, 0.0])
    second = scored(make_builder(), [0.9, 0.9, 0.0, 0.0, 0.0])
    assert [m["message_id"] for m in first] == [m["message_id"] for m in second]
    other_feed = scored(make_builder(), [0.9, 0.9, 0.0, 0.0, 0.0], feed="rpi_bush_point")
    assert other_feed[0]["id"] != first[0]["id"]


def test_short_gap_is_bridged_and_reported() -> None:
    builder = make_builder(quiet_s=3.0)
    # windows 3 and 4 never come (2 s of audio missing), then the call goes on
    messages = scored(builder, [0.9, 0.9, 0.9, None, None, 0.9, 0.0, 0.0, 0.0])
    assert [m["status"] for m in messages] == ["opened", "closed"]
    closed = messages[-1]
    assert closed["contains_gap"] is True and closed["gap_s"] == 2.0
    assert closed["start_utc"] == "2024-06-07T12:00:00.000Z"
    assert closed["end_utc"] == "2024-06-07T12:00:07.000Z"
    assert closed["positive_window_count"] == 4 and closed["window_count"] == 4
    assert closed["close_reason"] == "quiet"


def test_window_containing_a_gap_marks_the_detection() -> None:
    builder = make_builder()
    messages = scored(builder, [0.9, 0.9, 0.0, 0.0, 0.0], gap_windows=[1])
    assert messages[-1]["contains_gap"] is True and messages[-1]["gap_s"] == 0.0
    # a gap in a trailing negative window does not count: it lies after the detection
    builder = make_builder()
    messages = scored(builder, [0.9, 0.9, 0.0, 0.0, 0.0], gap_windows=[2])
    assert messages[-1]["contains_gap"] is False


def test_gap_longer_than_quiet_time_closes_and_a_new_detection_starts() -> None:
    builder = make_builder(quiet_s=3.0)
    scores: list[float | None] = [0.9, 0.9] + [None] * 5 + [0.9, 0.9, 0.0, 0.0, 0.0]
    messages = scored(builder, scores)
    assert [m["status"] for m in messages] == ["opened", "closed", "opened", "closed"]
    assert messages[1]["close_reason"] == "gap"
    assert messages[1]["contains_gap"] is False  # the gap is outside it
    assert messages[2]["id"] != messages[0]["id"]
    assert messages[2]["start_utc"] == "2024-06-07T12:00:07.000Z"


def test_advance_to_closes_a_detection_when_the_feed_stops() -> None:
    builder = make_builder(quiet_s=3.0)
    messages = scored(builder, [0.9, 0.9])
    assert [m["status"] for m in messages] == ["opened"]
    assert builder.advance_to("rpi_orcasound_lab", T0 + timedelta(seconds=3)) == []
    later = builder.advance_to("rpi_orcasound_lab", T0 + timedelta(seconds=5))
    assert [(m.status, m.close_reason) for m in later] == [("closed", "gap")]
    assert builder.flush() == []


def test_max_duration_splits_a_long_detection() -> None:
    builder = make_builder(max_duration_s=6.0, min_positive_windows=2)
    messages = scored(builder, [0.9] * 10 + [0.0] * 4)
    statuses = [(m["status"], m["close_reason"]) for m in messages]
    assert statuses == [
        ("opened", None),
        ("closed", "max_duration"),
        ("opened", None),
        ("closed", "quiet"),
    ]
    first, second = messages[1], messages[3]
    assert first["duration_s"] == 6.0  # windows 0..4 end at 6 s; window 5 would make it 7 s
    assert second["start_utc"] == "2024-06-07T12:00:05.000Z"
    assert second["previous_id"] == first["id"] and first["previous_id"] is None
    assert first["positive_window_count"] + second["positive_window_count"] == 10


def test_still_open_at_shutdown_is_closed_by_flush() -> None:
    builder = make_builder()
    messages = scored(builder, [0.9, 0.9, 0.9], flush=True)
    assert [(m["status"], m["close_reason"]) for m in messages] == [
        ("opened", None),
        ("closed", "shutdown"),
    ]
    assert messages[-1]["pipeline_lag_ms"] is None
    assert builder.open_count == 0 and builder.flush() == []


def test_per_feed_threshold_override_and_unconfigured_labels() -> None:
    builder = make_builder(
        thresholds={"humpback": 0.5}, feed_thresholds={"rpi_bush_point": {"humpback": 0.95}}
    )
    assert scored(builder, [0.9, 0.9, 0.0, 0.0, 0.0], feed="rpi_bush_point") == []
    lab = scored(builder, [0.9, 0.9, 0.0, 0.0, 0.0])
    assert lab[0]["threshold"] == 0.5
    assert scored(make_builder(), [0.9, 0.9, 0.0, 0.0, 0.0], label="Speech") == []


def test_unknown_feed_and_unmapped_label_still_make_valid_messages() -> None:
    builder = make_builder(thresholds={"orca": 0.5})
    messages = scored(builder, [0.9, 0.9, 0.0, 0.0, 0.0], feed="rpi_new_node", label="orca")
    assert messages[0]["feed"] == {
        "node": "rpi_new_node",
        "display_name": "rpi_new_node",
        "lat": None,
        "lon": None,
    }
    assert messages[0]["species"] is None


def test_two_labels_are_independent() -> None:
    builder = make_builder(thresholds={"humpback": 0.5, "Whale vocalization": 0.5})
    out = []
    for i, (a, b) in enumerate([(0.9, 0.1), (0.9, 0.9), (0.1, 0.9), (0.1, 0.1), (0.1, 0.1)]):
        out += builder.observe(window(i), {"humpback": a, "Whale vocalization": b})
    out += builder.flush()
    labels = sorted((m.summary.label, m.status) for m in out)
    assert labels == [
        ("Whale vocalization", "closed"),
        ("Whale vocalization", "opened"),
        ("humpback", "closed"),
        ("humpback", "opened"),
    ]


def test_bad_input_is_refused_clearly() -> None:
    builder = make_builder()
    builder.observe(window(3), {"humpback": 0.9})
    with pytest.raises(ValueError, match="not after the previous one"):
        builder.observe(window(2), {"humpback": 0.9})
    with pytest.raises(ValueError, match="not a finite number"):
        builder.observe(window(4), {"humpback": float("nan")})
    with pytest.raises(ValueError, match="threshold"):
        EventSettings(thresholds={"humpback": 1.5})
    with pytest.raises(ValueError, match="min_positive_windows"):
        EventSettings(min_positive_windows=0)
    naive = window(9)
    object.__setattr__(naive, "start_utc", naive.start_utc.replace(tzinfo=None))
    with pytest.raises(ValueError, match="naive"):
        builder.observe(naive, {"humpback": 0.9})
