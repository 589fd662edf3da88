"""One feed's pipeline, the same for live and replay:

    segments → decode_stream → RingBuffer → WindowScheduler → engine.score → EventBuilder → publish

With a denoiser, each feed's decoded audio is denoised once as a stream (``StreamDenoiser``,
through the engine) and the ring buffer holds the denoised audio; windows cut from it are scored
without the denoiser. Without one, the decoded audio goes into the ring as it is.

Only the segment source differs (``follow_live`` or ``read_archive``); it is opened from the
feed's resume point, so a restarted task (or process) goes on where the last one stopped.

Two tasks per run: the *producer* pulls segments, decodes them (in an executor), cuts windows and
submits each to the engine at once (the engine batches across feeds); the *consumer* awaits the
scores in window order and feeds the event builder. Between them a bounded queue: when scoring
falls behind, the producer waits, and so does the S3 reader behind it.

After each segment the consumer records a resume point (the segment to read again and the first
window not yet scored); windows before it are never scored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np

from monitor.audio.chunks import AudioChunk, Window
from monitor.audio.decode import Decoded, DecoderSettings, decode_stream
from monitor.audio.ring import RingBuffer, RingBufferSettings
from monitor.audio.windows import WindowScheduler, WindowSettings
from monitor.detect.builder import EventBuilder
from monitor.detect.records import Detection, FeedStatus, Message
from monitor.detect.wire import wire_score
from monitor.health.analysis import AnalysisSettings, analyze_audio
from monitor.health.feed_state import FeedHealth
from monitor.health.logs import get_logger
from monitor.health.metrics import Metrics
from monitor.inference.stream_denoise import StreamDenoiser
from monitor.ingest.slots import Segment, SegmentGap, SegmentRef
from monitor.runtime.resume import FeedStateFile, ResumePoint
from monitor.timebase import after_samples, format_utc, utc_now

log = get_logger(__name__)

SegmentSource = Callable[[ResumePoint | None], AsyncIterator[Segment | SegmentGap]]
Publish = Callable[[Message], Awaitable[None]]


class Scorer(Protocol):
    async def score(self, samples: np.ndarray, sample_rate: int) -> dict[str, float]: ...


class CleanScorer(Protocol):
    """A scorer that can skip its denoiser (the pipeline denoised the stream already)."""

    async def score(
        self, samples: np.ndarray, sample_rate: int, *, denoise: bool = True
    ) -> dict[str, float]: ...


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    # windows submitted to the engine but not yet consumed, per feed
    in_flight_windows: int = field(default=32, metadata={"min": 1})
    ring_seconds: float = field(default=120.0, metadata={"gt": 0.0})  # audio kept per feed
    # Re-read from this far before the next window on resume: a fresh decoder drops the first
    # AAC frame (21 ms) of the segment it starts on.
    resume_margin_s: float = field(default=0.5, metadata={"min": 0.0})
    analyze_audio: bool = True  # per-segment Silent/Unintelligible check for the health board

    def __post_init__(self) -> None:
        if self.in_flight_windows < 1:
            raise ValueError("in_flight_windows must be >= 1")
        if self.ring_seconds <= 0 or self.resume_margin_s < 0:
            raise ValueError("ring_seconds must be > 0 and resume_margin_s >= 0")


@dataclass(frozen=True, slots=True)
class _Scored:
    window: Window
    future: asyncio.Future[dict[str, float]]


@dataclass(frozen=True, slots=True)
class _Gap:
    gap: SegmentGap


@dataclass(frozen=True, slots=True)
class _Flushed:
    resume: ResumePoint | None


@dataclass(frozen=True, slots=True)
class _SegmentDone:
    chunk: AudioChunk
    chunk_end: datetime
    windows: int
    resume: ResumePoint | None


_END = object()


@dataclass(slots=True)
class FeedProgress:
    """What one feed has done, kept across task restarts (for /status, tests and benchmarks)."""

    resume: ResumePoint | None = None
    windows_scored: int = 0
    segments: int = 0
    gaps: int = 0
    messages: int = 0
    processed_until: datetime | None = None
    first_window: datetime | None = None
    last_window: datetime | None = None


@dataclass(eq=False)
class FeedPipeline:
    """Everything one feed needs; ``run_once`` is what the supervisor restarts."""

    feed: str
    source: SegmentSource
    scorer: Scorer
    builder: EventBuilder
    publish: Publish
    windows: WindowSettings
    stop: asyncio.Event
    settings: PipelineSettings = field(default_factory=PipelineSettings)
    decoder: DecoderSettings = field(default_factory=DecoderSettings)
    executor: Executor | None = None
    state_file: FeedStateFile | None = None
    health: FeedHealth | None = None
    metrics: Metrics | None = None
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    on_progress: Callable[[str, datetime], None] | None = None
    on_status: Publish | None = None  # health state changes (the board's messages)
    window_from: datetime | None = None  # replay: score only windows starting in this range
    window_until: datetime | None = None
    forget_when_done: bool = False  # replay: a finished range needs no resume point
    progress: FeedProgress = field(default_factory=FeedProgress)
    # A new StreamDenoiser per run: the ring then holds denoised audio and ``scorer`` must be a
    # CleanScorer (windows are scored with denoise=False). None: raw audio, scored as it is.
    stream_denoiser: Callable[[], StreamDenoiser] | None = None

    def __post_init__(self) -> None:
        if self.state_file is not None and self.progress.resume is None:
            self.progress.resume = self.state_file.load()
            if self.progress.resume is not None:
                log.info(
                    "resuming feed",
                    feed=self.feed,
                    folder=self.progress.resume.folder_epoch,
                    number=self.progress.resume.number,
                    next_window=format_utc(self.progress.resume.next_window_utc),
                )

    async def run_once(self) -> None:
        """Process segments until the source ends or ``stop`` is set, then close what is open."""
        queue: asyncio.Queue[object] = asyncio.Queue(self.settings.in_flight_windows)
        resume = self.progress.resume
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._produce(queue, resume), name=f"{self.feed}-produce")
                group.create_task(self._consume(queue), name=f"{self.feed}-consume")
        except BaseExceptionGroup as errors:
            _abandon(queue)
            # One task failing cancels the other; hand the supervisor the real error.
            real = [e for e in errors.exceptions if not isinstance(e, asyncio.CancelledError)]
            raise (real[0] if real else errors) from None
        await self._finish(complete=not self.stop.is_set())

    async def _finish(self, *, complete: bool) -> None:
        """The source ended or we are stopping: close open detections, save the resume point."""
        for message in self.builder.flush():
            await self._emit(message)
        progress = self.progress
        log.info(
            "feed stopped" if not complete else "feed source ended",
            feed=self.feed,
            windows_scored=progress.windows_scored,
            first_window=None
            if progress.first_window is None
            else format_utc(progress.first_window),
            last_window=None if progress.last_window is None else format_utc(progress.last_window),
            segments=progress.segments,
            gaps=progress.gaps,
        )
        if self.state_file is None:
            return
        if complete and self.forget_when_done:
            await self.state_file.discard()
            log.info("range complete: resume point removed", feed=self.feed)
        elif self.progress.resume is not None:
            await self.state_file.save(self.progress.resume, force=True)

    # ---- producer ----

    async def _produce(self, queue: asyncio.Queue[object], resume: ResumePoint | None) -> None:
        floor = self.window_from
        if resume is not None and (floor is None or resume.next_window_utc > floor):
            floor = resume.next_window_utc
        if self.progress.last_window is not None:
            # After a crash: the builder already saw windows past the resume point.
            after = self.progress.last_window + timedelta(seconds=self.windows.hop_s)
            if floor is None or after > floor:
                floor = after
        until = self.window_until
        ring: RingBuffer | None = None
        scheduler: WindowScheduler | None = None
        recent: deque[tuple[SegmentRef, datetime, datetime]] = deque(maxlen=64)
        last_start: datetime | None = None
        skipped = {"gap": 0, "overrun": 0}
        stream = self.stream_denoiser() if self.stream_denoiser is not None else None

        async def cut(chunk: AudioChunk) -> int:
            """Write one chunk into the ring and submit the windows it completes."""
            nonlocal ring, scheduler, last_start
            if ring is None or ring.sample_rate != chunk.sample_rate:
                ring = RingBuffer(
                    self.feed,
                    RingBufferSettings(self.settings.ring_seconds, chunk.sample_rate),
                )
                scheduler = WindowScheduler.from_settings(self.windows)
            assert scheduler is not None
            before = ring.dropped_samples
            ring.write(chunk)
            if self.metrics is not None and ring.dropped_samples > before:
                self.metrics.ring_overrun(self.feed, ring.dropped_samples - before)
            count = 0
            for window in scheduler.ready(ring):
                if floor is not None and window.start_utc < floor:
                    continue
                if until is not None and window.start_utc >= until:
                    continue
                if last_start is not None and window.start_utc <= last_start:
                    continue  # a new ring after a rate change: never score twice
                future = asyncio.ensure_future(self._score(window, denoised=stream is not None))
                last_start = window.start_utc
                count += 1
                await queue.put(_Scored(window, future))
            self._count_skipped(scheduler, skipped)
            return count

        def next_point() -> ResumePoint | None:
            if last_start is not None:
                return self._resume_point(
                    last_start + timedelta(seconds=self.windows.hop_s), recent
                )
            return self._resume_point(floor, recent)

        stop_wait = asyncio.ensure_future(self.stop.wait())
        try:
            async with contextlib.aclosing(
                self._decoded(self._counted(self.source(resume)))
            ) as decoded:
                while True:
                    item = await _next_unless_stopped(decoded, stop_wait)
                    if item is None:
                        break
                    if isinstance(item, SegmentGap):
                        if stream is not None:
                            for out in await stream.flush():
                                await cut(out)
                        if ring is not None:
                            ring.mark_gap(item)
                        await queue.put(_Gap(item))
                        continue
                    count = 0
                    for out in [item] if stream is None else await stream.feed(item):
                        count += await cut(out)
                    chunk_end = after_samples(item.start_utc, item.frames, item.sample_rate)
                    recent.append((item.source, item.start_utc, chunk_end))
                    await queue.put(_SegmentDone(item, chunk_end, count, next_point()))
                    if self.health is not None and self.settings.analyze_audio:
                        await self._analyze(item)
            if stream is not None and not self.stop.is_set() and stream.pending_samples:
                # The source ended: the audio held back for right context is scored too.
                for out in await stream.flush():
                    await cut(out)
                await queue.put(_Flushed(next_point()))
        finally:
            stop_wait.cancel()
        await queue.put(_END)

    def _score(self, window: Window, *, denoised: bool) -> Awaitable[dict[str, float]]:
        if not denoised:
            return self.scorer.score(window.samples, window.sample_rate)
        scorer: CleanScorer = self.scorer  # type: ignore[assignment]
        return scorer.score(window.samples, window.sample_rate, denoise=False)

    async def _counted(
        self, items: AsyncIterator[Segment | SegmentGap]
    ) -> AsyncIterator[Segment | SegmentGap]:
        async with contextlib.aclosing(items) as source:
            async for item in source:
                if isinstance(item, Segment) and self.metrics is not None:
                    self.metrics.segment_fetched(self.feed, len(item.data))
                yield item

    def _decoded(self, items: AsyncIterator[Segment | SegmentGap]) -> AsyncIterator[Decoded]:
        """``decode_stream`` with each segment's decode time (in the worker) to the metrics."""
        return decode_stream(items, self.decoder, self.executor, on_decoded=self._note_decoded)

    def _note_decoded(self, item: Segment | SegmentGap, seconds: float) -> None:
        if isinstance(item, Segment) and self.metrics is not None:
            self.metrics.decoded(self.feed, seconds)

    def _count_skipped(self, scheduler: WindowScheduler, seen: dict[str, int]) -> None:
        for reason, total in (
            ("gap", scheduler.skipped_gap),
            ("overrun", scheduler.skipped_overrun),
        ):
            if total > seen[reason]:
                if self.metrics is not None:
                    self.metrics.window_skipped(self.feed, reason, total - seen[reason])
                seen[reason] = total

    def _resume_point(
        self, next_start: datetime | None, recent: deque[tuple[SegmentRef, datetime, datetime]]
    ) -> ResumePoint | None:
        """The segment holding ``next_start`` minus the margin (the first one after it if that
        time fell in a gap)."""
        if next_start is None:
            return None
        target = next_start - timedelta(seconds=self.settings.resume_margin_s)
        for ref, _start, end in recent:
            if end > target:
                return ResumePoint(self.feed, ref.folder_epoch, ref.number, next_start, utc_now())
        # The next window starts after everything decoded so far: read on from the next slot.
        last = recent[-1][0]
        return ResumePoint(self.feed, last.folder_epoch, last.number + 1, next_start, utc_now())

    async def _analyze(self, chunk: AudioChunk) -> None:
        assert self.health is not None
        loop = asyncio.get_running_loop()
        previous = self.health.audio
        try:
            result = await loop.run_in_executor(
                self.executor,
                analyze_audio,
                chunk.samples if chunk.channels is None else chunk.channels,
                chunk.sample_rate,
                previous,
                self.analysis,
            )
        except ValueError as error:
            log.warning("audio analysis failed", feed=self.feed, error=str(error))
            return
        await self._note(self.health.note_audio(result, chunk.start_utc, utc_now()))

    # ---- consumer ----

    async def _consume(self, queue: asyncio.Queue[object]) -> None:
        progress = self.progress
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, _Scored):
                scores = await item.future
                window = item.window
                for message in self.builder.observe(window, scores, scored_utc=utc_now()):
                    await self._emit(message)
                progress.windows_scored += 1
                progress.first_window = progress.first_window or window.start_utc
                progress.last_window = window.start_utc
                if self.metrics is not None:
                    self.metrics.window_scored(self.feed)
            elif isinstance(item, _Gap):
                gap = item.gap
                progress.gaps += 1
                log.info(
                    "segment gap",
                    feed=self.feed,
                    reason=gap.reason,
                    start=format_utc(gap.start_utc),
                    end=format_utc(gap.end_utc),
                    key=None if gap.ref is None else gap.ref.key,
                )
                kind = gap.reason.split(":")[0]
                if self.health is not None:
                    self.health.note_gap(kind)
                if self.metrics is not None:
                    self.metrics.segment_gap(self.feed, kind)
                for message in self.builder.advance_to(self.feed, gap.end_utc):
                    await self._emit(message)
                await self._advance(gap.end_utc)
            elif isinstance(item, _SegmentDone):
                await self._segment_done(item)
            elif isinstance(item, _Flushed):
                await self._record(item.resume)

    async def _segment_done(self, done: _SegmentDone) -> None:
        progress = self.progress
        progress.segments += 1
        chunk = done.chunk
        log.debug(
            "segment processed",
            feed=self.feed,
            key=chunk.source.key,
            start=format_utc(chunk.start_utc),
            windows=done.windows,
            last_window=None if progress.last_window is None else format_utc(progress.last_window),
        )
        await self._record(done.resume)
        await self._advance(done.chunk_end)

    async def _record(self, resume: ResumePoint | None) -> None:
        """Keep the newest resume point and save it (throttled by the state file)."""
        if resume is None:
            return
        self.progress.resume = resume
        if self.state_file is not None:
            await self.state_file.save(resume)

    async def _advance(self, until: datetime) -> None:
        progress = self.progress
        if progress.processed_until is None or until > progress.processed_until:
            progress.processed_until = until
            if self.health is not None:
                await self._note(self.health.note_processed(until, utc_now()))
            if self.on_progress is not None:
                self.on_progress(self.feed, until)

    async def _note(self, change: FeedStatus | None) -> None:
        if change is not None and self.on_status is not None:
            await self.on_status(change)

    async def _emit(self, detection: Detection) -> None:
        self.progress.messages += 1
        summary = detection.summary
        log.info(
            "detection",
            feed=self.feed,
            id=summary.id,
            status=detection.status,
            label=summary.label,
            start=format_utc(summary.start_utc),
            end=format_utc(summary.end_utc),
            score_max=wire_score(summary.score_max),
            close_reason=detection.close_reason,
        )
        if self.metrics is not None:
            self.metrics.detection(self.feed, summary.label, detection.status)
        await self.publish(detection)


async def _next_unless_stopped(
    items: AsyncIterator[AudioChunk | SegmentGap], stop_wait: asyncio.Future[object]
) -> AudioChunk | SegmentGap | None:
    """The next item, or None when the iterator ends or stop is set first (new segments are
    then no longer taken; what was already decoded has gone downstream)."""
    if stop_wait.done():
        return None
    step = asyncio.ensure_future(anext(items))
    await asyncio.wait({step, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    if step.done():
        try:
            return step.result()
        except StopAsyncIteration:
            return None
    step.cancel()
    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
        await step
    return None


def _abandon(queue: asyncio.Queue[object]) -> None:
    """A run failed: cancel the scores nobody will read (they are re-scored after restart)."""
    while not queue.empty():
        item = queue.get_nowait()
        if isinstance(item, _Scored):
            item.future.cancel()
