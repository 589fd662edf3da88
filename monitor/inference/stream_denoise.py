"""Denoise one feed's audio as a stream (overlap-save), so that every second is denoised once.

Decoded mono chunks go in; the same chunks come out (same UTC start, source and offset, sample
for sample), denoised, lagging by the right context. Audio is denoised in blocks through the
engine (``denoise(samples, rate)``, batched with the other feeds' blocks). A block keeps
``block_grids`` grid steps and carries ``context`` grid steps of audio on each side; it
starts on the denoiser's chunk grid counted from the start of the run, so each kept sample
sees the same network chunks, blend weights and STFT frames as a denoise of the whole run.
Only the kept part is emitted; the context on the left is re-read from what was kept.

A new run (``gap_before``, a jump in time, a rate change) starts over: what is held of the old
run is flushed first (its tail is denoised without right context, like the end of a whole
signal). ``flush()`` does the same at a gap or at the end of the source.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from monitor.audio.chunks import AudioChunk
from monitor.limits import check_limits
from monitor.timebase import after_samples, samples_between

Denoise = Callable[[np.ndarray, int], Awaitable[np.ndarray]]


@dataclass(frozen=True, slots=True)
class StreamDenoiseSettings:
    # Grid steps (0.96 s each by default) kept per block: cost per second of audio is
    # (block + 2·context) / block, the extra delay block + context.
    block_grids: int = field(default=8, metadata={"min": 1})
    # a chunk this close to the run's end continues it (as the ring)
    snap_samples: int = field(default=2, metadata={"min": 0})

    def __post_init__(self) -> None:
        check_limits(self)


@dataclass(slots=True)
class _Run:
    rate: int
    start_utc: datetime
    grid: int  # samples per grid step at this rate
    total: int = 0  # samples received in this run
    done: int = 0  # samples emitted
    raw_from: int = 0  # run index of raw[0]
    raw: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    chunks: deque[tuple[int, AudioChunk]] = field(default_factory=deque)  # not fully emitted


class StreamDenoiser:
    """One feed's stream denoiser (one per pipeline run; not shared between feeds)."""

    def __init__(
        self,
        denoise: Denoise,
        grid_seconds: float,
        context_grids: int,
        settings: StreamDenoiseSettings | None = None,
    ) -> None:
        if grid_seconds <= 0 or context_grids < 0:
            raise ValueError("grid_seconds must be > 0 and context_grids >= 0")
        self._denoise = denoise
        self.grid_seconds = grid_seconds
        self.context_grids = context_grids
        self.settings = settings or StreamDenoiseSettings()
        self._run: _Run | None = None

    @property
    def pending_samples(self) -> int:
        """Samples received but not yet emitted."""
        run = self._run
        return 0 if run is None else run.total - run.done

    async def feed(self, chunk: AudioChunk) -> list[AudioChunk]:
        """Take one decoded mono chunk; return the denoised chunks now complete (maybe none)."""
        if chunk.samples.ndim != 2 or chunk.samples.shape[0] != 1:
            raise ValueError(
                f"{chunk.feed}: stream denoise takes mono (1, n), got {chunk.samples.shape}"
            )
        out: list[AudioChunk] = []
        if self._run is not None and not self._continues(self._run, chunk):
            out += await self.flush()
        if self._run is None:
            grid = max(1, round(self.grid_seconds * chunk.sample_rate))
            self._run = _Run(chunk.sample_rate, chunk.start_utc, grid)
        run = self._run
        run.chunks.append((run.total, chunk))
        run.raw = np.concatenate([run.raw, chunk.samples[0].astype(np.float32, copy=False)])
        run.total += chunk.frames
        keep = self.settings.block_grids * run.grid
        context = self.context_grids * run.grid
        while run.total >= run.done + keep + context:
            out += await self._emit(run, run.done + keep, run.done + keep + context)
        return out

    async def flush(self) -> list[AudioChunk]:
        """Denoise and return everything held; the next chunk starts a new run."""
        run, self._run = self._run, None
        if run is None or run.total == run.done:
            return []
        return await self._emit(run, run.total, run.total)

    def _continues(self, run: _Run, chunk: AudioChunk) -> bool:
        if chunk.gap_before or chunk.sample_rate != run.rate:
            return False
        at = samples_between(run.start_utc, chunk.start_utc, run.rate)
        return abs(at - run.total) <= self.settings.snap_samples

    async def _emit(self, run: _Run, until: int, block_end: int) -> list[AudioChunk]:
        """Denoise [done − context, block_end), emit [done, until)."""
        begin = max(0, run.done - self.context_grids * run.grid)
        block = run.raw[begin - run.raw_from : block_end - run.raw_from]
        clean = await self._denoise(block, run.rate)
        if clean.shape != block.shape:
            raise ValueError(f"denoiser returned {clean.shape} for a block of {block.shape}")
        kept = clean[run.done - begin : until - begin]
        out = self._as_chunks(run, run.done, kept)
        run.done = until
        # Keep the raw audio the next block's left context needs.
        drop = max(0, run.done - self.context_grids * run.grid) - run.raw_from
        if drop > 0:
            run.raw = run.raw[drop:]
            run.raw_from += drop
        return out

    def _as_chunks(self, run: _Run, at: int, samples: np.ndarray) -> list[AudioChunk]:
        """Denoised run samples [at, at + n) cut along the input chunks they came from."""
        end = at + samples.shape[0]
        out: list[AudioChunk] = []
        for first, chunk in run.chunks:
            lo, hi = max(at, first), min(end, first + chunk.frames)
            if lo >= hi:
                continue
            offset = lo - first
            out.append(
                dataclasses.replace(
                    chunk,
                    start_utc=after_samples(chunk.start_utc, offset, run.rate),
                    samples=samples[lo - at : hi - at][None, :].copy(),
                    source_offset_s=chunk.source_offset_s + offset / run.rate,
                    gap_before=chunk.gap_before and offset == 0,
                    channels=None,
                )
            )
        while run.chunks and run.chunks[0][0] + run.chunks[0][1].frames <= end:
            run.chunks.popleft()
        return out
