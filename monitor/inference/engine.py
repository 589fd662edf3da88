"""One inference engine per process: all feeds' windows, batched, scored in one worker thread.

Callers on any asyncio loop `await engine.score(samples, sample_rate)` (a window → scores) or
`await engine.denoise(samples, sample_rate)` (a block of a feed's stream → denoised audio at the
same rate; the pipeline then scores windows cut from it with `denoise=False`). Requests wait in a
bounded queue (callers await space when it is full); the worker takes up to `max_batch`
requests, waiting at most `max_wait_ms` after the first for more, runs
resample → (denoise) → features → classify under `torch.inference_mode`, and resolves each
caller's future on that caller's loop. Requests of different length or rate in one batch run
as separate sub-batches, so every score equals the unbatched score for that input; denoise
requests of equal length and rate (every feed's steady-state block) share one denoiser call.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import Counter, deque
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torchaudio

from models.device import (
    Precision,
    PrecisionChoice,
    ThreadConfig,
    autocast_at,
    choose_precision,
    configure_threads,
    select_device,
)
from models.interface import (
    Classifier,
    DenoisedAudio,
    Denoiser,
    Scores,
    denoised_audio,
    scores_of,
)
from monitor.inference.engine_settings import EngineSettings

log = logging.getLogger(__name__)

# Audio for the denoiser's precision probe: 257 frames at ORCA-CLEAN's 10 ms hop, i.e. three
# 128-frame chunks at the default 32-frame overlap.
DENOISER_PROBE_SECONDS = 2.56


class EngineStoppedError(RuntimeError):
    """The engine is stopping or stopped (or never started) and takes no new requests."""


@dataclass
class EngineStats:
    requests: int = 0
    failed_requests: int = 0
    batches: int = 0
    failed_batches: int = 0
    batch_sizes: Counter[int] = field(default_factory=Counter)
    inference_seconds: float = 0.0
    audio_seconds: float = 0.0
    queue_depth: int = 0
    waiting_for_space: int = 0  # callers held back by a full queue right now

    def copy(self) -> EngineStats:
        return replace(self, batch_sizes=Counter(self.batch_sizes))


@dataclass
class _Request:
    """One caller's audio. ``denoise``: through the denoiser first; ``classify``: the result is
    ``Scores``, else ``DenoisedAudio`` (then ``denoise`` is true)."""

    samples: np.ndarray
    sample_rate: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    denoise: bool
    classify: bool


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller gave up (cancelled)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _deliver(req: _Request, result: Any = None, error: BaseException | None = None) -> None:
    try:
        req.loop.call_soon_threadsafe(_settle, req.future, result, error)
    except RuntimeError:
        log.debug("caller's event loop is closed; dropping its result")


class InferenceEngine:
    def __init__(
        self,
        classifier: Classifier,
        denoiser: Denoiser | None = None,
        settings: EngineSettings | None = None,
    ) -> None:
        self.classifier = classifier
        self.denoiser = denoiser
        self.settings = settings or EngineSettings()
        self.device = select_device(self.settings.device)
        self.precision: PrecisionChoice | None = None  # the classifier's
        self.denoiser_precision: PrecisionChoice | None = None
        self.threads: ThreadConfig | None = None
        self._cond = threading.Condition()
        self._pending: deque[_Request] = deque()
        self._space_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._state = "new"  # new → running → stopping → stopped
        self._thread: threading.Thread | None = None
        self._stats = EngineStats()
        self._resamplers: dict[tuple[int, int], torchaudio.transforms.Resample] = {}
        self._ready = threading.Event()
        self._setup_error: BaseException | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        return self.classifier.target_labels

    @property
    def window_seconds(self) -> float:
        return self.classifier.window_seconds

    def stats(self) -> EngineStats:
        with self._cond:
            snapshot = self._stats.copy()
            snapshot.queue_depth = len(self._pending)
            snapshot.waiting_for_space = len(self._space_waiters)
        return snapshot

    def start(self) -> None:
        """Start the worker thread (device set-up and the precision probe happen there)."""
        with self._cond:
            if self._state != "new":
                raise RuntimeError(f"engine already {self._state}; make a new one")
            self._state = "running"
        self._thread = threading.Thread(target=self._run, name="inference-engine", daemon=True)
        self._thread.start()

    async def wait_ready(self) -> PrecisionChoice:
        """Wait until set-up is done; raises its error if set-up failed."""
        if self._thread is None:
            raise EngineStoppedError("inference engine was never started: call start() first")
        await asyncio.get_running_loop().run_in_executor(None, self._ready.wait)
        if self._setup_error is not None:
            raise self._setup_error
        assert self.precision is not None
        return self.precision

    async def score(self, samples: np.ndarray, sample_rate: int, *, denoise: bool = True) -> Scores:
        """Score one mono window; returns {target label: score}. With a denoiser, the window is
        denoised first unless ``denoise=False`` (audio the caller already denoised)."""
        through = denoise and self.denoiser is not None
        result: Scores = await self._submit(samples, sample_rate, denoise=through, classify=True)
        return result

    async def denoise(self, samples: np.ndarray, sample_rate: int) -> DenoisedAudio:
        """Denoise one mono block of a stream; returns float32 (n,) at the same rate (resampled
        to the denoiser's rate and back inside the worker). Equal-length blocks are batched."""
        if self.denoiser is None:
            raise RuntimeError("this inference engine has no denoiser")
        result: DenoisedAudio = await self._submit(
            samples, sample_rate, denoise=True, classify=False
        )
        return result

    @property
    def denoise_geometry(self) -> tuple[float, int] | None:
        """(grid seconds, context grids) of the denoiser's chunk grid (see
        `StreamDenoiser`), or None without a denoiser."""
        if self.denoiser is None:
            return None
        return self.denoiser.grid_seconds, self.denoiser.context_grids

    async def _submit(
        self, samples: np.ndarray, sample_rate: int, *, denoise: bool, classify: bool
    ) -> Any:
        samples = _checked(samples, sample_rate)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        request = _Request(samples, int(sample_rate), loop, future, denoise, classify)
        while True:
            with self._cond:
                if self._state != "running":
                    raise EngineStoppedError(f"inference engine is {self._state}")
                if len(self._pending) < self.settings.queue_size:
                    self._pending.append(request)
                    self._cond.notify_all()
                    break
                space: asyncio.Future[None] = loop.create_future()
                self._space_waiters.append((loop, space))
            try:
                await space  # woken when the worker takes requests, or when stopping
            except asyncio.CancelledError:
                with self._cond, suppress(ValueError):  # already woken and removed
                    self._space_waiters.remove((loop, space))
                raise
        return await request.future

    async def stop(self) -> None:
        """Take no new requests, finish every accepted one, then end the worker thread."""
        with self._cond:
            if self._state in ("new", "stopped"):
                self._state = "stopped"
                return
            self._state = "stopping"
            self._cond.notify_all()
            self._wake_space_waiters()
        thread = self._thread
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, thread.join)
        with self._cond:
            self._state = "stopped"

    # --- worker thread -------------------------------------------------------------------

    def _wake_space_waiters(self) -> None:
        waiters, self._space_waiters = self._space_waiters, []
        for loop, fut in waiters:
            with suppress(RuntimeError):  # that caller's loop is closed
                loop.call_soon_threadsafe(_settle, fut, None, None)

    def _setup(self) -> None:
        self.threads = configure_threads(self.settings.num_threads, self.settings.interop_threads)
        self.classifier.to(self.device)
        if self.denoiser is not None:
            self.denoiser.to(self.device)
        tolerance = self.settings.bf16_tolerance
        self.precision = choose_precision(
            self.settings.precision, self.device, self._probe_classifier, tolerance
        )
        self.classifier.precision = self.precision.precision
        if self.denoiser is not None:
            self.denoiser_precision = choose_precision(
                self.settings.precision, self.device, self._probe_denoiser, tolerance
            )
        log.info(
            "inference engine on %s: classifier %s (%s), denoiser %s; threads %s",
            self.device,
            self.precision.precision,
            self.precision.reason,
            self.denoiser_precision,
            self.threads,
        )

    def _probe_audio(self, rate: int, seconds: float) -> torch.Tensor:
        """A fixed synthetic (1, n) input: two tones plus noise."""
        n = round(seconds * rate)
        t = torch.arange(n, dtype=torch.float64) / rate
        generator = torch.Generator().manual_seed(0)
        tones = 0.1 * torch.sin(2 * math.pi * 440 * t) + 0.05 * torch.sin(2 * math.pi * 2500 * t)
        noise = 0.02 * torch.randn(n, generator=generator, dtype=torch.float64)
        return (tones + noise).unsqueeze(0).float().to(self.device)

    def _probe_classifier(self, precision: Precision) -> torch.Tensor:
        """Scores for one probe window. The classifier's cost is fixed by its frame count, so
        the probe is one whole window (shorter audio would only be zero-padded)."""
        audio = self._probe_audio(self.classifier.sample_rate, self.classifier.window_seconds)
        saved = self.classifier.precision
        try:
            self.classifier.precision = precision
            return self.classifier.score(audio)
        finally:
            self.classifier.precision = saved

    def _probe_denoiser(self, precision: Precision) -> torch.Tensor:
        """Final scores with the denoiser at `precision` (the classifier as already chosen).

        The denoiser's cost grows with the audio, so it probes at most DENOISER_PROBE_SECONDS
        (a few overlapping chunks, crossfades included) rather than a whole window.
        """
        assert self.denoiser is not None
        rate = self.denoiser.sample_rate
        seconds = min(self.classifier.window_seconds, DENOISER_PROBE_SECONDS)
        with torch.inference_mode():
            clean = self._denoise(self._probe_audio(rate, seconds), precision)
        return self.classifier.score(clean, rate)

    def _run(self) -> None:
        try:
            self._setup()
        except BaseException as exc:
            log.exception("inference engine set-up failed")
            self._setup_error = exc
        finally:
            self._ready.set()
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if self._setup_error is not None:
                for req in batch:
                    _deliver(
                        req, error=EngineStoppedError(f"engine set-up failed: {self._setup_error}")
                    )
                continue
            try:
                self._run_batch(batch)
            except Exception as exc:  # a bug here must not strand callers or kill the worker
                log.exception("inference engine failed outside a batch")
                for req in batch:
                    _deliver(req, error=exc)

    def _next_batch(self) -> list[_Request] | None:
        max_batch = self.settings.max_batch
        wait_s = self.settings.max_wait_ms / 1000
        with self._cond:
            while not self._pending:
                if self._state != "running":
                    return None
                self._cond.wait()
            deadline = time.monotonic() + wait_s
            while len(self._pending) < max_batch and self._state == "running":
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            take = min(max_batch, len(self._pending))
            batch = [self._pending.popleft() for _ in range(take)]
            self._wake_space_waiters()
            return batch

    def _run_batch(self, batch: list[_Request]) -> None:
        groups: dict[tuple[bool, bool, int, int], list[_Request]] = {}
        for req in batch:
            if not req.future.cancelled():
                key = (req.classify, req.denoise, req.sample_rate, req.samples.shape[0])
                groups.setdefault(key, []).append(req)
        for (classify, denoise, rate, n), reqs in groups.items():
            started = time.perf_counter()
            try:
                waveforms = torch.from_numpy(np.stack([r.samples for r in reqs]))
                if classify:
                    outputs = self._pipeline(waveforms, rate, denoise).numpy()
                else:
                    outputs = self._denoise_at(waveforms, rate).numpy()
                error = None
            except Exception as exc:
                log.exception("inference batch of %d failed", len(reqs))
                error = exc
            elapsed = time.perf_counter() - started
            with self._cond:
                stats = self._stats
                stats.batches += 1
                stats.requests += len(reqs)
                stats.batch_sizes[len(reqs)] += 1
                stats.inference_seconds += elapsed
                stats.audio_seconds += len(reqs) * n / rate
                if error is not None:
                    stats.failed_batches += 1
                    stats.failed_requests += len(reqs)
            labels = self.classifier.target_labels
            for i, req in enumerate(reqs):
                if error is not None:
                    _deliver(req, error=error)
                elif classify:
                    _deliver(req, scores_of(labels, outputs[i]))
                else:
                    _deliver(req, denoised_audio(outputs[i]))

    def _pipeline(self, waveforms: torch.Tensor, rate: int, denoise: bool = True) -> torch.Tensor:
        with torch.inference_mode():
            x = waveforms.to(self.device, dtype=torch.float32)
            if self.denoiser is not None and denoise:
                target = self.denoiser.sample_rate
                x = self._denoise(self._resample(x, rate, target))
                rate = target
            return self.classifier.score(x, rate)

    def _denoise_at(self, waveforms: torch.Tensor, rate: int) -> torch.Tensor:
        """(B, n) at ``rate`` → (B, n) denoised at ``rate``, on the CPU."""
        assert self.denoiser is not None
        n = waveforms.shape[1]
        target = self.denoiser.sample_rate
        with torch.inference_mode():
            x = self._resample(waveforms.to(self.device, dtype=torch.float32), rate, target)
            short = self.denoiser.min_samples - x.shape[1]
            if short > 0:  # a tiny tail (end of a short run): pad with silence, crop below
                x = torch.nn.functional.pad(x, (0, short))
            x = self._denoise(x)
            x = self._resample(x, target, rate)[:, :n]
            if x.shape[1] < n:  # resampling back can come out a sample short
                x = torch.nn.functional.pad(x, (0, n - x.shape[1]))
            return x.cpu()

    def _denoise(self, x: torch.Tensor, precision: Precision | None = None) -> torch.Tensor:
        """Denoise at ``precision`` (the probe's), else at the one chosen at set-up."""
        # The denoiser keeps its own signal processing out of autocast (see Denoiser.denoise).
        assert self.denoiser is not None
        if precision is None:
            chosen = self.denoiser_precision
            precision = chosen.precision if chosen else "fp32"
        with autocast_at(precision, self.device):
            return self.denoiser.denoise(x).float()

    def _resample(self, x: torch.Tensor, orig: int, new: int) -> torch.Tensor:
        if orig == new:
            return x
        key = (orig, new)
        if key not in self._resamplers:
            self._resamplers[key] = torchaudio.transforms.Resample(
                orig, new, dtype=torch.float32
            ).to(self.device)
        return self._resamplers[key](x)


def _checked(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    if not isinstance(samples, np.ndarray):
        raise TypeError(f"samples must be a numpy array, not {type(samples).__name__}")
    if samples.ndim != 1:
        raise ValueError(f"samples must be mono (n,), got shape {samples.shape}")
    if samples.shape[0] == 0:
        raise ValueError("samples is empty")
    if not isinstance(sample_rate, int | np.integer) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, not {sample_rate!r}")
    out = np.ascontiguousarray(samples, dtype=np.float32)
    if not np.isfinite(out).all():
        raise ValueError("samples contain NaN or infinite values")
    return out
