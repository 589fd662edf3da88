"""The feed pipeline writes each closed detection's media from its ring buffer before it
publishes the ``closed`` message: the clip is the decoded audio of the detection ± the margin,
and with a (tiny, real) denoiser both the raw and the denoised stream are written."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from monitor.audio.audiofile import read_audio
from monitor.audio.decode import ContinuousDecoder
from monitor.audio.windows import WindowSettings
from monitor.detect.schema import validate_message
from monitor.ingest.slots import SegmentGap
from monitor.media.layout import media_path
from monitor.media.writer import MediaSettings, MediaWriter
from monitor.runtime.pipeline import Decoding, FeedPipeline, PipelineSettings
from monitor.runtime.wiring import stream_denoiser_factory
from monitor.timebase import parse_utc, samples_between
from tests.support.pipeline import (
    Collector,
    builder,
    list_source,
    noise_segments,
    tiny_checkpoint,
    tiny_engine,
)
from tests.support.stream_denoise import calibrated_denoiser, engine_with

WINDOWS = WindowSettings(length_s=1.0, hop_s=0.5)
RATE = 48_000
MARGIN_S = 1.5


@pytest.fixture(scope="module")
def segments():
    return noise_segments(40.0)


def decoded(items) -> tuple[object, np.ndarray]:
    """The one continuous run the real decoder makes of ``items``."""
    parts = [out for out in ContinuousDecoder().feed_all(items) if not isinstance(out, SegmentGap)]
    return parts[0].start_utc, np.concatenate([part.samples[0] for part in parts])


async def run(engine, items, media_dir: Path, *, denoise: bool) -> list[dict]:
    writer = MediaWriter(MediaSettings(directory=media_dir, margin_s=MARGIN_S))
    await writer.start()
    collector = Collector()
    pipeline = FeedPipeline(
        feed="rpi_test",
        source=list_source(items),
        scorer=engine,
        builder=builder(0.0, quiet_s=1.0, max_duration_s=6.0),  # every window is positive
        publish=collector.publish,
        windows=WINDOWS,
        stop=asyncio.Event(),
        settings=PipelineSettings(in_flight_windows=4, analyze_audio=False),
        decoding=Decoding(stream_denoiser=stream_denoiser_factory(engine) if denoise else None),
        media=writer,
    )
    try:
        await pipeline.run_once()
    finally:
        await writer.close()
    assert writer.stats.written >= 2
    return [m for m in collector.messages if m["status"] == "closed"]


def clip_of(stream_start, samples: np.ndarray, message: dict) -> tuple[np.ndarray, float]:
    """What the ring held for ``message``'s clip, and the clip's expected length in seconds."""
    begin = parse_utc(message["media"]["clip_start_utc"])
    at = samples_between(stream_start, begin, RATE)
    return samples[at:], (begin - parse_utc(message["start_utc"])).total_seconds()


@pytest.fixture
async def plain_engine(tmp_path: Path):
    engine = tiny_engine(tiny_checkpoint(tmp_path / "tiny"))
    engine.start()
    await engine.wait_ready()
    yield engine
    await engine.stop()


async def test_closed_detections_carry_the_ring_audio(plain_engine, segments, tmp_path) -> None:
    items = segments[:3]
    closed = await run(plain_engine, items, tmp_path / "media", denoise=False)
    stream_start, samples = decoded(items)
    assert closed
    for message in closed:
        validate_message(message)
        media = message["media"]
        assert set(media) == {"audio", "audio_archive", "spectrogram", "clip_start_utc"}
        flac, rate = read_audio(media_path(tmp_path / "media", media["audio_archive"]))
        assert rate == RATE
        held, offset = clip_of(stream_start, samples, message)
        np.testing.assert_allclose(flac[0], held[: flac.shape[1]], atol=1 / 32768 + 1e-6)
        start, end = parse_utc(message["start_utc"]), parse_utc(message["end_utc"])
        if start - timedelta(seconds=MARGIN_S) >= stream_start:
            assert offset == pytest.approx(-MARGIN_S, abs=1e-3)
        longest = (end - start).total_seconds() + 2 * MARGIN_S
        assert flac.shape[1] / RATE <= longest + 1e-3
        assert media_path(tmp_path / "media", media["audio"]).stat().st_size > 0
        assert media_path(tmp_path / "media", media["spectrogram"]).read_bytes()[:4] == b"\x89PNG"


@pytest.fixture
async def denoise_engine(segments, tmp_path: Path):
    _, samples = decoded(segments[:2])
    engine = engine_with(calibrated_denoiser(samples, RATE), tmp_path / "tiny", max_wait_ms=5)
    engine.start()
    await engine.wait_ready()
    yield engine
    await engine.stop()


async def test_with_a_denoiser_both_versions_are_written(
    denoise_engine, segments, tmp_path
) -> None:
    items = segments[:3]
    closed = await run(denoise_engine, items, tmp_path / "media", denoise=True)
    stream_start, raw = decoded(items)
    clean = await denoise_engine.denoise(raw, RATE)
    assert closed
    for message in closed:
        media = message["media"]
        assert {"audio_denoised", "audio_denoised_archive"} <= set(media)
        heard = read_audio(media_path(tmp_path / "media", media["audio_archive"]))[0][0]
        held, _ = clip_of(stream_start, raw, message)
        np.testing.assert_allclose(heard, held[: heard.shape[0]], atol=1 / 32768 + 1e-6)
        cleaned = read_audio(media_path(tmp_path / "media", media["audio_denoised_archive"]))
        want, _ = clip_of(stream_start, clean, message)
        n = min(cleaned[0].shape[1], want.shape[0])
        scale = float(np.abs(want[:n]).max())
        np.testing.assert_allclose(cleaned[0][0][:n], want[:n], atol=2e-3 * scale + 1 / 32768)
        assert np.abs(heard[:n] - cleaned[0][0][:n]).max() > 0.05 * scale  # not the raw audio
