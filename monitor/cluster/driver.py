"""``hydromon replay --cluster``: the range's work units as Ray tasks, the engines as actors.

The driver connects to Ray (``local`` starts a cluster on this machine, ``auto`` joins the one
this machine belongs to, ``ray://host:port`` is a Ray client), creates the engine actors on each
node, submits the units not yet in the ledger (a bounded number in flight) and, as they finish,
publishes the detections they own through the configured outputs, each feed's units in time
order, then records them in the ledger. Ray retries a unit whose worker died
(``cluster.unit_retries``); a unit that failed otherwise is reported (status file, progress bar,
exit code 1) and runs again when the same replay is run again. Outputs de-duplicate by message
id, so a unit published twice (the driver killed between publishing and recording it) adds
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from monitor.cluster.ledger import ReplayStatus, UnitLedger, ledger_scope, write_status
from monitor.cluster.ray_engine import (
    NAMESPACE,
    EngineActor,
    EngineInfo,
    actor_engines,
    engine_name,
    node_engines,
)
from monitor.cluster.unit import UnitHook, UnitResult, run_unit
from monitor.cluster.units import ReplayRange, WorkUnit, plan_units
from monitor.health.logs import configure_logging, get_logger
from monitor.publish.output import Output
from monitor.runtime.modes import ReplayMode
from monitor.runtime.progress import ReplayProgress
from monitor.runtime.selection import selection_margin_s
from monitor.timebase import format_utc, utc_now

log = get_logger(__name__)


class ClusterError(RuntimeError):
    """The cluster cannot run this replay (address, resources, models): one line for the user."""


def connect(address: str, local_cpus: int) -> None:
    """Join (or, for ``local``, start) the Ray cluster at ``address``."""
    options: dict[str, Any] = {"namespace": NAMESPACE, "configure_logging": False}
    if address == "local":
        options |= {"include_dashboard": False, "log_to_driver": False}
        if local_cpus:
            options["num_cpus"] = local_cpus
        ray.init(**options)
    elif address == "auto" or address.startswith("ray://"):
        ray.init(address=address, **options)
    else:
        raise ClusterError(f"--cluster {address!r}: expected local, auto or ray://HOST:PORT")


@ray.remote
def _replay_unit(
    config: Any,
    unit: WorkUnit,
    span: ReplayRange,
    engines: list[str],
    scope: str,
    window_s: float,
    margin_s: float,
    hook: UnitHook | None,
) -> UnitResult:
    configure_logging(json_lines=True, level="warning")
    name = node_engines(engines, scope, unit.id, config.cluster.engines_per_node)
    run = run_unit(
        config,
        unit,
        span,
        actor_engines(name),
        window_s=window_s,
        margin_s=margin_s,
        hook=hook,
    )
    return asyncio.run(run)


@dataclass
class _Feed:
    """One feed's units in time order and how far they are published."""

    units: list[WorkUnit]
    published: int = 0  # units[:published] are published (or were, by an earlier run)
    finished: dict[str, UnitResult] = field(default_factory=dict)  # done, waiting for order


class ClusterReplay:
    """One cluster replay of ``span``; ``await run(stop)`` returns the exit code."""

    def __init__(
        self,
        config: Any,
        span: ReplayRange,
        outputs: list[Output],
        *,
        state_dir: Path | None,
        status_path: Path | None = None,
        progress: ReplayProgress | None = None,
        hook: UnitHook | None = None,
    ) -> None:
        self.config = config
        self.settings = config.cluster
        self.span = span
        self.outputs = outputs
        self.hook = hook
        self.units = plan_units(span, self.settings.unit_s)
        range_scope = ReplayMode(span.start, span.end).scope
        scope = ledger_scope(range_scope, self.settings.unit_s)
        self.ledger = None if state_dir is None else UnitLedger(state_dir / f"{scope}.units.jsonl")
        if status_path is None and state_dir is not None:
            status_path = state_dir / f"{scope}.status.json"
        self.status_path = status_path
        self.progress = progress
        self.run_id = uuid.uuid4().hex[:8]  # engine actor names of this run
        self.status = ReplayStatus(
            format_utc(span.start),
            format_utc(span.end),
            list(span.feeds),
            self.settings.unit_s,
            len(self.units),
            audio_hours_total=span.seconds / 3600,
        )
        self.results: list[UnitResult] = []  # this run's, as published
        self._began = time.monotonic()
        self._done_s_now = 0.0  # range seconds done by this run

    async def run(self, stop: asyncio.Event) -> int:
        engines, names = self._start_engines()
        try:
            infos: list[EngineInfo] = await asyncio.gather(*(a.ready.remote() for a in engines))
        except RayError as error:
            for actor in engines:
                ray.kill(actor)
            raise ClusterError(f"the engine actors could not load the models: {error}") from None
        info = infos[0]
        window = self.config.windows.resolved(info.window_seconds)
        assert window.length_s is not None
        # The units' resume margin is the single-process daemon's: stage 1's history included.
        pipeline = self.config.daemon.pipeline.for_models(
            window.length_s, info.denoise_geometry, selection_margin_s(self.config.detector)
        )
        config_ref = ray.put(self.config)

        feeds = {feed: _Feed([u for u in self.units if u.feed == feed]) for feed in self.span.feeds}
        todo = deque(unit for unit in self.units if not self._done_before(unit))
        self._skip_done(feeds)
        in_flight: dict[Any, WorkUnit] = {}
        limit = self._in_flight_limit()
        for output in self.outputs:
            await output.start()
        try:
            while (todo or in_flight) and not stop.is_set():
                while todo and len(in_flight) < limit:
                    unit = todo.popleft()
                    ref = _replay_unit.options(
                        num_cpus=self.settings.unit_cpus, max_retries=self.settings.unit_retries
                    ).remote(
                        config_ref,
                        unit,
                        self.span,
                        names,
                        self.run_id,
                        window.length_s,
                        pipeline.resume_margin_s,
                        self.hook,
                    )
                    in_flight[ref] = unit
                self.status.units_running = len(in_flight)
                wait_s = self.settings.status_interval_s
                ready, _ = await asyncio.to_thread(
                    ray.wait, list(in_flight), num_returns=1, timeout=wait_s
                )
                for ref in ready:
                    unit = in_flight.pop(ref)
                    try:
                        result: UnitResult = await asyncio.wrap_future(ref.future())
                    except Exception as error:
                        self._failed(unit, error)
                        continue
                    feeds[unit.feed].finished[unit.id] = result
                    await self._publish_in_order(feeds[unit.feed])
                self._write_status()
        finally:
            for ref in in_flight:
                ray.cancel(ref, force=True)
            # Units held back behind a failed one are published now (out of order).
            for feed in feeds.values():
                for result in list(feed.finished.values()):
                    await self._publish(feed, result)
            for output in self.outputs:
                await output.close()
            await self._engine_batches(engines)
            for actor in engines:
                ray.kill(actor)
        self.status.units_running = 0
        complete = self.status.units_done == len(self.units)
        self.status.finished = complete
        self._write_status()
        return 0 if complete else 1

    def _start_engines(self) -> tuple[list[Any], list[str]]:
        """``engines_per_node`` actors (and their names) on each node with the resources."""
        settings = self.settings
        actors: list[Any] = []
        names: list[str] = []
        for node in ray.nodes():
            resources = node.get("Resources", {})
            fits = resources.get("CPU", 0) >= settings.engine_cpus * settings.engines_per_node
            fits &= resources.get("GPU", 0) >= settings.engine_gpus * settings.engines_per_node
            if not node.get("Alive") or not fits:
                continue
            for index in range(settings.engines_per_node):
                name = engine_name(self.run_id, node["NodeID"], index)
                names.append(name)
                actors.append(
                    EngineActor.options(
                        name=name,
                        namespace=NAMESPACE,
                        num_cpus=settings.engine_cpus,
                        num_gpus=settings.engine_gpus,
                        max_restarts=settings.unit_retries,
                        max_task_retries=settings.unit_retries,
                        scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], False),
                    ).remote(self.config)
                )
        if not actors:
            raise ClusterError(
                f"no Ray node has {settings.engine_cpus} CPU and {settings.engine_gpus} GPU "
                f"for each of cluster.engines_per_node = {settings.engines_per_node} engines"
            )
        return actors, names

    async def _engine_batches(self, engines: list[Any]) -> None:
        """The engines' batch sizes (batches across units show here), into the status."""
        totals: dict[str, int] = {}
        try:
            counts = await asyncio.wait_for(
                asyncio.gather(*(actor.batches.remote() for actor in engines)), 10
            )
        except (RayError, TimeoutError):
            return
        for count in counts:
            for size, batches in count.items():
                totals[str(size)] = totals.get(str(size), 0) + batches
        self.status.engine_batches = dict(sorted(totals.items(), key=lambda item: int(item[0])))

    def _in_flight_limit(self) -> int:
        """Twice the units that can run at once: the next ones are queued when one ends."""
        cpus = ray.cluster_resources().get("CPU", 1.0)
        slots = cpus / self.settings.unit_cpus if self.settings.unit_cpus > 0 else len(self.units)
        return max(2, int(2 * slots))

    def _done_before(self, unit: WorkUnit) -> bool:
        return self.ledger is not None and unit.id in self.ledger.done

    def _skip_done(self, feeds: dict[str, _Feed]) -> None:
        for feed in feeds.values():
            for unit in feed.units:
                if self._done_before(unit):
                    self.status.units_done += 1
                    self.status.units_done_before += 1
                    self.status.audio_hours_done += unit.seconds / 3600
                    if self.progress is not None:
                        self.progress.add(unit.feed, unit.seconds, earlier=True)
            while feed.published < len(feed.units) and self._done_before(
                feed.units[feed.published]
            ):
                feed.published += 1

    async def _publish_in_order(self, feed: _Feed) -> None:
        while feed.published < len(feed.units):
            unit = feed.units[feed.published]
            if self._done_before(unit):
                feed.published += 1
                continue
            result = feed.finished.get(unit.id)
            if result is None:
                return
            await self._publish(feed, result)
            feed.published += 1

    async def _publish(self, feed: _Feed, result: UnitResult) -> None:
        unit = result.unit
        feed.finished.pop(unit.id, None)
        try:
            for message in result.messages:
                for output in self.outputs:
                    await output.publish(message)
        except Exception as error:
            self._failed(unit, error)
            return
        if self.ledger is not None:
            self.ledger.record(
                unit.id, messages=len(result.messages), audio_s=round(result.audio_s, 3)
            )
        self.results.append(result)
        status = self.status
        status.units_done += 1
        status.audio_hours_done += unit.seconds / 3600
        status.audio_hours_decoded += result.audio_s / 3600
        self._done_s_now += unit.seconds
        if self.progress is not None:
            self.progress.add(unit.feed, unit.seconds)
        log.info(
            "unit done",
            unit=unit.id,
            detections=len(result.messages),
            warmup_s=result.warmup_s,
            attempts=result.attempts,
        )

    def _failed(self, unit: WorkUnit, error: BaseException) -> None:
        text = str(error).strip().splitlines()
        reason = f"{type(error).__name__}: {text[-1] if text else ''}"
        log.error("unit failed", unit=unit.id, error=reason)
        self.status.units_failed += 1
        self.status.failed.append({"unit": unit.id, "error": reason})
        if self.progress is not None:
            self.progress.failed(self.status.units_failed)

    def _write_status(self) -> None:
        status = self.status
        elapsed = time.monotonic() - self._began
        status.x_real_time = self._done_s_now / elapsed if elapsed > 0 else 0.0
        left_s = (status.audio_hours_total - status.audio_hours_done) * 3600
        status.eta_s = left_s / status.x_real_time if status.x_real_time > 0 else None
        status.updated_utc = format_utc(utc_now())
        if self.status_path is not None:
            with contextlib.suppress(OSError):  # a status file never stops the replay
                write_status(self.status_path, status)


def shutdown() -> None:
    """Leave the cluster (a ``local`` one stops)."""
    if ray.is_initialized():
        ray.shutdown()
