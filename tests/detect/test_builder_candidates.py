"""The event builder on scored candidates (the cascade): unscored windows are negatives, the
boxes that chose the positive windows give the detection's time and band, ids are stable."""

from __future__ import annotations

from datetime import timedelta

from monitor.candidates.regions import CandidateBox
from monitor.detect.ids import uuid7_millis
from monitor.timebase import to_epoch_ms
from tests.support.detections import T0, checked, make_builder, window, wire


def box(start_s: float, end_s: float, low: float = 180.0, high: float = 900.0) -> CandidateBox:
    return CandidateBox(
        T0 + timedelta(seconds=start_s), T0 + timedelta(seconds=end_s), low, high, 400.0, 25.0
    )


def run(builder, plan):
    """``plan``: per window, None (unscored) or (score, boxes)."""
    out = []
    for index, step in enumerate(plan):
        w = window(index, length_s=2.0)
        if step is None:
            out += builder.observe(w, None)
        else:
            score, boxes = step
            out += builder.observe(w, {"humpback": score}, boxes=tuple(boxes))
    return wire(checked(out))


def test_a_scored_candidate_makes_a_detection_with_its_box() -> None:
    builder = make_builder(min_positive_windows=1, quiet_s=3.0)
    call = box(3.4, 4.1)
    messages = run(builder, [None, None, None, (0.9, [call]), None, None, None, None, None])
    assert [m["status"] for m in messages] == ["opened", "closed"]
    closed = messages[1]
    assert closed["close_reason"] == "quiet"
    assert closed["start_utc"] == "2024-06-07T12:00:03.400Z"
    assert closed["end_utc"] == "2024-06-07T12:00:04.100Z"
    assert (closed["low_freq_hz"], closed["high_freq_hz"]) == (180.0, 900.0)
    assert closed["positive_window_count"] == 1
    # The id's time is the box start, and it depends only on the audio (live = replay).
    assert uuid7_millis(closed["id"]) == to_epoch_ms(call.start_utc)
    again = run(make_builder(min_positive_windows=1, quiet_s=3.0), [None] * 3 + [(0.9, [call])])
    assert again[0]["id"] == closed["id"]


def test_two_candidates_merge_into_one_box_spanning_both() -> None:
    builder = make_builder(min_positive_windows=2, quiet_s=3.0)
    plan = [(0.8, [box(0.5, 1.0, 300, 600)]), None, (0.7, [box(2.5, 3.2, 100, 450)])]
    messages = run(builder, plan + [None] * 5)
    closed = [m for m in messages if m["status"] == "closed"]
    assert len(closed) == 1
    assert closed[0]["start_utc"].endswith("00:00.500Z")
    assert closed[0]["end_utc"].endswith("00:03.200Z")
    assert (closed[0]["low_freq_hz"], closed[0]["high_freq_hz"]) == (100.0, 600.0)


def test_unscored_windows_close_as_negatives_and_a_lone_candidate_below_min_hits_is_dropped():
    builder = make_builder(min_positive_windows=2, quiet_s=2.0)
    assert run(builder, [(0.9, [box(0.2, 0.8)])] + [None] * 5) == []
    assert builder.discarded == 1
    assert builder.earliest_open_start("rpi_orcasound_lab") is None


def test_windows_without_boxes_keep_the_window_span_and_no_band() -> None:
    builder = make_builder(min_positive_windows=1, quiet_s=2.0)
    messages = run(builder, [(0.9, []), (0.1, []), (0.1, []), (0.1, [])])
    closed = messages[-1]
    assert closed["start_utc"].endswith("00:00.000Z") and closed["end_utc"].endswith("00:02.000Z")
    assert "low_freq_hz" not in closed and "high_freq_hz" not in closed
