"""The daemon: one engine, the outputs, the health server and one supervised pipeline per feed.

``hydromon run`` and ``hydromon replay`` both build a ``Daemon``; they differ only in the segment
source each feed's pipeline opens (``LiveSource``: follow the live stream from now, from a
backfill time or from the saved resume point; ``ArchiveRange``: read a time range) and in which
outputs and servers they start.

Shutdown (``stop`` set, e.g. by SIGTERM): the feeds stop taking segments, finish the windows in
flight, close open detections and save their resume points; then the outputs drain (the Redis
spool is kept on disk for the next start) and the engine stops. If the feeds have not finished
within ``shutdown_timeout_s`` they are cancelled and the exit code is 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from monitor.audio.windows import WindowSettings
from monitor.detect.records import FeedState, FeedStatus
from monitor.health.board import HealthBoard
from monitor.health.http import HealthServer
from monitor.health.logs import get_logger
from monitor.health.metrics import Metrics
from monitor.health.observer import FollowerHealthObserver
from monitor.inference.engine import InferenceEngine
from monitor.ingest.archive import read_archive
from monitor.ingest.live import FollowerObserver, FollowerSettings, SegmentCursor, follow_live
from monitor.ingest.s3 import S3Store, open_store
from monitor.ingest.slots import Segment, SegmentGap
from monitor.publish.fanout import Fanout
from monitor.publish.output import Output
from monitor.publish.websocket import WebsocketOutput
from monitor.runtime import wiring
from monitor.runtime.pipeline import FeedPipeline, PipelineSettings, SegmentSource
from monitor.runtime.resume import FeedStateFile, ResumePoint, StateError, state_path
from monitor.runtime.settings import DaemonSettings
from monitor.runtime.supervisor import SupervisorSettings, TaskHealth, supervise
from monitor.timebase import format_utc, require_aware, utc_now

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class LiveSource:
    """Follow the live streams: from the resume point, else ``backfill`` ago, else now."""

    backfill: timedelta | None = None


@dataclass(frozen=True, slots=True)
class ArchiveRange:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        # In UTC, so that ``scope`` (and every time derived from the range) reads as UTC.
        object.__setattr__(self, "start", require_aware(self.start))
        object.__setattr__(self, "end", require_aware(self.end))
        if self.end <= self.start:
            raise ValueError(
                f"empty range: {format_utc(self.start)} is not before {format_utc(self.end)}"
            )

    @property
    def scope(self) -> str:
        """The state-file scope of this replay (one resume point per feed and range)."""
        return f"replay-{self.start:%Y%m%dT%H%M%S}Z-{self.end:%Y%m%dT%H%M%S}Z"


Mode = LiveSource | ArchiveRange


def live_source(
    store: S3Store,
    node: str,
    settings: FollowerSettings,
    start_at: datetime | None,
    observer: FollowerObserver | None = None,
) -> SegmentSource:
    def open_segments(resume: ResumePoint | None) -> AsyncIterator[Segment | SegmentGap]:
        if resume is not None:
            cursor = SegmentCursor(resume.folder_epoch, resume.number)
            return follow_live(store, node, settings, cursor=cursor, observer=observer)
        return follow_live(store, node, settings, start_at=start_at, observer=observer)

    return open_segments


def archive_source(
    store: S3Store, node: str, span: ArchiveRange, settings: FollowerSettings, margin_s: float
) -> SegmentSource:
    async def open_segments(resume: ResumePoint | None) -> AsyncIterator[Segment | SegmentGap]:
        begin = span.start
        if resume is not None:
            begin = max(begin, resume.next_window_utc - timedelta(seconds=margin_s))
        if begin >= span.end:
            return
        async for item in read_archive(store, node, begin, span.end, settings.archive):
            yield item

    return open_segments


class Daemon:
    """Build with the effective config and a mode; ``await run(stop)`` returns the exit code."""

    def __init__(
        self,
        config: Any,
        mode: Mode,
        feeds: list[str],
        *,
        settings: DaemonSettings | None = None,
        outputs: list[Output] | None = None,
        serve_http: bool = True,
        on_progress: Callable[[str, datetime], None] | None = None,
    ) -> None:
        if not feeds:
            raise ValueError("no feeds to monitor: enable at least one in the config")
        self.config = config
        self.mode = mode
        self.feeds = list(dict.fromkeys(feeds))
        self.settings = settings or config.daemon
        self.serve_http = serve_http and getattr(config.http, "enabled", True)
        self.on_progress = on_progress
        self.metrics = Metrics()
        self.restarts = Counter(
            "hydromon_feed_restarts",
            "Feed tasks restarted after a crash",
            ["feed"],
            registry=self.metrics.registry,
        )
        self.board = HealthBoard(
            config.health,
            self.metrics,
        )
        self.outputs = outputs if outputs is not None else wiring.make_outputs(config)
        self.fanout = Fanout(
            self.outputs,
            dataclasses.replace(
                config.fanout, close_timeout_s=self.settings.output_close_timeout_s
            ),
        )
        self.pipelines: dict[str, FeedPipeline] = {}
        self.task_health: dict[str, TaskHealth] = {}
        self.engine: InferenceEngine | None = None
        self.health_server: HealthServer | None = None
        self.started = asyncio.Event()  # set once every feed task runs
        self.shutdown_s: float | None = None  # how long the stop took (feeds + outputs)

    @property
    def websocket_port(self) -> int | None:
        for output in self.outputs:
            if isinstance(output, WebsocketOutput):
                return output.port
        return None

    @property
    def http_port(self) -> int | None:
        return None if self.health_server is None else self.health_server.port

    async def run(self, stop: asyncio.Event) -> int:
        config = self.config
        try:
            models = await wiring.load_models(config)
            # The engine picks its device here: an unusable one is a bad config too.
            engine = self.engine = wiring.make_engine(config, models)
        except (ValueError, OSError) as error:
            log.error("cannot load the models", error=str(error))
            return 2
        try:
            state_files = self._state_files()
        except StateError as error:
            log.error("cannot use the saved resume points", error=str(error))
            return 2
        follower = config.follower
        window = config.windows.resolved(models.classifier.window_seconds)
        assert window.length_s is not None
        pipeline = self.settings.pipeline
        # The ring must hold a window and a segment's worth of decoding ahead of it.
        ring_seconds = max(pipeline.ring_seconds, window.length_s * 2 + 20.0)
        supervisor = config.supervisor
        margin_s = pipeline.resume_margin_s
        if engine.denoise_geometry is not None:
            # A resumed stream denoiser needs its left context re-read too, so the first
            # windows after a restart are denoised as in an unbroken run.
            grid_seconds, context_grids = engine.denoise_geometry
            margin_s += grid_seconds * context_grids
        pipeline_settings = dataclasses.replace(
            pipeline, ring_seconds=ring_seconds, resume_margin_s=margin_s
        )
        executor = ThreadPoolExecutor(self.settings.decoder_threads, thread_name_prefix="decode")
        code = 0
        try:
            engine.start()
            await engine.wait_ready()
            self.board.engine_loaded = True
            await self.fanout.start()
            if self.serve_http:
                self.health_server = HealthServer(config.http, self.board, self.metrics)
                await self.health_server.start()
            async with open_store(config.s3) as store:
                for node in self.feeds:
                    self.pipelines[node] = self._pipeline(
                        node, store, models, follower, window, pipeline_settings,
                        state_files.get(node), executor, stop,
                    )  # fmt: skip
                code = await self._run_feeds(stop, supervisor)
        except Exception as error:
            log.error("daemon failed", error=f"{type(error).__name__}: {error}", exc_info=error)
            code = 1
        finally:
            closing = asyncio.get_running_loop().time()
            await self.fanout.close()
            await engine.stop()
            if self.health_server is not None:
                await self.health_server.close()
            executor.shutdown(wait=False, cancel_futures=True)
            if stop.is_set() and self.shutdown_s is not None:
                self.shutdown_s += asyncio.get_running_loop().time() - closing
        log.info("daemon stopped", exit_code=code, shutdown_s=self.shutdown_s)
        return code

    def _pipeline(
        self,
        node: str,
        store: S3Store,
        models: wiring.Models,
        follower: FollowerSettings,
        window: WindowSettings,
        settings: PipelineSettings,
        state_file: FeedStateFile | None,
        executor: ThreadPoolExecutor,
        stop: asyncio.Event,
    ) -> FeedPipeline:
        mode = self.mode
        window_from: datetime | None = None
        window_until: datetime | None = None
        if isinstance(mode, ArchiveRange):
            source = archive_source(store, node, mode, follower, settings.resume_margin_s)
            window_from, window_until = mode.start, mode.end
        else:
            start_at = utc_now() - mode.backfill if mode.backfill is not None else None
            # latest.txt and playlist ages → Absent / Offline, published like the other changes
            observer = FollowerHealthObserver(self.board.feed(node), self._publish_status)
            source = live_source(store, node, follower, start_at, observer)
        return FeedPipeline(
            feed=node,
            source=source,
            scorer=self._engine(),
            builder=wiring.make_builder(self.config, models, node),
            publish=self.fanout.publish,
            windows=window,
            stop=stop,
            settings=settings,
            decoder=self.config.decoder_for(node),
            executor=executor,
            state_file=state_file,
            health=self.board.feed(node),
            metrics=self.metrics,
            analysis=self.board.settings.analysis,
            on_progress=self.on_progress,
            # Feed health is about the live streams: a replay is "behind" by design.
            on_status=self._publish_status if isinstance(mode, LiveSource) else None,
            window_from=window_from,
            window_until=window_until,
            forget_when_done=isinstance(mode, ArchiveRange),
            stream_denoiser=wiring.stream_denoiser_factory(
                self._engine(), self.config.denoiser.stream
            ),
        )

    def _state_files(self) -> dict[str, FeedStateFile]:
        """One resume-point file per feed (none without a state directory); a damaged one is
        an error here, before anything runs."""
        state = self.config.state
        if state.dir is None:
            return {}
        scope = self.mode.scope if isinstance(self.mode, ArchiveRange) else "live"
        files = {}
        for node in self.feeds:
            path = state_path(Path(state.dir), scope, node)
            files[node] = FeedStateFile(path, node, state.min_write_interval_s)
            files[node].load()
        return files

    def _engine(self) -> InferenceEngine:
        assert self.engine is not None
        return self.engine

    async def _run_feeds(self, stop: asyncio.Event, supervisor: SupervisorSettings) -> int:
        feeds = asyncio.create_task(self._supervise_all(stop, supervisor), name="feeds")
        ticker = asyncio.create_task(self._tick(), name="health-tick")
        stop_wait = asyncio.create_task(stop.wait(), name="stop-wait")
        code = 0
        try:
            await asyncio.wait({feeds, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            self.board.stopping = stop.is_set()
            if not feeds.done():
                log.info("stopping: draining the feeds", timeout_s=self.settings.shutdown_timeout_s)
                began = asyncio.get_running_loop().time()
                try:
                    await asyncio.wait_for(asyncio.shield(feeds), self.settings.shutdown_timeout_s)
                except TimeoutError:
                    log.error(
                        "feeds did not stop in time: cancelling",
                        timeout_s=self.settings.shutdown_timeout_s,
                    )
                    feeds.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await feeds
                    code = 1
                self.shutdown_s = asyncio.get_running_loop().time() - began
            else:
                feeds.result()
        finally:
            for task in (ticker, stop_wait, feeds):
                task.cancel()
            await asyncio.gather(ticker, stop_wait, feeds, return_exceptions=True)
        return code

    async def _supervise_all(self, stop: asyncio.Event, supervisor: SupervisorSettings) -> None:
        async with asyncio.TaskGroup() as group:
            for node, pipeline in self.pipelines.items():
                health = self.task_health[node] = TaskHealth(node)
                group.create_task(
                    supervise(
                        f"feed:{node}",
                        pipeline.run_once,
                        supervisor,
                        health,
                        on_crash=self._crashed,
                        stop=stop,
                    ),
                    name=f"feed-{node}",
                )
            self.board.ingest_started = True
            self.started.set()

    def _crashed(self, name: str, error: BaseException) -> None:
        node = name.removeprefix("feed:")
        self.restarts.labels(node).inc()
        health = self.board.feed(node)
        health.note_restart()
        health.note_error(f"{type(error).__name__}: {error}", utc_now(), "the feed task restarts")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_tick_s)
            changes = self.board.tick(utc_now())
            if isinstance(self.mode, LiveSource):  # a replay is "behind" by design: no status
                for message in changes:
                    await self._publish_status(message)
            self._sample_metrics()

    def _sample_metrics(self) -> None:
        """Metrics kept as running totals by the engine and the outputs."""
        metrics = self.metrics
        if self.engine is not None:
            stats = self.engine.stats()
            metrics.engine_totals(stats.batch_sizes, stats.batches, stats.inference_seconds)
        for output in self.outputs:
            fanout = self.fanout.stats.get(output.name)
            # lost by the fan-out (raised, queue full) + Redis deliveries that fell back to the
            # spool (redelivered later, but each is a failed publish to Redis)
            failed = 0 if fanout is None else fanout.failed + fanout.dropped
            failed += int(getattr(getattr(output, "stats", None), "errors", 0) or 0)
            metrics.publish_failures_total(output.name, failed)
            depth = getattr(output, "spool_depth", None)
            if isinstance(depth, int):
                metrics.set_spool_depth(output.name, depth)
            if isinstance(output, WebsocketOutput):
                metrics.set_websocket_clients(output.client_count)

    async def _publish_status(self, change: FeedStatus) -> None:
        """A health change, published with the feed's configured name and place."""
        self.board.changed(change)
        if change.state is FeedState.UNKNOWN:
            return
        status = dataclasses.replace(change, feed=wiring.feed_info(self.config, change.feed.node))
        log.info("feed state", feed=status.feed.node, state=str(status.state))
        await self.fanout.publish(status)


async def serve_until_signalled(daemon: Daemon) -> int:
    """Run ``daemon`` until it ends or SIGTERM/SIGINT asks it to stop (graceful; a second
    signal cancels at once)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main = asyncio.current_task()
    signals = (signal.SIGTERM, signal.SIGINT)

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second signal: stopping now", signal=signal.Signals(signum).name)
            if main is not None:
                main.cancel()
            return
        log.info("signal received: stopping", signal=signal.Signals(signum).name)
        stop.set()

    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await daemon.run(stop)
    except asyncio.CancelledError:
        return 130
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
