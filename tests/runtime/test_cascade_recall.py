"""The cascade finds every event that every-window scoring finds: the end-to-end scenario (real
calls in real Orcasound background, the tiny AST trained on it) replayed in both modes; the
cascade's detections start at the call (its box), not a window earlier."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from monitor.timebase import parse_utc
from tests.support.candidates import call_extent
from tests.support.cascade import NODE, closed_detections, mirror, replay, replay_config
from tests.support.e2e import build_stream

PLACED = [("AscMoan", 13.3), ("DescMoan", 31.7), ("Growl", 58.6), ("moan", 66.2)]
FOLDER_EPOCH = 1_717_761_600


def matched(calls, closed) -> dict[str, dict]:
    """Each call → the closed detection overlapping it."""
    out = {}
    for call in calls:
        hits = [
            m
            for m in closed
            if parse_utc(m["start_utc"]) <= call.end_utc
            and parse_utc(m["end_utc"]) >= call.start_utc
        ]
        if hits:
            out[call.name] = hits[0]
    return out


@pytest.mark.slow
async def test_cascade_recall_equals_every_window_and_boxes_start_at_the_call(
    trained_classifier, tmp_path: Path
) -> None:
    stream = build_stream(FOLDER_EPOCH, 80.0, PLACED)
    root = mirror(tmp_path / "mirror", stream)
    runs = {}
    for mode in ("every-window", "cascade"):
        config = replay_config(tmp_path / mode, root, trained_classifier, mode)
        daemon = await replay(config, stream, tmp_path / mode / "out")
        runs[mode] = (closed_detections(tmp_path / mode / "out"), daemon.pipelines[NODE].progress)
    every, cascade = runs["every-window"][0], runs["cascade"][0]
    found_every = matched(stream.calls, every)
    found_cascade = matched(stream.calls, cascade)
    assert set(found_every) <= set(found_cascade), (set(found_every), set(found_cascade))
    assert set(found_cascade) == {name for name, _ in PLACED}
    assert len(cascade) == len(found_cascade)  # nothing on the plain background
    for call in stream.calls:
        message = found_cascade[call.name]
        error = (parse_utc(message["start_utc"]) - call.start_utc).total_seconds()
        # The call begins between its clip's first sample (a soft onset over the background)
        # and its extent's start (within 10 dB of its peak).
        assert -0.25 <= error <= call_extent(call.name)[0] + 0.25, (call.name, error)
        assert message["low_freq_hz"] < message["high_freq_hz"]
    progress = runs["cascade"][1]
    scored, unscored = progress.windows_scored, progress.windows_unscored
    assert scored + unscored > 0 and scored <= 0.5 * (scored + unscored), (scored, unscored)
    assert parse_utc(every[0]["start_utc"]) >= stream.start_utc - timedelta(seconds=1)
