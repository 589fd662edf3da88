"""Stage-1 helpers: real background with real calls at known times, run through the detector."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from monitor.audio.audiofile import read_audio
from monitor.audio.chunks import AudioChunk
from monitor.candidates.regions import CandidateBox
from monitor.candidates.settings import DetectorSettings
from monitor.candidates.stage import CandidateStage
from monitor.ingest.demo_node import RATE, SEGMENT_S, background, calls
from monitor.ingest.slots import SegmentRef
from monitor.timebase import from_epoch

DATA = Path(__file__).resolve().parents[1] / "data"
T0 = from_epoch(1_717_761_600)
HUM = sorted((DATA / "orcasound-hls" / "unintelligible").glob("*.ts"))


def bed() -> np.ndarray:
    return background(DATA / "orcasound-hls" / "normal")


def mixed(placed: Iterable[tuple[str, float]]) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """The background with each call ``(name, offset_s)`` added; the calls' (name, start, end)
    in seconds from ``T0``."""
    signal = bed().copy()
    clips = calls(DATA / "humpback-calls")
    truth = []
    for name, offset_s in placed:
        clip = clips[name]
        at = round(offset_s * RATE)
        signal[at : at + clip.shape[0]] += clip
        truth.append((name, offset_s, offset_s + clip.shape[0] / RATE))
    return signal, truth


# The reference extent of a catalogue call (a fixed annotation rule, measured on the clean
# clip, not on any detector's output): the frames (40 ms, hop 20 ms, Hann) whose band energy
# (50 Hz–4 kHz, smoothed over 5 frames) is within EXTENT_DROP_DB of the clip's peak. A clip's
# own bounds are not the call's: several fade out, or start, below the background.
EXTENT_DROP_DB = 10.0


@functools.cache
def call_extent(name: str) -> tuple[float, float]:
    """(start, end) of the call inside its clip, in seconds from the clip's first sample."""
    clip = calls(DATA / "humpback-calls")[name]
    n, hop = round(0.04 * RATE), round(0.02 * RATE)
    frames = np.lib.stride_tricks.sliding_window_view(clip, n)[::hop] * np.hanning(n)
    freqs = np.fft.rfftfreq(n, 1.0 / RATE)
    band = (freqs >= 50.0) & (freqs <= 4000.0)
    energy = (np.abs(np.fft.rfft(frames, axis=1)[:, band]) ** 2).sum(axis=1)
    energy = np.convolve(energy, np.ones(5) / 5, mode="same")
    db = 10.0 * np.log10(energy + 1e-20)
    inside = np.flatnonzero(db >= db.max() - EXTENT_DROP_DB)
    return inside[0] * hop / RATE, (inside[-1] * hop + n) / RATE


def hum_segment(path: Path) -> tuple[np.ndarray, int]:
    samples, rate = read_audio(path)
    return samples.mean(axis=0).astype(np.float32), rate


def detect(
    signal: np.ndarray,
    rate: int = RATE,
    chunk_sizes: Iterable[int] | None = None,
    settings: DetectorSettings | None = None,
    start: datetime = T0,
) -> list[CandidateBox]:
    """Stage 1 over ``signal`` fed in chunks (one second each unless given), then closed."""
    stage = CandidateStage(settings or DetectorSettings())
    sizes = iter(chunk_sizes) if chunk_sizes is not None else None
    at, out = 0, []
    while at < signal.shape[0]:
        size = next(sizes) if sizes is not None else rate
        moment = start + timedelta(seconds=at / rate)
        out += stage.feed_samples(signal[at : at + size], moment, rate)
        at += size
    return out + stage.close()


def seconds(moment: datetime) -> float:
    return (moment - T0).total_seconds()


def segment_chunks(signal: np.ndarray, feed: str = "feed") -> list[AudioChunk]:
    """``signal`` (48 kHz, from ``T0``) as the decoder's chunks, one per 10.005 s segment."""
    step = round(SEGMENT_S * RATE)
    out = []
    for number, at in enumerate(range(0, signal.shape[0], step)):
        ref = SegmentRef("bucket", f"{feed}/hls/1/live{number:03d}.ts", 1, number)
        part = signal[at : at + step][np.newaxis, :]
        out.append(AudioChunk(feed, T0 + timedelta(seconds=at / RATE), RATE, part, ref))
    return out
