"""Decoded audio, as the decoder hands it to the ring buffer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from monitor.hls.segment import SegmentRef


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
