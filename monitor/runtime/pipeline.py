"""One feed's pipeline, the same for live and replay:

    segments → decode_stream → WindowCutter (RingBuffer → WindowScheduler) → selection
             → engine.score → EventBuilder → publish

The selection (``monitor.runtime.selection``, chosen once from ``detector.mode``) decides which
windows the classifier scores: every window, or (the cascade) only those centred on stage-1
candidate boxes; unscored windows reach the event builder as negatives.

With a denoiser, each feed's decoded audio is denoised once as a stream (``StreamDenoiser``,
through the engine) and the ring buffer holds the denoised audio; windows cut from it are scored
without the denoiser. Without one, the decoded audio goes into the ring as it is.

The pipeline is given its segment source, its window range and its state file; it does not know
whether it runs live or as a replay (``monitor.runtime.modes`` decides that). The source is
opened from the feed's resume point, so a restarted task (or process) goes on where the last one
stopped.

Two tasks per run: the *producer* pulls segments, decodes them (in an executor), cuts windows
(``WindowCutter``) and submits each to the engine at once (the engine batches across feeds); the
*consumer* awaits the scores in window order and feeds the event builder. Between them a bounded
queue: when scoring falls behind, the producer waits, and so does the S3 reader behind it.

After each segment the consumer records a resume point (``ResumeTracker``: the segment to read
again and the first window not yet scored, held back to the start of an open detection); windows
before it are never scored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np

from monitor.audio.chunks import AudioChunk, Window
from monitor.audio.decode import Decoded, DecoderSettings, decode_stream
from monitor.audio.ring import RingBuffer, RingBufferSettings
from monitor.audio.windows import WindowSettings
from monitor.detect.builder import EventBuilder
from monitor.detect.records import Detection, DetectionMedia, FeedStatus, Message
from monitor.detect.wire import wire_score
from monitor.health.analysis import AnalysisSettings, analyze_audio
from monitor.health.feed_state import FeedHealth
from monitor.health.logs import get_logger
from monitor.health.metrics import Metrics
from monitor.inference.stream_denoise import StreamDenoiser
from monitor.ingest.slots import Segment, SegmentGap
from monitor.media.capture import ClipAudio, clip_audio
from monitor.runtime.cutter import WindowCutter, WindowRange, later
from monitor.runtime.resume import FeedStateFile, ResumePoint
from monitor.runtime.resume_tracker import ResumeTracker
from monitor.runtime.selection import EveryWindow, Selected, SelectionFactory, WindowSelection
from monitor.timebase import after_samples, format_utc, utc_now

log = get_logger(__name__)

SegmentSource = Callable[[ResumePoint | None], AsyncIterator[Segment | SegmentGap]]
Publish = Callable[[Message], Awaitable[None]]


class Scorer(Protocol):
    """Scores one mono window; ``denoise=False`` when the pipeline denoised the stream already
    (a scorer without a denoiser ignores it)."""

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

    def for_models(
        self,
        window_s: float,
        denoise_geometry: tuple[float, int] | None,
        selection_margin_s: float = 0.0,
    ) -> PipelineSettings:
        """These settings fitted to the loaded models: the ring holds a window and a segment's
        worth of decoding ahead of it; with a stream denoiser, a resume also re-reads its left
        context, so the first windows after a restart are denoised as in an unbroken run; with
        the cascade, stage 1's background history (``selection_margin_s``) too."""
        margin_s = self.resume_margin_s + selection_margin_s
        if denoise_geometry is not None:
            grid_seconds, context_grids = denoise_geometry
            margin_s += grid_seconds * context_grids
        ring_seconds = max(self.ring_seconds, window_s * 2 + 20.0)
        return replace(self, ring_seconds=ring_seconds, resume_margin_s=margin_s)


@dataclass(frozen=True, slots=True)
class Decoding:
    """How a feed's segments become audio."""

    decoder: DecoderSettings = field(default_factory=DecoderSettings)
    executor: Executor | None = None  # the decoder threads (None: the loop's default executor)
    # A new StreamDenoiser per run: the ring then holds denoised audio and windows are scored
    # with denoise=False. None: raw audio, scored as it is.
    stream_denoiser: Callable[[], StreamDenoiser] | None = None
    # Which cut windows are scored (a new one per run, over that run's cutter).
    selection: SelectionFactory = EveryWindow


@dataclass(frozen=True, slots=True)
class FeedWatch:
    """Who hears how the feed is doing (each optional)."""

    health: FeedHealth | None = None
    metrics: Metrics | None = None
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    status: Publish | None = None  # health state changes (the board's messages)
    progress: Callable[[str, datetime], None] | None = None  # audio processed up to a time


class MediaSink(Protocol):
    """Writes a closed detection's files (``monitor.media.writer.MediaWriter``)."""

    settings: Any

    async def write(self, detection: Detection, audio: ClipAudio) -> DetectionMedia | None: ...


@dataclass(frozen=True, slots=True)
class _Scored:
    selected: Selected
    future: asyncio.Future[dict[str, float]] | None  # None: not scored (negative)


@dataclass(frozen=True, slots=True)
class _Gap:
    gap: SegmentGap


@dataclass(frozen=True, slots=True)
class _Flushed:
    next_start: datetime | None


@dataclass(frozen=True, slots=True)
class _SegmentDone:
    chunk: AudioChunk
    chunk_end: datetime
    windows: int
    next_start: datetime | None  # the first window not yet cut


_END = object()


@dataclass(slots=True)
class FeedProgress:
    """What one feed has done, kept across task restarts (for /status, tests and benchmarks)."""

    resume: ResumePoint | None = None  # where the source is opened again
    windows_scored: int = 0
    windows_unscored: int = 0  # cut, but no candidate chose them (cascade)
    segments: int = 0
    gaps: int = 0
    messages: int = 0
    audio_s: float = 0.0  # decoded audio inside the window range
    processed_until: datetime | None = None
    first_window: datetime | None = None
    last_window: datetime | None = None


@dataclass(eq=False)
class FeedPipeline:
    """Everything one feed needs; ``run_once`` is what the supervisor restarts. Start it from a
    saved point with ``progress=FeedProgress(resume=point)``."""

    feed: str
    source: SegmentSource
    scorer: Scorer
    builder: EventBuilder
    publish: Publish
    windows: WindowSettings
    stop: asyncio.Event
    settings: PipelineSettings = field(default_factory=PipelineSettings)
    window_range: WindowRange = field(default_factory=WindowRange)
    decoding: Decoding = field(default_factory=Decoding)
    state_file: FeedStateFile | None = None
    watch: FeedWatch = field(default_factory=FeedWatch)
    progress: FeedProgress = field(default_factory=FeedProgress)
    # Closed detections get their audio and spectrogram written (from the ring) before they
    # are published; None: no media.
    media: MediaSink | None = None
    _cutter: WindowCutter | None = field(default=None, init=False, repr=False)
    _raw_ring: RingBuffer | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        resume = self.progress.resume
        if resume is not None:
            log.info(
                "resuming feed",
                feed=self.feed,
                folder=resume.folder_epoch,
                number=resume.number,
                next_window=format_utc(resume.next_window_utc),
            )

    async def run_once(self) -> None:
        """Process segments until the source ends or ``stop`` is set, then close what is open."""
        queue: asyncio.Queue[object] = asyncio.Queue(self.settings.in_flight_windows)
        resume = self.progress.resume
        tracker = ResumeTracker(self.feed, self.settings.resume_margin_s)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._produce(queue, resume), name=f"{self.feed}-produce")
                group.create_task(self._consume(queue, tracker), name=f"{self.feed}-consume")
        except BaseExceptionGroup as errors:
            _abandon(queue)
            # One task failing cancels the other; hand the supervisor the real error.
            real = [e for e in errors.exceptions if not isinstance(e, asyncio.CancelledError)]
            raise (real[0] if real else errors) from None
        await self._finish(tracker, complete=not self.stop.is_set())

    async def _finish(self, tracker: ResumeTracker, *, complete: bool) -> None:
        """The source ended or we are stopping: close open detections, save the resume point."""
        # A candidate the flush drops (not yet credible) is read again on resume; detections it
        # closes ("shutdown") are published, so the point goes past them.
        candidate = self.builder.earliest_candidate_start(self.feed)
        for message in self.builder.flush():
            await self._emit(message)
        point = tracker.point(tracker.next_start, candidate)
        if point is not None:
            self.progress.resume = point
        progress = self.progress
        log.info(
            "feed stopped" if not complete else "feed source ended",
            feed=self.feed,
            windows_scored=progress.windows_scored,
            windows_unscored=progress.windows_unscored,
            first_window=None
            if progress.first_window is None
            else format_utc(progress.first_window),
            last_window=None if progress.last_window is None else format_utc(progress.last_window),
            segments=progress.segments,
            gaps=progress.gaps,
        )
        if self.state_file is not None:
            await self.state_file.close(progress.resume, complete=complete)

    # ---- producer ----

    async def _produce(self, queue: asyncio.Queue[object], resume: ResumePoint | None) -> None:
        # The media writer reads the cutter's ring; the selection decides what gets scored.
        self._cutter = WindowCutter(
            self.feed,
            self.windows,
            self.window_range,
            self.settings.ring_seconds,
            self._floor(resume),
            self.watch.metrics,
        )
        cutter = self.decoding.selection(self._cutter)
        factory = self.decoding.stream_denoiser
        stream = factory() if factory is not None else None
        # With a denoiser the cutter's ring holds denoised audio: keep the raw audio for media.
        self._raw_ring = None
        stop_wait = asyncio.ensure_future(self.stop.wait())
        try:
            async with contextlib.aclosing(
                self._decoded(self._counted(self.source(resume)))
            ) as decoded:
                while (item := await _next_unless_stopped(decoded, stop_wait)) is not None:
                    if isinstance(item, SegmentGap):
                        if stream is not None:
                            await self._submit(cutter, queue, await stream.flush())
                        await self._put(queue, cutter.gap(item))
                        await queue.put(_Gap(item))
                        continue
                    if stream is not None and self.media is not None:
                        self._keep_raw(item)
                    chunks = [item] if stream is None else await stream.feed(item)
                    count = await self._submit(cutter, queue, chunks)
                    chunk_end = after_samples(item.start_utc, item.frames, item.sample_rate)
                    self.progress.audio_s += self.window_range.overlap_s(item.start_utc, chunk_end)
                    await queue.put(_SegmentDone(item, chunk_end, count, cutter.next_start))
                    if self.watch.health is not None and self.settings.analyze_audio:
                        await self._analyze(item)
            if not self.stop.is_set():
                # The source ended: the audio held back for right context, and the windows
                # waiting for stage 1, are scored too.
                if stream is not None and stream.pending_samples:
                    await self._submit(cutter, queue, await stream.flush())
                if await self._put(queue, cutter.flush()) or stream is not None:
                    await queue.put(_Flushed(cutter.next_start))
        finally:
            stop_wait.cancel()
        await queue.put(_END)

    def _keep_raw(self, chunk: AudioChunk) -> None:
        ring = self._raw_ring
        if ring is None or ring.sample_rate != chunk.sample_rate:
            settings = RingBufferSettings(self.settings.ring_seconds, chunk.sample_rate)
            ring = self._raw_ring = RingBuffer(self.feed, settings)
        ring.write(chunk)

    def _floor(self, resume: ResumePoint | None) -> datetime | None:
        """The first window start this run may score."""
        floor = None if resume is None else resume.next_window_utc
        if self.progress.last_window is not None:
            # After a crash: the builder already saw windows past the resume point.
            floor = later(floor, self.progress.last_window + timedelta(seconds=self.windows.hop_s))
        return floor

    async def _submit(
        self, cutter: WindowSelection, queue: asyncio.Queue[object], chunks: Iterable[AudioChunk]
    ) -> int:
        """Cut ``chunks`` into windows and submit the chosen ones to the scorer; how many
        windows there were."""
        count = 0
        for chunk in chunks:
            count += await self._put(queue, cutter.cut(chunk))
        return count

    async def _put(self, queue: asyncio.Queue[object], selected: list[Selected]) -> int:
        denoise = self.decoding.stream_denoiser is None  # else the ring holds denoised audio
        for item in selected:
            window = item.window
            future = None
            if item.score:
                score = self.scorer.score(window.samples, window.sample_rate, denoise=denoise)
                future = asyncio.ensure_future(score)
            else:
                item = replace(item, window=_without_samples(window))
            await queue.put(_Scored(item, future))
        return len(selected)

    async def _counted(
        self, items: AsyncIterator[Segment | SegmentGap]
    ) -> AsyncIterator[Segment | SegmentGap]:
        metrics = self.watch.metrics
        async with contextlib.aclosing(items) as source:
            async for item in source:
                if isinstance(item, Segment) and metrics is not None:
                    metrics.segment_fetched(self.feed, len(item.data))
                yield item

    def _decoded(self, items: AsyncIterator[Segment | SegmentGap]) -> AsyncIterator[Decoded]:
        """``decode_stream`` with each segment's decode time (in the worker) to the metrics."""
        decoding = self.decoding
        return decode_stream(
            items,
            decoding.decoder,
            decoding.executor,
            on_decoded=self._note_decoded,
            on_cut=self._note_cut,
        )

    def _note_decoded(self, item: Segment | SegmentGap, seconds: float) -> None:
        if isinstance(item, Segment) and self.watch.metrics is not None:
            self.watch.metrics.decoded(self.feed, seconds)

    def _note_cut(self, item: Segment) -> None:
        if self.watch.metrics is not None:
            self.watch.metrics.segment_cut(self.feed)

    async def _analyze(self, chunk: AudioChunk) -> None:
        health = self.watch.health
        assert health is not None
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self.decoding.executor,
                analyze_audio,
                chunk.samples if chunk.channels is None else chunk.channels,
                chunk.sample_rate,
                health.audio,
                self.watch.analysis,
            )
        except ValueError as error:
            log.warning("audio analysis failed", feed=self.feed, error=str(error))
            return
        await self._note(health.note_audio(result, chunk.start_utc, utc_now()))

    # ---- consumer ----

    async def _consume(self, queue: asyncio.Queue[object], tracker: ResumeTracker) -> None:
        progress = self.progress
        metrics, health = self.watch.metrics, self.watch.health
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, _Scored):
                window, boxes = item.selected.window, item.selected.boxes
                scores = None if item.future is None else await item.future
                messages = self.builder.observe(window, scores, boxes=boxes, scored_utc=utc_now())
                # Counted before the messages go out: if emitting fails, the restarted task
                # starts after this window (the builder has seen it).
                progress.first_window = progress.first_window or window.start_utc
                progress.last_window = window.start_utc
                if scores is None:
                    progress.windows_unscored += 1
                else:
                    progress.windows_scored += 1
                    if metrics is not None:
                        metrics.window_scored(self.feed)
                for message in messages:
                    await self._emit(message)
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
                if health is not None:
                    health.note_gap(kind)
                if metrics is not None:
                    metrics.segment_gap(self.feed, kind)
                for message in self.builder.advance_to(self.feed, gap.end_utc):
                    await self._emit(message)
                await self._advance(gap.end_utc)
            elif isinstance(item, _SegmentDone):
                tracker.add(item.chunk.source, item.chunk_end)
                await self._segment_done(item, tracker)
            elif isinstance(item, _Flushed):
                await self._record(tracker, item.next_start)

    async def _segment_done(self, done: _SegmentDone, tracker: ResumeTracker) -> None:
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
        await self._record(tracker, done.next_start)
        await self._advance(done.chunk_end)

    async def _record(self, tracker: ResumeTracker, next_start: datetime | None) -> None:
        """Keep the newest resume point and save it (throttled by the state file). It never
        passes an open candidate or detection: killed now, a restart re-reads its audio and
        closes it."""
        resume = tracker.point(next_start, self.builder.earliest_open_start(self.feed))
        if resume is None:
            return
        self.progress.resume = resume
        if self.state_file is not None:
            await self.state_file.save(resume)

    async def _advance(self, until: datetime) -> None:
        progress = self.progress
        if progress.processed_until is None or until > progress.processed_until:
            progress.processed_until = until
            if self.watch.health is not None:
                await self._note(self.watch.health.note_processed(until, utc_now()))
            if self.watch.progress is not None:
                self.watch.progress(self.feed, until)

    async def _note(self, change: FeedStatus | None) -> None:
        if change is not None and self.watch.status is not None:
            await self.watch.status(change)

    async def _emit(self, detection: Detection) -> None:
        self.progress.messages += 1
        if detection.status == "closed" and self.media is not None:
            detection = await self._with_media(detection)
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
        if self.watch.metrics is not None:
            self.watch.metrics.detection(self.feed, summary.label, detection.status)
        await self.publish(detection)

    async def _with_media(self, detection: Detection) -> Detection:
        """The detection with its files, written from the ring (as it is without them when the
        ring no longer holds its audio or the write failed)."""
        assert self.media is not None
        summary = detection.summary
        ring = None if self._cutter is None else self._cutter.ring
        audio = clip_audio(
            ring,
            self._raw_ring,
            summary.start_utc,
            summary.end_utc,
            self.media.settings.margin_s,
        )
        if audio is None:
            log.warning("no audio left in the ring for the detection's media", id=summary.id)
            return detection
        media = await self.media.write(detection, audio)
        return detection if media is None else replace(detection, media=media)


async def _next_unless_stopped(
    items: AsyncIterator[AudioChunk | SegmentGap], stop_wait: asyncio.Future[object]
) -> AudioChunk | SegmentGap | None:
    """The next item, or None when the iterator ends or stop is set first (new segments are
    then no longer taken; what was already decoded has gone downstream)."""
    if stop_wait.done():
        return None
    step = asyncio.ensure_future(anext(items))
    try:
        await asyncio.wait({step, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        # Cancelled (shutdown timeout): end the pending step before the iterator is closed,
        # or closing it fails with "asynchronous generator is already running".
        step.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await step
        raise
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
        if isinstance(item, _Scored) and item.future is not None:
            item.future.cancel()


def _without_samples(window: Window) -> Window:
    """An unscored window as the event builder needs it: its times, not its audio (a
    zero-stride array keeps the length, so ``duration_s`` stays right)."""
    empty = np.broadcast_to(np.float32(0.0), window.samples.shape)
    return replace(window, samples=empty)
