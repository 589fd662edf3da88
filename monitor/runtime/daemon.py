"""The daemon: one engine, the outputs, the health server and one supervised pipeline per feed.

``hydromon run`` and ``hydromon replay`` both build a ``Daemon`` with a mode (``LiveMode``,
``ReplayMode`` from ``monitor.runtime.modes``) and the outputs and servers to start; the mode
decides the segment source, the state scope, the window range, whether feed status is published
and what a finished feed does with its resume point.

The state directory is locked for the whole run (one daemon per state directory) and each
feed's saved resume point is read here, once, before anything starts.

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
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from prometheus_client import Counter

from monitor.api.events import EventHub
from monitor.api.routes import Api
from monitor.audio.windows import WindowSettings
from monitor.detect.records import FeedState, FeedStatus
from monitor.health.board import HealthBoard
from monitor.health.http import HealthServer
from monitor.health.logs import get_logger
from monitor.health.metrics import Metrics
from monitor.health.observer import FollowerHealthObserver
from monitor.index.output import IndexOutput
from monitor.ingest.s3 import S3BucketMissing, open_store
from monitor.ingest.store import Store
from monitor.media.writer import MediaWriter
from monitor.publish.fanout import Fanout
from monitor.publish.output import Output, OutputUnusable
from monitor.publish.websocket import WebsocketOutput
from monitor.runtime import modes, wiring
from monitor.runtime.daemon_settings import DaemonSettings
from monitor.runtime.locks import ExclusiveLock, LockBusy, lock_spool, lock_state_dir
from monitor.runtime.modes import FeedSource, LiveMode, Mode, ReplayMode
from monitor.runtime.pipeline import (
    Decoding,
    FeedPipeline,
    FeedProgress,
    FeedWatch,
    PipelineSettings,
)
from monitor.runtime.resume import FeedStateFile, ResumePoint, StateError
from monitor.runtime.selection import selection_for, selection_margin_s
from monitor.runtime.supervisor import SupervisorSettings, TaskHealth, supervise
from monitor.timebase import utc_now
from monitor.web.routes import add_page_routes

if TYPE_CHECKING:  # the engine imports torch; the daemon loads it only when it runs
    from monitor.inference.engine import InferenceEngine

__all__ = ["Daemon", "DaemonSettings", "LiveMode", "ReplayMode", "serve_until_signalled"]

log = get_logger(__name__)

# Config → the models' description and the engine that scores for this daemon: by default
# loaded here (``wiring.open_engine``); a cluster work unit uses an engine actor's.
EngineSource = Callable[[Any], Awaitable[tuple[wiring.Models, "InferenceEngine"]]]


class Progress(Protocol):
    """Hears how far each feed's audio is processed (the replay progress bar)."""

    def resumed(self, feed: str, until: datetime) -> None:
        """``feed`` goes on from its saved resume point at ``until``."""
        ...

    def update(self, feed: str, until: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class _Feed:
    """What the daemon prepared for one feed before anything runs."""

    state_file: FeedStateFile | None = None
    resume: ResumePoint | None = None


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
        progress: Progress | None = None,
        engines: EngineSource = wiring.open_engine,
    ) -> None:
        if not feeds:
            raise ValueError("no feeds to monitor: enable at least one in the config")
        self.config = config
        self.mode = mode
        self.feeds = list(dict.fromkeys(feeds))
        self.settings = settings or config.daemon
        self.serve_http = serve_http and getattr(config.http, "enabled", True)
        self.progress = progress
        self.engines = engines
        self.metrics = Metrics()
        self.restarts = Counter(
            "hydromon_feed_restarts",
            "Feed tasks restarted after a crash",
            ["feed"],
            registry=self.metrics.registry,
        )
        self.state_write_failures = Counter(
            "hydromon_state_write_failures",
            "Resume-point writes that failed (full or read-only state disk); retried",
            ["feed"],
            registry=self.metrics.registry,
        )
        self.board = HealthBoard(
            config.health,
            self.metrics,
        )
        self.outputs = outputs if outputs is not None else wiring.make_outputs(config)
        # The live SSE stream of the API is one more output, only where the API is served.
        self.events: EventHub | None = None
        if self.serve_http and config.api.enabled:
            self.events = EventHub(config.api.events)
            self.outputs = [*self.outputs, self.events]
        self.index_output = next((o for o in self.outputs if isinstance(o, IndexOutput)), None)
        index = None if self.index_output is None else self.index_output.index
        self.media: MediaWriter | None = None
        if config.media.enabled:
            self.media = MediaWriter(
                config.media, on_removed=None if index is None else index.forget_media
            )
        self.fanout = Fanout(
            self.outputs,
            dataclasses.replace(
                config.fanout, close_timeout_s=self.settings.output_close_timeout_s
            ),
        )
        self.pipelines: dict[str, FeedPipeline] = {}
        self.task_health: dict[str, TaskHealth] = {}
        self.metrics.watch_tasks(self.task_health)
        self.metrics.watch_totals(
            "hydromon_candidates_discarded",
            "Event candidates that never reached the minimum positive windows",
            "feed",
            lambda: {node: p.builder.discarded for node, p in self.pipelines.items()},
        )
        self.metrics.watch_totals(
            "hydromon_websocket_slow_disconnects",
            "Websocket clients closed for falling behind",
            "output",
            lambda: {
                o.name: o.slow_disconnects for o in self.outputs if isinstance(o, WebsocketOutput)
            },
        )
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
        locks: list[ExclusiveLock] = []
        try:
            if self.config.state.dir is not None:
                locks.append(lock_state_dir(Path(self.config.state.dir)))
            for spool in wiring.spool_paths(self.config):
                locks.append(lock_spool(spool))
        except (LockBusy, OSError) as error:
            for lock in locks:
                lock.release()
            log.error("cannot use the state directory or the spool", error=str(error))
            return 2
        try:
            return await self._run(stop)
        finally:
            for lock in locks:
                lock.release()

    async def _run(self, stop: asyncio.Event) -> int:
        config = self.config
        try:
            feeds = self._prepare_feeds()
        except StateError as error:
            log.error("cannot use the saved resume points", error=str(error))
            return 2
        try:
            # The engine picks its device here: an unusable one is a bad config too.
            models, engine = await self.engines(config)
            self.engine = engine
        except (ValueError, OSError) as error:
            log.error("cannot load the models", error=str(error))
            return 2
        window = config.windows.resolved(models.classifier.window_seconds)
        assert window.length_s is not None
        settings = self.settings.pipeline.for_models(
            window.length_s, engine.denoise_geometry, selection_margin_s(config.detector)
        )
        executor = ThreadPoolExecutor(self.settings.decoder_threads, thread_name_prefix="decode")
        code = 0
        try:
            engine.start()
            await engine.wait_ready()
            self.board.engine_loaded = True
            await self.fanout.start()
            if self.media is not None:
                await self.media.start()
            if self.serve_http:
                self.health_server = HealthServer(
                    config.http, self.board, self.metrics, self._http_extensions()
                )
                await self.health_server.start()
            async with open_store(config.s3) as store:
                self.metrics.watch_s3(store.stats)
                for node in self.feeds:
                    self.pipelines[node] = self._pipeline(
                        node, store, models, window, settings, feeds[node], executor, stop
                    )
                code = await self._run_feeds(stop, config.supervisor)
        except OutputUnusable as error:
            log.error("cannot start an output", error=str(error))
            code = 2
        except Exception as error:
            missing = _bucket_missing(error)
            if missing is not None:
                log.error("cannot read the bucket", error=str(missing))
                code = 2
            else:
                log.error("daemon failed", error=f"{type(error).__name__}: {error}", exc_info=error)
                code = 1
        finally:
            closing = asyncio.get_running_loop().time()
            if self.media is not None:
                await self.media.close()
            await self.fanout.close()
            await engine.stop()
            if self.health_server is not None:
                await self.health_server.close()
            executor.shutdown(wait=False, cancel_futures=True)
            if stop.is_set() and self.shutdown_s is not None:
                self.shutdown_s += asyncio.get_running_loop().time() - closing
        log.info("daemon stopped", exit_code=code, shutdown_s=self.shutdown_s)
        return code

    def _http_extensions(self) -> list[Callable[[web.Application], None]]:
        """The API, the media files and the page, on the health server."""
        config = self.config
        if not config.api.enabled:
            return []
        api = Api(
            config.api,
            None if self.index_output is None else self.index_output.index,
            writer=self.index_output,
            hub=self.events,
            board=self.board,
            feeds={node: wiring.feed_info(config, node) for node in self.feeds},
            media_dir=None if self.media is None else self.media.directory,
            token=config.http.token,
        )
        return [api.install, add_page_routes]

    def _pipeline(
        self,
        node: str,
        store: Store,
        models: wiring.Models,
        window: WindowSettings,
        settings: PipelineSettings,
        feed: _Feed,
        executor: ThreadPoolExecutor,
        stop: asyncio.Event,
    ) -> FeedPipeline:
        mode = self.mode
        health = self.board.feed(node)
        status = self._publish_status if mode.publishes_status else None
        # latest.txt and playlist ages → Absent / Offline, published like the other changes
        observer = FollowerHealthObserver(health, status)
        source = mode.source(
            FeedSource(store, node, self.config.follower, settings.resume_margin_s, observer)
        )
        engine = self._engine()
        return FeedPipeline(
            feed=node,
            source=source,
            scorer=engine,
            builder=wiring.make_builder(self.config, models, node),
            publish=self.fanout.publish,
            windows=window,
            stop=stop,
            settings=settings,
            window_range=mode.window_range,
            decoding=Decoding(
                self.config.decoder_for(node),
                executor,
                wiring.stream_denoiser_factory(engine, self.config.denoiser.stream),
                selection_for(self.config.detector),
            ),
            state_file=feed.state_file,
            watch=FeedWatch(
                health,
                self.metrics,
                self.board.settings.analysis,
                status,
                None if self.progress is None else self.progress.update,
            ),
            progress=FeedProgress(resume=feed.resume),
            media=self.media,
        )

    def _prepare_feeds(self) -> dict[str, _Feed]:
        """Each feed's state file and saved resume point (none without a state directory): the
        one place a resume point is read; a damaged one is an error before anything runs."""
        directory = self.config.state.dir
        if directory is None:
            return {node: _Feed() for node in self.feeds}
        interval = self.config.state.min_write_interval_s
        feeds = {}
        for node in self.feeds:
            state_file = modes.state_file(
                self.mode, Path(directory), node, interval, self._state_write_failed
            )
            feeds[node] = _Feed(state_file, state_file.load())
        for node, feed in feeds.items():
            if feed.resume is not None and self.progress is not None:
                self.progress.resumed(node, feed.resume.next_window_utc)
        return feeds

    def _state_write_failed(self, node: str, error: OSError) -> None:
        """A resume point could not be written (the feed goes on; the write is retried)."""
        self.state_write_failures.labels(node).inc()
        self.board.feed(node).note_error(
            f"cannot save the resume point: {error}",
            utc_now(),
            "the state disk is full or read-only: the point is kept and the write retried",
        )

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
                        fatal=(S3BucketMissing,),
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
            if self.mode.publishes_status:
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
            held_back = getattr(output, "held_back", None)
            if isinstance(held_back, dict):
                for reason, total in held_back.items():
                    metrics.alerts_held_back_total(output.name, reason, total)
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


class Stoppable(Protocol):
    async def run(self, stop: asyncio.Event) -> int: ...


async def serve_until_signalled(daemon: Stoppable) -> int:
    """Run ``daemon`` (or a cluster replay's driver) until it ends or SIGTERM/SIGINT asks it to
    stop (graceful; a second signal cancels at once)."""
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


def _bucket_missing(error: BaseException) -> S3BucketMissing | None:
    """The missing-bucket error inside ``error`` (the feeds' task group wraps it), if any."""
    if isinstance(error, S3BucketMissing):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            if (found := _bucket_missing(inner)) is not None:
                return found
    return None
