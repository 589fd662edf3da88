"""Silent / Unintelligible / Up on the real Orcasound segments, decoded with PyAV."""

from __future__ import annotations

import functools
from pathlib import Path

import av
import numpy as np
import pytest

from monitor.health.analysis import (
    AnalysisSettings,
    AudioVerdict,
    analyze_audio,
    hum_mask,
)

HLS = Path(__file__).resolve().parents[1] / "data" / "orcasound-hls"
NORMAL = sorted((HLS / "normal").glob("*.ts"))
UNINTELLIGIBLE = sorted((HLS / "unintelligible").glob("*.ts"))
RATE = 48_000


@functools.cache
def decode(path: Path) -> np.ndarray:
    """One segment → float32 (channels, n) at 48 kHz, as the decoder hands it over."""
    with av.open(str(path)) as container:
        frames = [frame.to_ndarray() for frame in container.decode(audio=0)]
    audio = np.concatenate(frames, axis=1).astype(np.float32)
    assert audio.shape[1] > 9 * RATE
    return audio


def test_the_sample_set_is_present() -> None:
    assert len(NORMAL) == 9 and len(UNINTELLIGIBLE) == 3


@pytest.mark.parametrize("path", NORMAL, ids=lambda p: p.name)
def test_every_normal_segment_is_up(path: Path) -> None:
    analysis = analyze_audio(decode(path), RATE)
    assert analysis.verdict is AudioVerdict.UP, analysis.details()
    # and it stays Up whatever the feed was before, except inside the silence hysteresis band
    assert analyze_audio(decode(path), RATE, AudioVerdict.UP).verdict is AudioVerdict.UP
    after_hum = analyze_audio(decode(path), RATE, AudioVerdict.UNINTELLIGIBLE)
    assert after_hum.verdict is AudioVerdict.UP


@pytest.mark.parametrize("name", ["live1815.ts", "live4869.ts"])
def test_hum_segments_are_unintelligible(name: str) -> None:
    for previous in (None, AudioVerdict.UP, AudioVerdict.SILENT, AudioVerdict.UNINTELLIGIBLE):
        analysis = analyze_audio(decode(HLS / "unintelligible" / name), RATE, previous)
        assert analysis.verdict is AudioVerdict.UNINTELLIGIBLE, analysis.details()
        assert analysis.channels[0].signal_ratio < 10  # measured 7.1 and 3.9


def test_the_near_silent_unintelligible_sample_is_silent() -> None:
    # live1791 has no hum at all (off/on-hum ratio 28.7, like normal audio); its spectral peak is
    # -98.9 dB. orcanode-monitor's own tests class this very file Silent; so do we. It is never Up.
    audio = decode(HLS / "unintelligible" / "live1791.ts")
    for previous in (None, AudioVerdict.UP, AudioVerdict.UNINTELLIGIBLE, AudioVerdict.SILENT):
        analysis = analyze_audio(audio, RATE, previous)
        assert analysis.verdict is AudioVerdict.SILENT, analysis.details()


def test_no_unintelligible_sample_is_up() -> None:
    for path in UNINTELLIGIBLE:
        assert analyze_audio(decode(path), RATE).verdict is not AudioVerdict.UP


def test_silence_hysteresis_on_a_quiet_real_segment() -> None:
    # live6079 (Bush Point, quiet): peak -90.2 dB, inside the -95..-80 dB band.
    audio = decode(HLS / "normal" / "live6079.ts")
    assert analyze_audio(audio, RATE, AudioVerdict.UP).verdict is AudioVerdict.UP
    assert analyze_audio(audio, RATE, AudioVerdict.SILENT).verdict is AudioVerdict.SILENT
    # a loud segment leaves Silent at once
    loud = decode(HLS / "normal" / "live385.ts")
    assert analyze_audio(loud, RATE, AudioVerdict.SILENT).verdict is AudioVerdict.UP


def test_a_feed_is_up_if_any_channel_is_up() -> None:
    audio = decode(HLS / "normal" / "live2008.ts")  # stereo, channel 0 dead
    analysis = analyze_audio(audio, RATE)
    assert [c.verdict for c in analysis.channels] == [AudioVerdict.SILENT, AudioVerdict.UP]
    assert analysis.verdict is AudioVerdict.UP
    assert analyze_audio(audio[:1], RATE).verdict is AudioVerdict.SILENT


def test_hum_hysteresis_between_the_two_ratios() -> None:
    # Real hum (live4869) with growing white noise added: find a mix whose ratio lies between
    # min_signal_ratio and recover_signal_ratio; there the previous verdict decides.
    hum = decode(HLS / "unintelligible" / "live4869.ts")[:1]
    rng = np.random.default_rng(7)
    noise = rng.standard_normal(hum.shape).astype(np.float32)
    settings = AnalysisSettings()
    between = None
    for level in np.geomspace(1e-4, 1e-1, 60):
        mix = hum + level * noise
        ratio = analyze_audio(mix, RATE).channels[0].signal_ratio
        if settings.min_signal_ratio < ratio < settings.recover_signal_ratio:
            between = mix
            break
    assert between is not None
    assert analyze_audio(between, RATE, None).verdict is AudioVerdict.UP
    assert analyze_audio(between, RATE, AudioVerdict.UP).verdict is AudioVerdict.UP
    stays = analyze_audio(between, RATE, AudioVerdict.UNINTELLIGIBLE)
    assert stays.verdict is AudioVerdict.UNINTELLIGIBLE


def test_digital_silence_and_pure_hum() -> None:
    assert analyze_audio(np.zeros((1, RATE), np.float32), RATE).verdict is AudioVerdict.SILENT
    t = np.arange(10 * RATE) / RATE
    hum = 0.1 * (np.sin(2 * np.pi * 60 * t) + 0.3 * np.sin(2 * np.pi * 180 * t))
    assert analyze_audio(hum.astype(np.float32), RATE).verdict is AudioVerdict.UNINTELLIGIBLE


def test_hum_lines() -> None:
    freqs = np.array([0.0, 0.5, 59.1, 60.0, 60.9, 120.0, 300.0, 59.0, 61.0, 121.0, 299.0, 90.0])
    expected = [False, False, True, True, True, True, True, False, False, False, False, False]
    assert hum_mask(freqs, 60.0, 1.0).tolist() == expected


@pytest.mark.parametrize(
    "audio",
    [np.zeros((1, 1), np.float32), np.full((1, 100), np.nan, np.float32)],
    ids=["too-short", "nan"],
)
def test_bad_audio_is_refused(audio: np.ndarray) -> None:
    with pytest.raises(ValueError):
        analyze_audio(audio, RATE)
