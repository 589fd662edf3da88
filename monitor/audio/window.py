"""A slice of one feed's audio, ready for the inference engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from monitor.hls.segment import SegmentRef


@dataclass(frozen=True, slots=True)
class SourceSpan:
    """Part of a window that came from one segment: ``offset_s`` into that segment."""

    ref: SegmentRef
    offset_s: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class Window:
    feed: str
    start_utc: datetime
    sample_rate: int
    samples: np.ndarray  # float32, mono, shape (n,)
    hop_s: float
    sources: tuple[SourceSpan, ...] = ()
    contains_gap: bool = False

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def end_utc(self) -> datetime:
        return self.start_utc + timedelta(seconds=self.duration_s)
