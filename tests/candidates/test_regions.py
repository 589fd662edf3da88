"""Stage 1's regions in time and frequency, and its look-ahead floor, on real audio: a sound in
another band is its own box, and a step in the background is floor rather than a box."""

from __future__ import annotations

import numpy as np

from monitor.candidates.settings import DetectorSettings
from monitor.ingest.demo_node import RATE
from tests.support.candidates import bed, call_extent, detect, mixed, seconds


def tone(start_s: float, seconds_long: float, hz: float, level: float) -> np.ndarray:
    t = np.arange(round(seconds_long * RATE)) / RATE
    fade = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)  # no click at its ends
    wave = level * fade * np.sin(2 * np.pi * hz * t)
    out = np.zeros(bed().shape[0], dtype=np.float32)
    at = round(start_s * RATE)
    out[at : at + wave.size] = wave
    return out


def test_a_sound_in_another_band_overlapping_the_call_is_its_own_box() -> None:
    # A moan (energy under ~1.5 kHz) at 13 s, and a 3.5 kHz tone from 11.5 s to 16.5 s.
    signal, _truth = mixed([("moan", 13.0)])
    level = float(np.sqrt(np.mean(signal[: RATE * 10] ** 2)))
    signal = signal + tone(11.5, 5.0, 3500.0, 3.0 * level)
    boxes = detect(signal[: RATE * 30])
    calls = [b for b in boxes if b.low_hz < 1000.0 and seconds(b.end_utc) > 13.0]
    tones = [b for b in boxes if b.low_hz <= 3500.0 <= b.high_hz]
    assert len(calls) == 1 and len(tones) == 1, boxes
    call, other = calls[0], tones[0]
    assert call.high_hz < 3000.0 and other.low_hz > 3000.0
    start, end = call_extent("moan")
    assert abs(seconds(call.start_utc) - (13.0 + start)) <= 0.25
    assert abs(seconds(call.end_utc) - (13.0 + end)) <= 0.25
    assert seconds(other.start_utc) < 12.0 and seconds(other.end_utc) > 16.0


def test_with_one_region_per_span_of_frames_the_call_box_would_take_the_tone_band() -> None:
    """The same audio with frequency merging unbounded (one region per span of active frames,
    as before regions were split in frequency): one box, whose band reaches the tone's."""
    signal, _truth = mixed([("moan", 13.0)])
    level = float(np.sqrt(np.mean(signal[: RATE * 10] ** 2)))
    signal = signal + tone(11.5, 5.0, 3500.0, 3.0 * level)
    merged = DetectorSettings(merge_hz=1e5, same_sound_overlap=0.0)
    boxes = [b for b in detect(signal[: RATE * 30], settings=merged) if seconds(b.end_utc) > 13.0]
    assert len(boxes) == 1 and boxes[0].high_hz > 3500.0


def step_up(at_s: float, gain_db: float) -> np.ndarray:
    """The bed, louder by ``gain_db`` from ``at_s`` on (a ship arriving, another recorder)."""
    signal = bed()[: RATE * 30].copy()
    signal[round(at_s * RATE) :] *= 10 ** (gain_db / 20)
    return signal


def test_a_step_in_the_background_is_floor_not_a_box() -> None:
    signal = step_up(12.0, 12.0)
    boxes = detect(signal)
    assert not [b for b in boxes if seconds(b.end_utc) > 11.5 and seconds(b.start_utc) < 14.0]
    # Without the look-ahead the floor absorbs the step only after it: a box at the step.
    behind = detect(signal, settings=DetectorSettings(lookahead_s=0.0, floor_quantile=0.75))
    assert [b for b in behind if seconds(b.end_utc) > 11.5 and seconds(b.start_utc) < 14.0]
