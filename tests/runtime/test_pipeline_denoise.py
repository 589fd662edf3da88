"""The feed pipeline with a (tiny, real) denoiser: each feed's stream is denoised once and the
windows are cut from the denoised audio, then scored without the denoiser."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from monitor.audio.decode import ContinuousDecoder
from monitor.audio.windows import WindowSettings
from monitor.ingest.slots import SegmentGap
from monitor.runtime.pipeline import Decoding, FeedPipeline, PipelineSettings
from monitor.runtime.wiring import stream_denoiser_factory
from monitor.timebase import samples_between
from tests.support.pipeline import Collector, builder, list_source, noise_segments
from tests.support.stream_denoise import calibrated_denoiser, engine_with

WINDOWS = WindowSettings(length_s=1.0, hop_s=0.5)


@pytest.fixture(scope="module")
def segments():
    return noise_segments(40.0)


def decoded_runs(items) -> list[tuple[object, np.ndarray]]:
    """(start, samples) of each continuous run the real decoder makes of ``items``."""
    runs: list[tuple[object, list[np.ndarray]]] = []
    for out in ContinuousDecoder().feed_all(items):
        if isinstance(out, SegmentGap):
            continue
        if not runs or out.gap_before:
            runs.append((out.start_utc, []))
        runs[-1][1].append(out.samples[0])
    return [(start, np.concatenate(parts)) for start, parts in runs]


class Recording:
    """The real engine, recording what each window was scored with."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.calls: list[tuple[object, bool]] = []

    async def score(self, samples, sample_rate, *, denoise=True):
        self.calls.append((samples.copy(), denoise))
        return await self.engine.score(samples, sample_rate, denoise=denoise)


@pytest.fixture
async def engine(segments, tmp_path: Path):
    (_, samples), *_ = decoded_runs(segments[:2])
    engine = engine_with(calibrated_denoiser(samples, 48000), tmp_path / "tiny", max_wait_ms=5)
    engine.start()
    await engine.wait_ready()
    yield engine
    await engine.stop()


async def run_pipeline(engine, items) -> tuple[FeedPipeline, Recording, list]:
    recording = Recording(engine)
    windows: list = []
    pipeline = FeedPipeline(
        feed="rpi_test",
        source=list_source(items),
        scorer=recording,
        builder=builder(0.0),
        publish=Collector().publish,
        windows=WINDOWS,
        stop=asyncio.Event(),
        settings=PipelineSettings(in_flight_windows=4, analyze_audio=False),
        decoding=Decoding(stream_denoiser=stream_denoiser_factory(engine)),
    )
    original = pipeline.builder.observe

    def observe(window, scores, **kwargs):
        windows.append(window)
        return original(window, scores, **kwargs)

    pipeline.builder.observe = observe  # type: ignore[method-assign]
    await pipeline.run_once()
    return pipeline, recording, windows


async def assert_windows_are_denoised_audio(engine, items, windows, recording) -> None:
    runs = [
        (start, await engine.denoise(samples, 48000), samples)
        for start, samples in decoded_runs(items)
    ]
    assert all(denoise is False for _, denoise in recording.calls)
    for window, (scored, _) in zip(windows, recording.calls, strict=True):
        assert np.array_equal(window.samples, scored)
        start, clean, raw = next(r for r in reversed(runs) if r[0] <= window.start_utc)
        at = samples_between(start, window.start_utc, 48000)
        n = window.samples.shape[0]
        want = clean[at : at + n]
        assert want.shape == window.samples.shape
        scale = float(np.abs(want).max())
        np.testing.assert_allclose(window.samples, want, atol=1e-5 * scale)
        # and not the raw audio
        assert np.abs(window.samples - raw[at : at + n]).max() > 0.05 * scale


async def test_windows_are_cut_from_the_stream_denoised_once(engine, segments) -> None:
    pipeline, recording, windows = await run_pipeline(engine, segments)
    progress = pipeline.progress
    # The same windows as without a denoiser: the audio held back for context is flushed at
    # the end of the source, so the last windows are scored too.
    assert progress.first_window == segments[0].start_utc
    span = (progress.last_window - progress.first_window).total_seconds()
    assert progress.windows_scored == round(span / WINDOWS.hop_s) + 1 == len(windows)
    ((_, samples),) = decoded_runs(segments)
    assert span == pytest.approx(samples.shape[0] / 48000 - WINDOWS.length_s, abs=WINDOWS.hop_s)
    # The resume point is past the last window scored (updated after the final flush).
    assert progress.resume.next_window_utc > progress.last_window
    # Every second was denoised about once (blocks of 8 grid steps + 2·2 of context), not
    # once per window (1 s windows at a 0.5 s hop would be 2×).
    stats = engine.stats()
    denoised = stats.audio_seconds - len(windows) * WINDOWS.length_s
    assert denoised < 1.6 * samples.shape[0] / 48000
    await assert_windows_are_denoised_audio(engine, segments, windows, recording)


async def test_a_gap_flushes_the_stream_and_restarts_it(engine, segments) -> None:
    hole = segments[2]
    items = [
        *segments[:2],
        SegmentGap(hole.feed, hole.ref, hole.start_utc, hole.end_utc, "missing"),
        *segments[3:],
    ]
    pipeline, recording, windows = await run_pipeline(engine, items)
    assert pipeline.progress.gaps == 1
    # Windows right up to the hole were scored (the run before it was flushed at the gap);
    # like the nodes', segment 1's audio ends up to a frame before the hole's slot starts.
    before = [w for w in windows if w.start_utc < hole.start_utc]
    assert (
        before
        and (hole.start_utc - before[-1].start_utc).total_seconds()
        <= WINDOWS.length_s + WINDOWS.hop_s
    )
    assert all(not w.contains_gap for w in windows)
    await assert_windows_are_denoised_audio(engine, items, windows, recording)


async def test_without_a_denoiser_the_pipeline_gets_no_stream_denoiser(tmp_path) -> None:
    from tests.support.pipeline import tiny_checkpoint, tiny_engine

    assert stream_denoiser_factory(tiny_engine(tiny_checkpoint(tmp_path / "tiny"))) is None
