"""The per-feed pipeline with real parts: real AAC segments, the real decoder, ring buffer,
window scheduler, a real (tiny) AST in the real inference engine, the real event builder."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.audio.windows import WindowSettings
from monitor.ingest.slots import SegmentGap
from monitor.runtime.pipeline import FeedPipeline, FeedProgress, FeedWatch, PipelineSettings
from monitor.runtime.resume import FeedStateFile, state_path
from monitor.timebase import parse_utc
from tests.support.pipeline import (
    Collector,
    builder,
    list_source,
    noise_segments,
    tiny_checkpoint,
    tiny_engine,
)

WINDOWS = WindowSettings(length_s=1.0, hop_s=0.5)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny-ast"))


@pytest.fixture
async def engine(checkpoint: Path):
    engine = tiny_engine(checkpoint)
    engine.start()
    await engine.wait_ready()
    yield engine
    await engine.stop()


@pytest.fixture(scope="module")
def segments():
    return noise_segments(60.0)


def make_pipeline(engine, source, collector, stop, *, threshold=0.0, state_file=None):
    """A pipeline started from ``state_file``'s saved point, as the daemon starts one."""
    resume = None if state_file is None else state_file.load()
    return FeedPipeline(
        feed="rpi_test",
        source=source,
        scorer=engine,
        builder=builder(threshold),
        publish=collector.publish,
        windows=WINDOWS,
        stop=stop,
        settings=PipelineSettings(in_flight_windows=4, analyze_audio=False),
        state_file=state_file,
        progress=FeedProgress(resume=resume),
    )


def restarted(engine, segments, path):
    """A new pipeline (a restarted process) over ``segments`` from the point saved at ``path``."""
    out = Collector()
    state = FeedStateFile(path, "rpi_test")
    return make_pipeline(engine, list_source(segments), out, asyncio.Event(), state_file=state), out


async def test_every_window_on_the_grid_is_scored_once(engine, segments):
    collector = Collector()
    pipeline = make_pipeline(engine, list_source(segments), collector, asyncio.Event())
    await pipeline.run_once()
    progress = pipeline.progress
    # The decoder drops the first AAC frame of segment 0's priming only: audio starts at the
    # segment's start, so the first window starts there (on the 0.5 s grid).
    assert progress.first_window == segments[0].start_utc
    span = (progress.last_window - progress.first_window).total_seconds()
    assert progress.windows_scored == round(span / WINDOWS.hop_s) + 1
    assert progress.segments == len(segments)
    # Threshold 0: every window is positive, so exactly one detection, closed at the end.
    opened, closed = collector.detections("opened"), collector.detections("closed")
    assert len(opened) == len(closed) == 1
    assert closed[0]["id"] == opened[0]["id"]
    assert closed[0]["close_reason"] == "shutdown"
    assert closed[0]["start_utc"] == opened[0]["start_utc"]
    assert closed[0]["window_count"] == progress.windows_scored


async def test_stop_then_resume_from_state_scores_no_window_twice_and_none_lost(
    engine, segments, tmp_path
):
    full = make_pipeline(engine, list_source(segments), Collector(), asyncio.Event())
    await full.run_once()

    stop = asyncio.Event()
    path = state_path(tmp_path, "live", "rpi_test")
    first_out = Collector()

    source = list_source(segments)

    async def slowed(resume):
        async for number, item in _enumerate(source(resume)):
            if number == 3:
                stop.set()  # SIGTERM arrives while segment 3 is being handed over
            yield item

    first = make_pipeline(
        engine, slowed, first_out, stop, state_file=FeedStateFile(path, "rpi_test")
    )
    await first.run_once()
    saved = FeedStateFile(path, "rpi_test").load()
    assert saved is not None
    # The open detection was closed on the way out and delivered.
    assert [m["status"] for m in first_out.detections()] == ["opened", "closed"]
    assert first_out.detections("closed")[0]["close_reason"] == "shutdown"
    assert saved.next_window_utc == first.progress.last_window + timedelta(seconds=0.5)

    second, second_out = restarted(engine, segments, path)
    assert second.progress.resume == saved
    await second.run_once()
    # Continuous and without overlap: the second run starts one hop after the first ended.
    assert second.progress.first_window == saved.next_window_utc
    assert second.progress.last_window == full.progress.last_window
    total = first.progress.windows_scored + second.progress.windows_scored
    assert total == full.progress.windows_scored
    # Deterministic ids: the second run's detection starts where its windows start.
    assert second_out.detections("opened")[0]["start_utc"] != first_out.detections()[0]["start_utc"]


async def test_a_gap_closes_the_detection_and_windows_skip_it(engine, segments):
    items = list(segments[:3])
    hole = segments[3]
    items.append(SegmentGap(hole.feed, hole.ref, hole.start_utc, hole.end_utc, "missing"))
    items += segments[4:]
    collector = Collector()
    pipeline = make_pipeline(engine, list_source(items), collector, asyncio.Event())
    await pipeline.run_once()
    closed = collector.detections("closed")
    assert [m["close_reason"] for m in closed] == ["gap", "shutdown"]
    assert pipeline.progress.gaps == 1
    # No window contains the hole: the first detection ends before it, the second starts after.
    assert parse_utc(closed[0]["end_utc"]) <= hole.start_utc
    assert parse_utc(closed[1]["start_utc"]) >= hole.end_utc


async def test_back_pressure_keeps_the_reader_close_to_the_scorer(checkpoint, segments):
    """A slow engine (max_batch 1, one thread) holds the segment reader back: it is never more
    than the in-flight windows plus one segment ahead of what was scored."""
    engine = tiny_engine(checkpoint)
    engine.start()
    await engine.wait_ready()
    pulled: list[int] = []
    scored_at_pull: list[int] = []
    source = list_source(segments)
    collector = Collector()
    pipeline = make_pipeline(engine, None, collector, asyncio.Event())

    async def watched(resume):
        async for item in source(resume):
            pulled.append(item.ref.number)
            scored_at_pull.append(pipeline.progress.windows_scored)
            yield item

    pipeline.source = watched
    try:
        await pipeline.run_once()
    finally:
        await engine.stop()
    windows_per_segment = 20  # 10 s / 0.5 s hop
    for number, scored in zip(pulled, scored_at_pull, strict=True):
        produced_before = number * windows_per_segment
        assert produced_before - scored <= 4 + windows_per_segment + 1


async def _enumerate(items):
    number = 0
    async for item in items:
        yield number, item
        number += 1


async def test_a_crash_mid_stream_restarts_where_it_was_without_losing_or_repeating(
    engine, segments
):
    """The source fails once (S3 gone) after segment 3; the supervisor restarts the pipeline,
    which re-reads from its resume point: every window is scored once and the one open
    detection simply continues (the event builder outlives the restart)."""
    from monitor.runtime.supervisor import SupervisorSettings, TaskHealth, supervise

    full = make_pipeline(engine, list_source(segments), Collector(), asyncio.Event())
    await full.run_once()

    source = list_source(segments)
    failed = []

    async def failing_once(resume):
        async for item in source(resume):
            if item.ref.number == 4 and not failed:
                failed.append(item.ref.number)
                raise ConnectionError("S3 went away")
            yield item

    collector = Collector()
    pipeline = make_pipeline(engine, failing_once, collector, asyncio.Event())
    health = TaskHealth("feed:rpi_test")
    await supervise("feed:rpi_test", pipeline.run_once, SupervisorSettings(0.01, 0.01), health)
    assert health.restarts == 1 and failed == [4]
    assert source.opened[1] is not None and source.opened[1].number <= 3
    assert pipeline.progress.windows_scored == full.progress.windows_scored
    assert pipeline.progress.first_window == full.progress.first_window
    assert pipeline.progress.last_window == full.progress.last_window
    assert [m["status"] for m in collector.detections()] == ["opened", "closed"]


async def test_a_crash_while_publishing_restarts_after_the_window_the_builder_saw(
    engine, segments
):
    """Publishing the ``opened`` message fails once (a bug in a writer): the restarted task
    starts after the window that opened it, which the event builder has already seen, instead
    of handing it the same window again and crash-looping on "not after the previous one"."""
    from monitor.runtime.supervisor import SupervisorSettings, TaskHealth, supervise

    full = make_pipeline(engine, list_source(segments), Collector(), asyncio.Event())
    await full.run_once()

    class FailsOnce(Collector):
        failed = False

        async def publish(self, message) -> None:
            if not self.failed:
                self.failed = True
                raise RuntimeError("the media writer broke")
            await super().publish(message)

    collector = FailsOnce()
    pipeline = make_pipeline(engine, list_source(segments), collector, asyncio.Event())
    health = TaskHealth("feed:rpi_test")
    await supervise("feed:rpi_test", pipeline.run_once, SupervisorSettings(0.01, 0.01), health)
    assert collector.failed and health.restarts == 1, health.last_error
    assert pipeline.progress.windows_scored == full.progress.windows_scored
    assert pipeline.progress.last_window == full.progress.last_window
    assert [m["status"] for m in collector.detections()] == ["closed"]


async def test_a_kill_while_a_detection_is_open_is_closed_by_the_restart(
    engine, segments, tmp_path
):
    """Killed (no flush, no final save: as SIGKILL) while a detection is open, the restart from
    the saved point re-reads that detection's audio and closes it under the same id: the saved
    ``next_window_utc`` never passes the start of an open detection."""
    path = state_path(tmp_path, "live", "rpi_test")
    source = list_source(segments)
    waiting = asyncio.Event()  # never set: a live stream waiting for its next segment

    async def stalls_at_five(resume):
        async for item in source(resume):
            if item.ref.number == 5:
                await waiting.wait()
            yield item

    first_out = Collector()
    state = FeedStateFile(path, "rpi_test", min_interval_s=0.0)
    first = make_pipeline(engine, stalls_at_five, first_out, asyncio.Event(), state_file=state)
    five_done = asyncio.Event()  # segments 0-4 scored and their resume points saved

    def processed(feed, until):
        if until >= segments[4].end_utc - timedelta(seconds=0.1):
            five_done.set()

    first.watch = FeedWatch(progress=processed)
    run = asyncio.create_task(first.run_once())
    await asyncio.wait_for(five_done.wait(), 60)
    run.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await run
    [opened] = first_out.detections("opened")
    assert not first_out.detections("closed")
    saved = FeedStateFile(path, "rpi_test").load()
    assert saved is not None
    assert saved.next_window_utc <= parse_utc(opened["start_utc"])

    second, second_out = restarted(engine, segments, path)
    await second.run_once()
    assert [m["id"] for m in second_out.detections("closed")] == [opened["id"]]


async def test_a_failing_resume_point_write_keeps_the_feed_running(engine, segments, tmp_path):
    """The state directory is unusable (a regular file stands where it should be: a real
    failing write): the feed scores everything, the point stays pending and each failure is
    reported; once the directory is usable again the point is written."""
    folder = tmp_path / "state"
    folder.write_text("not a directory")
    failures: list[str] = []
    state = FeedStateFile(
        state_path(folder, "live", "rpi_test"),
        "rpi_test",
        min_interval_s=0.0,
        on_error=lambda feed, error: failures.append(feed),
    )
    full = make_pipeline(engine, list_source(segments), Collector(), asyncio.Event())
    await full.run_once()
    pipeline = make_pipeline(
        engine, list_source(segments), Collector(), asyncio.Event(), state_file=None
    )
    pipeline.state_file = state
    await pipeline.run_once()
    assert pipeline.progress.windows_scored == full.progress.windows_scored
    assert failures and set(failures) == {"rpi_test"} and state.failures == len(failures)
    assert state.pending == pipeline.progress.resume and state.error is not None
    folder.unlink()
    await state.flush()
    saved, kept = state.load(), pipeline.progress.resume
    assert saved is not None and kept is not None and state.pending is None
    assert (saved.number, saved.next_window_utc) == (kept.number, kept.next_window_utc)
