"""Audio between the stages: decoded chunks into the ring buffer, windows out of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from monitor.ingest.slots import SegmentRef


@dataclass(frozen=True, slots=True)
class AudioChunk:
    feed: str
    start_utc: datetime
    sample_rate: int
    samples: np.ndarray  # float32, shape (channels, n)
    source: SegmentRef
    gap_before: bool = False  # a new continuous run starts here
    channel_rms: tuple[float, ...] = field(default=())  # per decoded channel, before mixing
    source_offset_s: float = 0.0  # where in the source segment's decoded audio this chunk begins
    # Every decoded channel before the channel policy mixed them (health checks each channel:
    # a feed is up if any channel is). None when the decoder had one channel.
    channels: np.ndarray | None = None

    @property
    def frames(self) -> int:
        return int(self.samples.shape[-1])

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


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
