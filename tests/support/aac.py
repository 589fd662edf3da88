"""Test signals (noise, sines, chirps) and ``Segment`` wrappers around real AAC-LC / MPEG-TS
segments; the encoder itself is the product's (``monitor/ingest/encode.py``, which documents the
segments' timeline)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from monitor.ingest.encode import (  # noqa: F401  (the tests' encoder is the product's)
    FRAME_SAMPLES,
    TS_OFFSET_SECONDS,
    encode_segments,
    segment_first_samples,
)
from monitor.ingest.slots import Segment, SegmentRef
from monitor.timebase import from_epoch

# ---- signals -------------------------------------------------------------------------------


def noise(
    seconds: float, sample_rate: int = 48000, channels: int = 1, level: float = 0.01, seed: int = 0
) -> np.ndarray:
    """Gaussian background noise, float32 (channels, n)."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    return (level * rng.standard_normal((channels, n))).astype(np.float32)


def sine(
    seconds: float, freq_hz: float, sample_rate: int = 48000, amplitude: float = 0.3
) -> np.ndarray:
    """A steady sine, float32 (n,)."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def chirp(
    seconds: float = 0.2,
    f0_hz: float = 1000.0,
    f1_hz: float = 8000.0,
    sample_rate: int = 48000,
    amplitude: float = 0.5,
) -> np.ndarray:
    """A linear up-chirp with short raised-cosine edges: its matched filter peaks sharply, so its
    position in decoded audio can be found to within a sample or two."""
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    phase = 2 * np.pi * (f0_hz * t + (f1_hz - f0_hz) * t**2 / (2 * seconds))
    edge = min(n // 2, round(0.005 * sample_rate))
    envelope = np.ones(n)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(edge) / edge)
    envelope[:edge] = ramp
    envelope[n - edge :] = ramp[::-1]
    return (amplitude * envelope * np.sin(phase)).astype(np.float32)


def place(
    signal: np.ndarray, burst: np.ndarray, at_sample: int, channel: int | None = None
) -> None:
    """Add ``burst`` (n,) into ``signal`` (channels, n) at ``at_sample`` (all channels, or one)."""
    end = at_sample + burst.shape[0]
    if at_sample < 0 or end > signal.shape[1]:
        raise ValueError(f"burst [{at_sample}, {end}) does not fit a signal of {signal.shape[1]}")
    rows = slice(None) if channel is None else slice(channel, channel + 1)
    signal[rows, at_sample:end] += burst


def locate(audio: np.ndarray, burst: np.ndarray) -> int:
    """Sample index in ``audio`` (n,) where ``burst`` matches best (matched filter peak)."""
    size = 1 << int(np.ceil(np.log2(audio.shape[0] + burst.shape[0])))
    spectrum = np.fft.rfft(audio, size) * np.conj(np.fft.rfft(burst, size))
    correlation = np.fft.irfft(spectrum, size)[: audio.shape[0] - burst.shape[0] + 1]
    return int(np.argmax(correlation))


# ---- segments ------------------------------------------------------------------------------


def nominal_start(folder_epoch: int, number: int) -> datetime:
    """Where the HLS layer puts segment ``number`` of a folder: epoch + 2 s + 10 s × number."""
    return from_epoch(folder_epoch) + timedelta(seconds=2.0 + 10.0 * number)


def as_segments(
    datas: list[bytes],
    feed: str = "rpi_test",
    folder_epoch: int = 1_717_761_600,
    first_number: int = 0,
    bucket: str = "test-bucket",
) -> list[Segment]:
    """Wrap consecutive segment files as the HLS layer's ``Segment``s (numbered timing)."""
    segments = []
    for i, data in enumerate(datas):
        number = first_number + i
        ref = SegmentRef(
            bucket=bucket,
            key=f"{feed}/hls/{folder_epoch}/live{number:03d}.ts",
            folder_epoch=folder_epoch,
            number=number,
        )
        segments.append(
            Segment(
                feed=feed,
                ref=ref,
                start_utc=nominal_start(folder_epoch, number),
                nominal_duration=10.0,
                data=data,
                timing_source="number",
            )
        )
    return segments
