"""Scores → detections: one small state machine per feed and label.

Rules (all times are feed time, taken from the windows, so a replay behaves like live):

* A window whose score is ≥ the threshold is *positive*. The first positive window opens a
  candidate; later positive windows extend it (overlapping windows merge into one detection).
* The candidate becomes a detection once it has ``min_positive_windows`` positive windows. That
  count comes from the real hop: ``ceil(min_positive_s / hop_s)`` (at least 1), unless a count is
  configured. Only then is an ``opened`` message emitted; a candidate that never gets there
  emits nothing at all.
* It closes when no positive window *starts* within ``quiet_s`` of the last positive window's
  start: a negative window at or past that point closes it (reason ``quiet``).
* Gaps: when windows are skipped (the next window starts more than one hop after the previous
  one) the missing time counts as quiet. A gap that carries the detection past ``quiet_s`` closes
  it (reason ``gap``) and a positive window after the gap starts a new detection; a shorter gap
  is bridged and reported in ``contains_gap``/``gap_s``. A window that itself contains a gap is
  scored like any other and sets ``contains_gap``. ``advance_to(feed, t)`` closes detections
  whose quiet time has run out by ``t`` when the caller knows no audio will come (reason ``gap``).
* A positive window that would make the detection longer than ``max_duration_s`` closes it
  (reason ``max_duration``) and starts a new candidate whose ``previous_id`` links the two.
* ``flush()`` closes everything still open (reason ``shutdown``).
* The cascade: a window may come unscored (``scores=None``: no candidate chose it), which is
  negative for every label. A scored window may carry the stage-1 boxes that chose it; the
  detection then reports their extent (start, end, low and high frequency) instead of the
  windows' span, and its id is built from the first box's start.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from models.thresholds import bad_thresholds
from monitor.audio.chunks import Window
from monitor.candidates.regions import CandidateBox
from monitor.detect.ids import detection_id
from monitor.detect.records import (
    DEFAULT_SPECIES,
    CloseReason,
    Detection,
    DetectionStatus,
    DetectionSummary,
    FeedInfo,
    PipelineModels,
    SegmentUse,
    Species,
)
from monitor.limits import check_limits
from monitor.timebase import format_utc, require_aware, utc_now


@dataclass(frozen=True)
class EventSettings:
    # Labels absent from ``thresholds`` never make detections.
    thresholds: Mapping[str, float] = field(default_factory=lambda: {"humpback": 0.5})
    # feed node → label → threshold, overriding ``thresholds`` (e.g. a noisy node).
    feed_thresholds: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    quiet_s: float = field(default=10.0, metadata={"gt": 0.0})
    max_duration_s: float = field(default=300.0, metadata={"gt": 0.0})
    min_positive_s: float = field(default=3.0, metadata={"min": 0.0})
    # a fixed count instead of min_positive_s
    min_positive_windows: int | None = field(default=None, metadata={"min": 1})
    species: Mapping[str, Species] = field(default_factory=lambda: dict(DEFAULT_SPECIES))

    def __post_init__(self) -> None:
        for where, table in [("thresholds", self.thresholds), *self._feed_tables()]:
            for label, value in bad_thresholds(table).items():
                raise ValueError(f"{where}[{label!r}] = {value}: a threshold is in [0, 1]")
        check_limits(self)

    def _feed_tables(self) -> list[tuple[str, Mapping[str, float]]]:
        return [(f"feed_thresholds[{feed!r}]", t) for feed, t in self.feed_thresholds.items()]

    def threshold(self, feed: str, label: str) -> float | None:
        override = self.feed_thresholds.get(feed, {})
        if label in override:
            return float(override[label])
        value = self.thresholds.get(label)
        return None if value is None else float(value)

    def min_windows(self, hop_s: float) -> int:
        if self.min_positive_windows is not None:
            return self.min_positive_windows
        if hop_s <= 0:
            raise ValueError(f"window hop must be > 0 s, got {hop_s}")
        # The small epsilon keeps 3.0 / 1.0 from becoming 4 through float error.
        return max(1, math.ceil(self.min_positive_s / hop_s - 1e-9))


@dataclass
class _Track:
    """A candidate or open detection of one label on one feed."""

    id: str
    label: str
    threshold: float
    min_windows: int
    previous_id: str | None
    start_utc: datetime
    end_utc: datetime
    last_positive_start: datetime
    window_s: float
    hop_s: float
    score_max: float = 0.0
    score_sum: float = 0.0
    positives: int = 0
    windows: int = 0
    contains_gap: bool = False
    gap_s: float = 0.0
    credible: bool = False
    # Negative windows and gaps after the last positive window count only if it is extended.
    pending_windows: int = 0
    pending_gap_s: float = 0.0
    pending_contains_gap: bool = False
    segments: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    segment_ids: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    boxes: list[CandidateBox] = field(default_factory=list)  # of the positive windows

    def add_positive(
        self,
        window: Window,
        score: float,
        skipped_s: float,
        boxes: tuple[CandidateBox, ...] = (),
    ) -> None:
        self.boxes += boxes
        self.windows += self.pending_windows + 1
        self.gap_s += self.pending_gap_s + skipped_s
        self.contains_gap |= self.pending_contains_gap or window.contains_gap or skipped_s > 0
        self.pending_windows, self.pending_gap_s, self.pending_contains_gap = 0, 0.0, False
        self.positives += 1
        self.score_max = max(self.score_max, score)
        self.score_sum += score
        self.last_positive_start = window.start_utc
        self.end_utc = max(self.end_utc, window.end_utc)
        self.window_s = window.duration_s
        self.hop_s = window.hop_s
        for span in window.sources:
            key = (span.ref.bucket, span.ref.key)
            lo, hi = span.offset_s, span.offset_s + span.duration_s
            if key in self.segments:
                used = self.segments[key]
                used[0], used[1] = min(used[0], lo), max(used[1], hi)
            else:
                self.segments[key] = [lo, hi]
                self.segment_ids[key] = (span.ref.folder_epoch, span.ref.number)

    def add_negative(self, window: Window, skipped_s: float) -> None:
        self.pending_windows += 1
        self.pending_gap_s += skipped_s
        self.pending_contains_gap |= window.contains_gap or skipped_s > 0

    def summary(self, feed: FeedInfo, species: Species | None) -> DetectionSummary:
        uses = [
            SegmentUse(bucket, key, *self.segment_ids[(bucket, key)], lo, hi - lo)
            for (bucket, key), (lo, hi) in self.segments.items()
        ]
        uses.sort(key=lambda use: (use.folder_epoch, use.number, use.key))
        boxes = self.boxes
        return DetectionSummary(
            id=self.id,
            feed=feed,
            label=self.label,
            species=species,
            start_utc=min(b.start_utc for b in boxes) if boxes else self.start_utc,
            end_utc=max(b.end_utc for b in boxes) if boxes else self.end_utc,
            score_max=self.score_max,
            score_mean=self.score_sum / self.positives,
            window_count=self.windows,
            positive_window_count=self.positives,
            window_s=self.window_s,
            hop_s=self.hop_s,
            threshold=self.threshold,
            min_positive_windows=self.min_windows,
            contains_gap=self.contains_gap,
            gap_s=self.gap_s,
            previous_id=self.previous_id,
            segments=tuple(uses),
            low_freq_hz=min(b.low_hz for b in boxes) if boxes else None,
            high_freq_hz=max(b.high_hz for b in boxes) if boxes else None,
        )


class EventBuilder:
    """Feed it ``(window, scores)`` in time order per feed; it returns the ``Detection`` messages
    to publish."""

    def __init__(
        self,
        settings: EventSettings,
        models: PipelineModels,
        feeds: Mapping[str, FeedInfo] | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings
        self.models = models
        self.feeds = dict(feeds or {})
        self.clock = clock
        self._tracks: dict[tuple[str, str], _Track] = {}
        self._last_start: dict[str, datetime] = {}
        self._last_end: dict[str, datetime] = {}
        # Candidates that never reached min_positive_windows (a running total for the metrics).
        self.discarded = 0

    @property
    def open_count(self) -> int:
        return sum(1 for track in self._tracks.values() if track.credible)

    def earliest_open_start(self, feed: str) -> datetime | None:
        """Start of the oldest candidate or open detection of ``feed`` (a resume point must not
        pass it, or a restart could never close it)."""
        starts = [track.start_utc for key, track in self._tracks.items() if key[0] == feed]
        return min(starts, default=None)

    def earliest_candidate_start(self, feed: str) -> datetime | None:
        """Start of the oldest candidate of ``feed`` not yet credible: ``flush`` drops these
        without a message, so a stopped run must read their audio again on resume."""
        starts = [t.start_utc for k, t in self._tracks.items() if k[0] == feed and not t.credible]
        return min(starts, default=None)

    def last_audio_end(self, feed: str) -> datetime | None:
        """End of the newest window seen from ``feed`` (how far that feed has got)."""
        return self._last_end.get(feed)

    def observe(
        self,
        window: Window,
        scores: Mapping[str, float] | None,
        *,
        boxes: tuple[CandidateBox, ...] = (),
        scored_utc: datetime | None = None,
    ) -> list[Detection]:
        """``scores=None``: the window was not scored (negative for every label)."""
        feed = window.feed
        start = require_aware(window.start_utc)
        previous = self._last_start.get(feed)
        skipped_s = 0.0
        if previous is not None:
            if start <= previous:
                raise ValueError(
                    f"{feed}: window at {format_utc(start)} is not after the previous one at "
                    f"{format_utc(previous)}; windows must arrive in time order per feed"
                )
            step = (start - previous).total_seconds()
            # Half a hop of slack: window starts are rounded to whole samples.
            if step > 1.5 * window.hop_s:
                skipped_s = step - window.hop_s
        self._last_start[feed] = start
        self._last_end[feed] = window.end_utc

        out: list[Detection] = []
        if scores is None:
            scores = {label: 0.0 for (track_feed, label) in self._tracks if track_feed == feed}
        for label, raw_score in scores.items():
            threshold = self.settings.threshold(feed, label)
            if threshold is None:
                continue
            score = float(raw_score)
            if not math.isfinite(score):
                raise ValueError(f"{feed}/{label}: score {raw_score!r} is not a finite number")
            key = (feed, label)
            track = self._tracks.get(key)
            positive = score >= threshold
            previous_id = None
            if track is not None:
                since_positive = (start - track.last_positive_start).total_seconds()
                if since_positive > self.settings.quiet_s:
                    reason: CloseReason = "gap" if skipped_s > 0 else "quiet"
                    out += self._close(key, reason, window.end_utc, scored_utc)
                    track = None
                elif positive and self._too_long(track, window):
                    previous_id = track.id if track.credible else None
                    out += self._close(key, "max_duration", window.end_utc, scored_utc)
                    track = None
            if positive:
                if track is None:
                    track = self._new_track(window, label, threshold, previous_id, boxes)
                    self._tracks[key] = track
                    track.add_positive(window, score, 0.0, boxes)
                else:
                    track.add_positive(window, score, skipped_s, boxes)
                if not track.credible and track.positives >= track.min_windows:
                    track.credible = True
                    out.append(self._message(feed, track, "opened", window.end_utc, scored_utc))
            elif track is not None:
                track.add_negative(window, skipped_s)
                if (start - track.last_positive_start).total_seconds() >= self.settings.quiet_s:
                    out += self._close(key, "quiet", window.end_utc, scored_utc)
        return out

    def _too_long(self, track: _Track, window: Window) -> bool:
        return (window.end_utc - track.start_utc).total_seconds() > self.settings.max_duration_s

    def advance_to(self, feed: str, moment: datetime) -> list[Detection]:
        """No audio of ``feed`` will come before ``moment``: close what has gone quiet by then."""
        moment = require_aware(moment)
        out: list[Detection] = []
        for key, track in list(self._tracks.items()):
            if key[0] != feed:
                continue
            if (moment - track.last_positive_start).total_seconds() > self.settings.quiet_s:
                out += self._close(key, "gap", self._last_end.get(feed, track.end_utc), None)
        return out

    def flush(self) -> list[Detection]:
        """Close everything still open (shutdown): each credible detection gets its ``closed``."""
        out: list[Detection] = []
        for key, track in list(self._tracks.items()):
            out += self._close(key, "shutdown", self._last_end.get(key[0], track.end_utc), None)
        return out

    def _new_track(
        self,
        window: Window,
        label: str,
        threshold: float,
        previous_id: str | None,
        boxes: tuple[CandidateBox, ...] = (),
    ) -> _Track:
        classifier = self.models.classifier.checksum
        start = min((b.start_utc for b in boxes), default=window.start_utc)
        ident = detection_id(start, window.feed, label, start.isoformat(), classifier)
        return _Track(
            id=ident,
            label=label,
            threshold=threshold,
            min_windows=self.settings.min_windows(window.hop_s),
            previous_id=previous_id,
            start_utc=window.start_utc,
            end_utc=window.end_utc,
            last_positive_start=window.start_utc,
            window_s=window.duration_s,
            hop_s=window.hop_s,
        )

    def _close(
        self,
        key: tuple[str, str],
        reason: CloseReason,
        audio_end: datetime,
        scored_utc: datetime | None,
    ) -> list[Detection]:
        track = self._tracks.pop(key)
        if not track.credible:
            self.discarded += 1
            return []
        return [self._message(key[0], track, "closed", audio_end, scored_utc, reason)]

    def _message(
        self,
        feed: str,
        track: _Track,
        status: DetectionStatus,
        audio_end: datetime,
        scored_utc: datetime | None,
        reason: CloseReason | None = None,
    ) -> Detection:
        info = self.feeds.get(feed) or FeedInfo.unknown(feed)
        return Detection(
            track.summary(info, self.settings.species.get(track.label)),
            status=status,
            models=self.models,
            emitted_utc=self.clock(),
            audio_end_utc=audio_end,
            scored_utc=scored_utc,
            close_reason=reason,
        )
