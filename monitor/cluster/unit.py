"""One work unit, run by the single-process replay's own code: a ``Daemon`` with a ``UnitMode``
(a ``ReplayMode`` over the unit's reach) whose messages go to a ``UnitOutput``.

Exactly the detections of the single-process replay: the unit scores from a warm-up before its
start and keeps only the detections that start inside it. What it builds there equals the
single-process replay once its event state is *settled*: no candidate or detection open after
a window at least ``quiet_s`` past the first window that both runs choose and score alike
(``UnitWatch.synced``). (A track open in the whole replay then has its last positive window
before that one, so it has closed; and any track the unit saw go quiet closed at the same window
in both, having the same last positive window.) With every window scored, that is the first
window of the reach. With the cascade, stage 1's boxes depend on the audio before them through
its background floor (``history_s``) and through the region open there (active frames chain),
so the reach reads ``history_s`` more audio first, and the synced window comes ``merge_gap_s``
into the first stretch without an active frame once that floor is made of the unit's own
trusted audio (``CandidateStage.quiet_from``): no region is open there in either run, so the
boxes after it, and the windows they choose, equal the unbroken run's. A
unit that reaches its start unsettled (calls all through the warm-up) is run again with twice
the warm-up; at the start of the range it is settled from the first window. A gap in the
archive that ends ``quiet_s`` past the synced window settles it too (the gap closes what went
quiet in both). Past its end the unit stops reading once nothing it owns is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.candidates.settings import DetectorSettings
from monitor.cluster.units import ReplayRange, UnitReach, WorkUnit, follow_seconds, reach
from monitor.detect.records import Detection, Message
from monitor.health.logs import get_logger
from monitor.ingest.slots import Segment, SegmentGap
from monitor.runtime.cutter import WindowRange
from monitor.runtime.daemon import Daemon, EngineSource
from monitor.runtime.modes import FeedSource, ReplayMode
from monitor.runtime.pipeline import FeedPipeline, SegmentSource
from monitor.runtime.resume import ResumePoint
from monitor.runtime.selection import Cascade, SelectionFactory, WindowSelection, selection_margin_s

log = get_logger(__name__)

# Called after each segment with the unit and how far its audio is done (tests use it to kill
# the worker mid-unit).
UnitHook = Callable[[WorkUnit, datetime], None]


class UnitFailed(RuntimeError):
    """The unit's daemon ended with an error (its exit code and log say which)."""


@dataclass(frozen=True, slots=True)
class UnitResult:
    unit: WorkUnit
    messages: tuple[Detection, ...]  # the detections it owns, in the order they were made
    audio_s: float  # audio decoded inside the unit's own span
    windows_scored: int  # every attempt's, warm-up and follow included
    warmup_s: float  # the warm-up that settled it
    attempts: int
    cpu_s: float  # this process's CPU time for the unit (decode, cutting, events)
    wall_s: float


@dataclass
class UnitOutput:
    """The unit's output: the detection messages it owns, kept for the driver to publish."""

    unit: WorkUnit
    name: str = "unit"
    messages: list[Detection] = field(default_factory=list)

    async def start(self) -> None:
        pass

    async def publish(self, message: Message) -> None:
        if isinstance(message, Detection) and self.owns(message.summary.start_utc):
            self.messages.append(message)

    def owns(self, start: datetime) -> bool:
        return self.unit.start <= start < self.unit.end

    async def close(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class StageSync:
    """When a cascade unit's stage 1 chooses windows as the unbroken run does: the unit has read
    ``floor_s`` of trusted audio from ``trusted_from`` (every block of its background floor is
    then its own), and after that no region was open for ``merge_s``."""

    trusted_from: datetime  # the audio from here decodes (and denoises) as in the unbroken run
    floor_s: float
    merge_s: float
    lead_s: float  # a box starts at most this long after the window it chose

    @classmethod
    def of(
        cls, detector: DetectorSettings, trusted_from: datetime, window_s: float, hop_s: float
    ) -> StageSync:
        hop = detector.frame_hop_s
        floor_s = (
            detector.history_s
            + 2 * detector.block_s
            + detector.frame_s
            + (detector.smooth_frames + 1) * hop
        )
        return cls(trusted_from, floor_s, detector.merge_gap_s + 2 * hop, window_s / 2 + hop_s)

    @property
    def floor_own_at(self) -> datetime:
        """Where the floor is the unit's own when the audio from ``trusted_from`` has no gap."""
        return self.trusted_from + timedelta(seconds=self.floor_s)

    def synced(
        self, floor_own_at: datetime, quiet_from: datetime, heard_until: datetime
    ) -> datetime | None:
        """The synced moment, if stage 1's present stretch without an active frame (from
        ``quiet_from`` to ``heard_until``) holds ``merge_s`` over the unit's own floor: no region
        is open there in either run, and every box after it is the same in both."""
        begin = max(quiet_from, floor_own_at)
        merge = timedelta(seconds=self.merge_s)
        return begin + merge if heard_until - begin >= merge else None


class UnitWatch:
    """Hears the unit's progress (the daemon's ``Progress``): settles the event state before the
    unit's start, and says when nothing the unit owns can be open any more."""

    def __init__(
        self,
        unit: WorkUnit,
        reach: UnitReach,
        quiet_s: float,
        stop: asyncio.Event,
        stage: StageSync | None = None,
    ) -> None:
        self.unit = unit
        self.reach = reach
        self.quiet = timedelta(seconds=quiet_s)
        self.stop = stop
        self.stage = stage  # None: every window is scored, synced from the first
        self.daemon: Daemon | None = None
        self.selection: WindowSelection | None = None  # this attempt's, once the feed runs
        self.settled = reach.at_range_start
        self.unsettled = False  # reached the unit's start unsettled: this attempt is void
        self.finished = False  # past the end with nothing owned open: reading can stop
        self.hook: UnitHook | None = None
        self.audio_s = 0.0  # audio read inside the unit's own span
        self.trusted_s = 0.0  # audio read from stage.trusted_from
        self.floor_own_at: datetime | None = None  # stage 1's floor is the unit's own from here
        self.gap_ends: set[datetime] = set()  # of the gaps read (an outage can settle a unit)
        self.synced: datetime | None = reach.first_window if stage is None else None

    def observed(self, factory: SelectionFactory) -> SelectionFactory:
        """``factory``, keeping what it makes for ``update`` to read."""

        def make(cutter: Any) -> WindowSelection:
            self.selection = factory(cutter)
            return self.selection

        return make

    def read(self, segment: Segment) -> None:
        own = WindowRange(self.unit.start, self.unit.end)
        self.audio_s += own.overlap_s(segment.start_utc, segment.end_utc)
        stage = self.stage
        if stage is not None and self.floor_own_at is None:
            begin = max(segment.start_utc, stage.trusted_from)
            self.trusted_s += max(0.0, (segment.end_utc - begin).total_seconds())
            if self.trusted_s >= stage.floor_s:
                extra = timedelta(seconds=self.trusted_s - stage.floor_s)
                self.floor_own_at = segment.end_utc - extra

    def resumed(self, feed: str, until: datetime) -> None:
        pass  # units keep no resume points

    def _sync(self) -> None:
        stage, selection = self.stage, self.selection
        if self.synced is not None or stage is None or self.floor_own_at is None:
            return
        if not isinstance(selection, Cascade):
            return
        quiet, heard = selection.stage.quiet_from, selection.stage.heard_until
        if quiet is not None and heard is not None:
            self.synced = stage.synced(self.floor_own_at, quiet, heard)

    def update(self, feed: str, until: datetime) -> None:
        assert self.daemon is not None
        pipeline = self.daemon.pipelines[feed]
        last = pipeline.progress.last_window
        open_since = pipeline.builder.earliest_open_start(feed)
        unit = self.unit
        if not self.settled:
            self._sync()
            # A cascade detection starts at its first box: up to lead_s after its first window.
            lead = timedelta(seconds=0.0 if self.stage is None else self.stage.lead_s)
            owned = last is not None and last + lead >= unit.start
            # A window, or a gap's end (a gap closes what went quiet), quiet_s past the synced one.
            seen = until if until in self.gap_ends else last
            if owned:
                self.unsettled = True
                self.stop.set()
            elif (
                open_since is None
                and seen is not None
                and self.synced is not None
                and seen >= self.synced + self.quiet
            ):
                self.settled = True
        if last is not None and last >= unit.end and (open_since is None or open_since >= unit.end):
            self.finished = True
        if self.hook is not None:
            self.hook(unit, until)


class UnitDaemon(Daemon):
    """The single-process ``Daemon``, its feed's window selection shown to the ``UnitWatch``."""

    watch: UnitWatch

    def _pipeline(self, *args: Any, **kwargs: Any) -> FeedPipeline:
        pipeline = super()._pipeline(*args, **kwargs)
        decoding = pipeline.decoding
        pipeline.decoding = dataclasses.replace(
            decoding, selection=self.watch.observed(decoding.selection)
        )
        return pipeline


@dataclass(frozen=True, slots=True)
class UnitMode:
    """``ReplayMode`` over the attempt's reach, scoring only its windows, ending early once
    ``watch`` says the unit is finished."""

    unit: WorkUnit
    reach: UnitReach
    watch: UnitWatch

    publishes_status = False
    forget_when_complete = True

    @property
    def scope(self) -> str:
        return f"unit-{self.unit.id}"

    @property
    def window_range(self) -> WindowRange:
        return WindowRange(self.reach.first_window, self.reach.last_window)

    def source(self, feed: FeedSource) -> SegmentSource:
        replay = ReplayMode(self.reach.read_from, self.reach.last_window).source(feed)
        watch = self.watch

        async def open_segments(resume: ResumePoint | None) -> AsyncIterator[Segment | SegmentGap]:
            async with contextlib.aclosing(replay(resume)) as items:
                async for item in items:
                    if watch.finished:
                        return
                    if isinstance(item, Segment):
                        watch.read(item)
                    else:
                        watch.gap_ends.add(item.end_utc)
                    yield item

        return open_segments


def unit_config(config: Any) -> Any:
    """The config a unit's daemon runs with: no state directory (the driver records finished
    units) and no outputs of its own (the driver publishes what the unit owns)."""
    return dataclasses.replace(
        config,
        state=dataclasses.replace(config.state, dir=None),
        outputs=dataclasses.replace(config.outputs, redis=False, websocket=False, files=False),
    )


def _stage_sync(
    config: Any, attempt: UnitReach, span: ReplayRange, window_s: float
) -> StageSync | None:
    """What a cascade unit waits for before its choices are the unbroken run's (None: every
    window is scored). The reach reads ``selection_margin_s`` (stage 1's history) more than the
    decoder and denoiser need, or from the range start, as the unbroken run does."""
    history = timedelta(seconds=selection_margin_s(config.detector))
    if history <= timedelta(0):
        return None
    trusted_from = max(span.start, attempt.first_window - history)
    return StageSync.of(config.detector, trusted_from, window_s, config.windows.hop_s)


async def run_unit(
    config: Any,
    unit: WorkUnit,
    span: ReplayRange,
    engines: EngineSource,
    *,
    window_s: float,
    margin_s: float,
    hook: UnitHook | None = None,
) -> UnitResult:
    """Run ``unit`` to the end (warm-up doubled until settled); raises ``UnitFailed``.
    ``window_s`` and ``margin_s``: the loaded models' window and the pipeline's resume margin
    (stage 1's history included, ``PipelineSettings.for_models``)."""
    began, cpu_began = time.monotonic(), time.process_time()
    config = unit_config(config)
    events = config.events
    hop_s = config.windows.hop_s
    follow_s = follow_seconds(events.max_duration_s, events.quiet_s, window_s, hop_s)
    warmup_s = config.cluster.warmup_s
    windows = attempts = 0
    while True:
        attempts += 1
        attempt = reach(unit, span, warmup_s=warmup_s, margin_s=margin_s, follow_s=follow_s)
        stop = asyncio.Event()
        watch = UnitWatch(
            unit, attempt, events.quiet_s, stop, _stage_sync(config, attempt, span, window_s)
        )
        watch.hook = hook
        output = UnitOutput(unit)
        daemon = UnitDaemon(
            config,
            UnitMode(unit, attempt, watch),
            [unit.feed],
            outputs=[output],
            serve_http=False,
            progress=watch,
            engines=engines,
        )
        watch.daemon = daemon
        daemon.watch = watch
        code = await daemon.run(stop)
        pipeline = daemon.pipelines.get(unit.feed)
        if pipeline is not None:
            windows += pipeline.progress.windows_scored
        if code != 0 and not watch.unsettled:
            raise UnitFailed(f"unit {unit.id}: the replay ended with exit code {code}")
        if not watch.unsettled:
            break
        log.info("unit not settled at its start: more warm-up", unit=unit.id, warmup_s=warmup_s)
        warmup_s *= 2
    return UnitResult(
        unit=unit,
        messages=tuple(output.messages),
        audio_s=watch.audio_s,
        windows_scored=windows,
        warmup_s=warmup_s,
        attempts=attempts,
        cpu_s=time.process_time() - cpu_began,
        wall_s=time.monotonic() - began,
    )
