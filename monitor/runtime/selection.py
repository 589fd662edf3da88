"""Which cut windows the classifier scores, chosen once per run (``detector.mode``).

``EveryWindow``: all of them (the seed behaviour). ``Cascade``: stage 1 (``CandidateStage``)
runs on the same chunks; a window is scored only when it is the window centred on a candidate
box (a box longer than a window is tiled by windows centred on equal parts of it); candidates
that share a window share one classifier call. The other windows still reach the event builder,
unscored (negative for every label), so quiet time and gaps work as with every window.

A window is decided once stage 1 has settled every box that could pick it; until then it waits
here (at most one open box long), and ``next_start`` stays at it, so a resume re-reads it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from monitor.audio.chunks import AudioChunk, Window
from monitor.candidates.regions import CandidateBox
from monitor.candidates.settings import DetectorSettings
from monitor.candidates.stage import CandidateStage
from monitor.ingest.slots import SegmentGap
from monitor.runtime.cutter import WindowCutter
from monitor.timebase import to_epoch


@dataclass(frozen=True, slots=True)
class Selected:
    """A cut window, whether the classifier scores it, and the boxes that chose it."""

    window: Window
    score: bool
    boxes: tuple[CandidateBox, ...] = ()


class WindowSelection(Protocol):
    def cut(self, chunk: AudioChunk) -> list[Selected]: ...

    def gap(self, gap: SegmentGap) -> list[Selected]: ...

    def flush(self) -> list[Selected]: ...

    @property
    def next_start(self) -> datetime | None: ...


SelectionFactory = Callable[[WindowCutter], WindowSelection]


class EveryWindow:
    def __init__(self, cutter: WindowCutter) -> None:
        self.cutter = cutter

    def cut(self, chunk: AudioChunk) -> list[Selected]:
        return [Selected(window, True) for window in self.cutter.cut(chunk)]

    def gap(self, gap: SegmentGap) -> list[Selected]:
        self.cutter.mark_gap(gap)
        return []

    def flush(self) -> list[Selected]:
        return []

    @property
    def next_start(self) -> datetime | None:
        return self.cutter.next_start


class Cascade:
    def __init__(self, cutter: WindowCutter, settings: DetectorSettings) -> None:
        self.cutter = cutter
        self.stage = CandidateStage(settings)
        length = cutter.windows.length_s
        if length is None:
            raise ValueError("the cascade needs the resolved window length")
        self.length_s = length
        self.hop_s = cutter.windows.hop_s
        self._pending: deque[Window] = deque()
        self._wanted: dict[int, list[CandidateBox]] = {}  # grid step of a window start → boxes

    def cut(self, chunk: AudioChunk) -> list[Selected]:
        self._assign(self.stage.feed(chunk))
        self._pending.extend(self.cutter.cut(chunk))
        settled = self.stage.settled_until
        return [] if settled is None else self._decide(settled)

    def gap(self, gap: SegmentGap) -> list[Selected]:
        out = self.flush()
        self.cutter.mark_gap(gap)
        return out

    def flush(self) -> list[Selected]:
        """A gap or the end of the source: the open box closes, every waiting window is decided."""
        self._assign(self.stage.close())
        out = self._decide(None)  # None: every held window
        self._wanted.clear()
        return out

    @property
    def next_start(self) -> datetime | None:
        return self._pending[0].start_utc if self._pending else self.cutter.next_start

    def _assign(self, boxes: list[CandidateBox]) -> None:
        for box in boxes:
            for step in window_steps(box, self.length_s, self.hop_s):
                self._wanted.setdefault(step, []).append(box)

    def _decide(self, settled: datetime | None) -> list[Selected]:
        # A box still to come starts at or after ``settled``; its window starts no earlier than
        # half a window (and half a hop of grid rounding) before it.
        limit = None
        if settled is not None:
            limit = settled - timedelta(seconds=self.length_s / 2 + self.hop_s)
        out = []
        while self._pending and (limit is None or self._pending[0].start_utc < limit):
            window = self._pending.popleft()
            step = grid_step(window.start_utc, self.hop_s)
            for stale in [s for s in self._wanted if s < step]:
                del self._wanted[stale]  # outside the range, or before the resume point
            boxes = tuple(self._wanted.pop(step, ()))
            out.append(Selected(window, bool(boxes), boxes))
        return out


def grid_step(moment: datetime, hop_s: float) -> int:
    return round(to_epoch(moment) / hop_s)


def window_steps(box: CandidateBox, length_s: float, hop_s: float) -> list[int]:
    """The windows (as grid steps of their starts) centred on ``box``, or on equal parts of it
    when it is longer than a window."""
    parts = max(1, math.ceil(box.duration_s / length_s - 1e-9))
    part_s = box.duration_s / parts
    begin = to_epoch(box.start_utc)
    steps = {round((begin + part_s * (i + 0.5) - length_s / 2) / hop_s) for i in range(parts)}
    return sorted(steps)


def selection_for(settings: DetectorSettings) -> SelectionFactory:
    """The run's window selection, from ``detector.mode``."""
    if settings.mode == "every-window":
        return EveryWindow
    return lambda cutter: Cascade(cutter, settings)


def selection_margin_s(settings: DetectorSettings) -> float:
    """How much earlier a resume re-reads for the selection: stage 1's background history (its
    floor is then settled again when the first window after the resume point is decided)."""
    return settings.history_s if settings.mode == "cascade" else 0.0
