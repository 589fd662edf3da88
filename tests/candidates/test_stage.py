"""Stage 1 on real audio: real calls in real Orcasound background become boxes at their times,
real 60 Hz hum segments give none, and streaming in any chunks equals one pass."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from monitor.candidates.settings import DetectorSettings
from monitor.candidates.stage import CandidateStage
from monitor.cluster.unit import StageSync
from monitor.ingest.demo_node import RATE
from tests.support.candidates import HUM, T0, call_extent, detect, hum_segment, mixed, seconds

# Each call well inside one 10 s background segment (the bed splices a new recording every 10 s).
PLACED = [
    ("AscMoan", 12.5),
    ("Buzz", 23.0),
    ("Chirp", 33.5),
    ("Creak", 42.5),
    ("DescMoan", 52.5),
    ("Growl", 63.0),
    ("moan", 73.0),
]


def overlapping(boxes, start: float, end: float):
    return [b for b in boxes if seconds(b.start_utc) < end and seconds(b.end_utc) > start]


def test_every_call_is_a_box_close_to_its_times() -> None:
    signal, truth = mixed(PLACED)
    boxes = detect(signal)
    starts, ends = [], []
    for name, start, end in truth:
        found = overlapping(boxes, start, end)
        assert found, f"{name} at {start} s: no box"
        call_start, call_end = call_extent(name)
        starts.append(min(seconds(b.start_utc) for b in found) - (start + call_start))
        ends.append(max(seconds(b.end_utc) for b in found) - (start + call_end))
        for box in found:
            assert 50.0 <= box.low_hz < box.high_hz <= 4000.0 + 25.0
            assert box.low_hz <= box.peak_hz <= box.high_hz
            assert box.snr_db >= DetectorSettings().min_snr_db
    # Against each call's own extent (not its clip's bounds: clips fade in and out below the
    # background). Growl's soft onset (under the extent's 10 dB) is found early; Creak's and
    # DescMoan's tails lie under the loud low bands and end early.
    for errors in (starts, ends):
        assert np.median(np.abs(errors)) <= 0.25 and np.max(np.abs(errors)) <= 0.75, errors


@pytest.mark.parametrize("path", HUM, ids=lambda p: p.name)
def test_hum_segments_make_no_candidates(path) -> None:
    samples, rate = hum_segment(path)
    assert detect(samples, rate) == []
    # The same with the hum notches off: the floor alone absorbs steady hum.
    assert len(detect(samples, rate, settings=DetectorSettings(hum_hz=0.0))) <= 1


def test_streaming_in_any_chunks_equals_one_pass() -> None:
    signal, _truth = mixed(PLACED[:4])
    signal = signal[: 48_000 * 45]
    whole = detect(signal, chunk_sizes=[signal.shape[0]])
    rng = np.random.default_rng(3)
    ragged = detect(signal, chunk_sizes=(int(n) for n in rng.integers(1, 30_000, 10_000)))
    segments = detect(signal, chunk_sizes=[480_256] * 10)  # one 10.005 s AAC segment each
    assert whole and whole == ragged == segments


def test_boxes_lie_on_the_utc_grid_whatever_the_start() -> None:
    """Starting the stream a few samples later (another segment or folder boundary) gives the
    same boxes: frames are on the epoch sample clock, not on the first chunk."""
    signal, _truth = mixed(PLACED[:3])
    signal = signal[: 48_000 * 40]
    skip = 4_801
    later = detect(signal[skip:], start=T0 + timedelta(seconds=skip / 48_000))
    first = detect(signal)
    assert [b for b in first if b.start_utc > T0 + timedelta(seconds=10)] == [
        b for b in later if b.start_utc > T0 + timedelta(seconds=10)
    ]


def test_a_gap_closes_the_open_box() -> None:
    from monitor.candidates.stage import CandidateStage

    signal, _truth = mixed([("DescMoan", 12.5)])
    stage = CandidateStage(DetectorSettings())
    cut = round(14.0 * 48_000)  # inside the call
    boxes = stage.feed_samples(signal[:cut], T0, 48_000)
    assert overlapping(boxes, 12.5, 14.0) == []  # the call's box is still open
    assert stage.settled_until is not None and seconds(stage.settled_until) <= 12.6
    # Closing hands out the frames still waiting for their look-ahead, the call's box among
    # them, ending at the cut.
    closed = overlapping(stage.close(), 12.5, 14.0)
    assert len(closed) == 1 and seconds(closed[0].end_utc) == pytest.approx(14.0, abs=0.1)


@pytest.mark.parametrize("begin_s", [13.0, 19.0, 40.0, 44.0])
def test_a_stage_started_late_agrees_once_synced(begin_s: float) -> None:
    """What a cluster work unit relies on: a stage that starts reading later (inside a call,
    or within ``history_s`` before one) gives the unbroken run's boxes from the moment
    ``StageSync`` calls synced: its floor its own, then ``merge_gap_s`` without an active
    frame."""
    signal, _truth = mixed(PLACED)
    signal = signal[: RATE * 60]
    settings = DetectorSettings()
    full = detect(signal)
    sync = StageSync.of(settings, T0 + timedelta(seconds=begin_s), window_s=1.0, hop_s=0.5)
    stage = CandidateStage(settings)
    at, boxes, synced = round(begin_s * RATE), [], None
    while at < signal.shape[0]:
        boxes += stage.feed_samples(signal[at : at + RATE], T0 + timedelta(seconds=at / RATE), RATE)
        quiet, heard = stage.quiet_from, stage.heard_until
        if synced is None and quiet is not None and heard is not None:
            synced = sync.synced(sync.floor_own_at, quiet, heard)
        at += RATE
    boxes += stage.close()
    assert synced is not None and seconds(synced) < begin_s + 15.0
    assert [b for b in boxes if b.start_utc >= synced] == [b for b in full if b.start_utc >= synced]
