"""Engines as Ray actors: one ``InferenceEngine`` per actor (``cluster.engines_per_node`` on each
node, each taking ``engine_cpus``/``engine_gpus``), shared by every unit running on that node, so
windows from all of them are batched together as the feeds of one daemon are.

An actor is async: each ``score``/``denoise`` call awaits the engine, whose worker thread takes
the requests of all units in batches. A unit reaches its node's actors by name
(``engine_name``); the driver creates them and owns them.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray

from monitor.detect.records import PipelineModels
from monitor.runtime import wiring
from monitor.runtime.daemon import EngineSource

NAMESPACE = "hydromon"


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """What a unit's daemon needs of the models that live in an engine actor."""

    window_seconds: float  # the classifier's window
    identity: PipelineModels  # names and checksums (the detection ids hash the classifier's)
    denoise_geometry: tuple[float, int] | None


def engine_name(scope: str, node_id: str, index: int) -> str:
    return f"engine-{scope}-{node_id}-{index}"


@ray.remote
class EngineActor:
    """Loads the configured models on its node and scores for every unit there."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.engine: Any = None
        self.info: EngineInfo | None = None
        self.lock: asyncio.Lock | None = None

    async def ready(self) -> EngineInfo:
        if self.lock is None:
            self.lock = asyncio.Lock()
        async with self.lock:
            if self.info is None:
                models, engine = await wiring.open_engine(self.config)
                engine.start()
                await engine.wait_ready()
                self.engine = engine
                window = models.classifier.window_seconds
                self.info = EngineInfo(window, models.identity, engine.denoise_geometry)
        return self.info

    async def score(self, windows: list[tuple[np.ndarray, int, bool]]) -> list[dict[str, float]]:
        """Scores of ``(samples, sample_rate, denoise)`` windows, batched by the engine with
        every other unit's."""
        scored = [self.engine.score(s, rate, denoise=denoise) for s, rate, denoise in windows]
        return [dict(scores) for scores in await asyncio.gather(*scored)]

    async def denoise(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        return np.asarray(await self.engine.denoise(samples, sample_rate))

    async def batches(self) -> dict[int, int]:
        """Batch size → batches run (the bench reads how well units were batched together)."""
        return dict(self.engine.stats().batch_sizes) if self.engine is not None else {}


@dataclass
class _Totals:
    """The daemon samples engine totals for its metrics; a unit's live in the actor."""

    batch_sizes: Counter[int] = field(default_factory=Counter)
    batches: int = 0
    inference_seconds: float = 0.0


class RemoteEngine:
    """The engine surface a daemon uses, backed by an engine actor (start and stop are the
    actor's owner's business). The windows a pipeline submits in one step of the event loop
    (a segment's worth) go to the actor in one call: a Ray call costs more than a tiny
    model's window."""

    def __init__(self, actor: Any, info: EngineInfo) -> None:
        self.actor = actor
        self.info = info
        self._waiting: list[tuple[np.ndarray, int, bool, asyncio.Future[dict[str, float]]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    @property
    def window_seconds(self) -> float:
        return self.info.window_seconds

    @property
    def denoise_geometry(self) -> tuple[float, int] | None:
        return self.info.denoise_geometry

    def start(self) -> None:
        pass

    async def wait_ready(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def stats(self) -> _Totals:
        return _Totals()

    async def score(
        self, samples: np.ndarray, sample_rate: int, *, denoise: bool = True
    ) -> dict[str, float]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, float]] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._send)  # after the other windows submitted in this step
        self._waiting.append((samples, sample_rate, denoise, future))
        return await future

    def _send(self) -> None:
        waiting, self._waiting = self._waiting, []
        ref = self.actor.score.remote([(s, rate, denoise) for s, rate, denoise, _f in waiting])
        task = asyncio.get_running_loop().create_task(self._deliver(ref, [f for *_w, f in waiting]))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _deliver(self, ref: Any, futures: list[asyncio.Future[dict[str, float]]]) -> None:
        try:
            results = await ref
        except Exception as error:
            for future in futures:
                if not future.done():
                    future.set_exception(error)
            return
        for future, scores in zip(futures, results, strict=True):
            if not future.done():  # a caller that gave up (its run failed)
                future.set_result(scores)

    async def denoise(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        denoised: np.ndarray = await self.actor.denoise.remote(samples, sample_rate)
        return denoised


def node_engines(names: list[str], scope: str, unit_id: str, per_node: int) -> str:
    """The engine a unit uses: one of its own node's (picked by a stable hash of the unit), else
    the first of ``names`` that exists (a node that joined after the driver started)."""
    node_id = ray.get_runtime_context().get_node_id()
    index = int.from_bytes(hashlib.sha256(unit_id.encode()).digest()[:4], "big") % per_node
    local = engine_name(scope, node_id, index)
    return local if local in names else names[0]


def actor_engines(name: str) -> EngineSource:
    """A daemon's ``engines``: the models' description and a ``RemoteEngine`` on actor ``name``."""

    async def opened(config: Any) -> tuple[wiring.Models, Any]:
        actor = ray.get_actor(name, namespace=NAMESPACE)
        info: EngineInfo = await actor.ready.remote()
        # The daemon reads the classifier's window from ``models.classifier``.
        return wiring.Models(info, None, info.identity), RemoteEngine(actor, info)  # type: ignore[arg-type]

    return opened
