"""Stream denoising (overlap-save through the real engine) against a whole-signal denoise."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.inference.stream_denoise import StreamDenoiser, StreamDenoiseSettings
from monitor.timebase import after_samples, parse_utc
from tests.support.stream_denoise import (
    as_chunks,
    calibrated_denoiser,
    engine_with,
    real_stream,
)

START = parse_utc("2024-06-07T12:00:00Z")
# Segment-sized, irregular pieces (decoded AAC chunks are never grid-aligned).
SIZES = [480_000 - 1024 * k for k in (0, 3, 1, 7)]


@pytest.fixture(scope="module")
def stream() -> tuple[np.ndarray, int]:
    return real_stream("live385.ts", "live839.ts", "live1184.ts")  # ~30 s at 48 kHz


@pytest.fixture
async def engine(stream, tmp_path):
    samples, rate = stream
    engine = engine_with(calibrated_denoiser(samples, rate), tmp_path / "tiny", max_batch=4)
    engine.start()
    await engine.wait_ready()
    yield engine
    await engine.stop()


def streamer(engine, block_grids: int = 4) -> StreamDenoiser:
    grid_s, context = engine.denoise_geometry
    return StreamDenoiser(engine.denoise, grid_s, context, StreamDenoiseSettings(block_grids))


async def run_stream(denoiser: StreamDenoiser, chunks) -> list:
    out = []
    for chunk in chunks:
        out += await denoiser.feed(chunk)
    return out + await denoiser.flush()


def assert_close_to(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    relative = float(np.linalg.norm(got - want) / np.linalg.norm(want))
    assert relative < 1e-6, relative  # the same chunks, weights and STFT frames: rounding only


async def test_stream_equals_whole_signal_denoise_and_keeps_timing(engine, stream) -> None:
    samples, rate = stream
    chunks = as_chunks(samples, rate, START, SIZES[:2])
    denoiser = streamer(engine)
    out = []
    lags = []
    for chunk in chunks:
        out += await denoiser.feed(chunk)
        lags.append(denoiser.pending_samples)
    # Output lags by at most a block plus the right context, never more.
    grid = round(denoiser.grid_seconds * rate)
    assert max(lags) < (4 + 2 * denoiser.context_grids) * grid
    out += await denoiser.flush()

    whole = await engine.denoise(samples, rate)
    got = np.concatenate([c.samples[0] for c in out])
    assert_close_to(got, whole)
    # The denoiser really changed the audio.
    assert np.linalg.norm(whole - samples) > 0.05 * np.linalg.norm(samples)
    # Sample-aligned: every output chunk starts where its samples are in the input, and keeps
    # its input chunk's provenance.
    at = 0
    by_number = {c.source.number: c for c in chunks}
    for piece in out:
        assert piece.start_utc == after_samples(START, at, rate)
        source = by_number[piece.source.number]
        offset = at - round((source.start_utc - START).total_seconds() * rate)
        assert 0 <= offset < source.frames
        assert piece.source_offset_s == pytest.approx(offset / rate)
        assert piece.gap_before == (offset == 0 and source.gap_before)
        at += piece.frames
    assert at == samples.shape[0]


async def test_a_gap_restarts_the_stream(engine, stream) -> None:
    samples, rate = stream
    first, second = samples[:700_000], samples[700_000:]
    later = after_samples(START, 700_000 + 96_000, rate)  # 2 s of audio missing
    chunks = as_chunks(first, rate, START, [300_000])
    resumed = as_chunks(second, rate, later, [400_000])
    resumed[0] = type(resumed[0])(**{**_fields(resumed[0]), "gap_before": True})

    out = await run_stream(streamer(engine), chunks + resumed)
    split = next(i for i, c in enumerate(out) if c.start_utc >= later)
    assert out[split].start_utc == later and out[split].gap_before
    before = np.concatenate([c.samples[0] for c in out[:split]])
    after = np.concatenate([c.samples[0] for c in out[split:]])
    # Each run is denoised as if it were the whole signal: no context across the gap.
    assert_close_to(before, await engine.denoise(first, rate))
    assert_close_to(after, await engine.denoise(second, rate))


async def test_a_jump_in_time_without_gap_flag_also_restarts(engine, stream) -> None:
    samples, rate = stream
    part = samples[:200_000]
    chunks = as_chunks(part, rate, START, [100_000])
    jumped = as_chunks(part, rate, after_samples(START, 300_000, rate), [])
    out = await run_stream(streamer(engine), chunks + jumped)
    got = np.concatenate([c.samples[0] for c in out])
    whole = await engine.denoise(part, rate)
    assert_close_to(got, np.concatenate([whole, whole]))


async def test_engine_batches_blocks_from_concurrent_feeds(engine, stream) -> None:
    import asyncio

    import torch
    import torchaudio

    samples, rate = stream
    n = 200_000
    blocks = [samples[i * n : (i + 1) * n].copy() for i in range(4)]
    before = engine.stats()
    results = await asyncio.gather(*(engine.denoise(b, rate) for b in blocks))
    stats = engine.stats()
    assert stats.requests - before.requests == 4
    assert stats.batches - before.batches < 4  # some shared one denoiser call
    denoiser = engine.denoiser
    for block, got in zip(blocks, results, strict=True):
        at = torchaudio.functional.resample(torch.from_numpy(block)[None], rate, 44100)
        want = torchaudio.functional.resample(denoiser.denoise(at), 44100, rate)[0, :n].numpy()
        assert got.dtype == np.float32 and got.shape == block.shape
        np.testing.assert_allclose(got, want, atol=1e-5 * float(np.abs(want).max()))


async def test_a_tiny_tail_is_denoised_too(engine, stream) -> None:
    samples, rate = stream
    out = await run_stream(streamer(engine), as_chunks(samples[:500], rate, START, []))
    assert sum(c.frames for c in out) == 500


async def test_bad_input_is_refused(engine) -> None:
    denoiser = streamer(engine)
    stereo = as_chunks(np.zeros(4000, np.float32), 48000, START, [])[0]
    stereo = type(stereo)(**{**_fields(stereo), "samples": np.zeros((2, 4000), np.float32)})
    with pytest.raises(ValueError, match="mono"):
        await denoiser.feed(stereo)
    with pytest.raises(ValueError, match="block_grids"):
        StreamDenoiseSettings(block_grids=0)


def _fields(chunk) -> dict:
    return {name: getattr(chunk, name) for name in chunk.__slots__}
