"""A closed detection's audio, taken from the feed's ring buffer (no second download).

The pipeline keeps the ring its windows are cut from (the denoised audio when a denoiser runs)
and, only with a denoiser, a second ring of the raw decoded audio, so both versions can be
written. A clip is the detection ± ``margin_s``, cut to what the ring still holds (a detection
longer than the ring loses its beginning; the clip says where it starts)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from monitor.audio.ring import RingBuffer


@dataclass(frozen=True, slots=True)
class Clip:
    samples: np.ndarray  # mono float32
    sample_rate: int
    start_utc: datetime

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate


@dataclass(frozen=True, slots=True)
class ClipAudio:
    """What the media writer gets: what the hydrophone heard and, with a denoiser, the
    denoised stream the windows were scored on."""

    raw: Clip
    denoised: Clip | None = None


def read_clip(ring: RingBuffer | None, start_utc: datetime, end_utc: datetime) -> Clip | None:
    """``[start_utc, end_utc)`` as far as ``ring`` holds it; None when it holds none of it."""
    if ring is None or ring.empty:
        return None
    first = max(ring.index_of(start_utc), ring.start)
    stop = min(ring.index_of(end_utc), ring.end)
    if stop - first < ring.sample_rate // 10:  # under 0.1 s: nothing worth a file
        return None
    read = ring.read_index(first, stop)
    return Clip(read.samples, ring.sample_rate, ring.time_of(first))


def clip_audio(
    scored: RingBuffer | None,
    raw: RingBuffer | None,
    start_utc: datetime,
    end_utc: datetime,
    margin_s: float,
) -> ClipAudio | None:
    """The clip of a detection from ``[start_utc, end_utc)``. ``raw`` is None without a
    denoiser: then the scored ring holds the raw audio."""
    margin = timedelta(seconds=margin_s)
    begin, end = start_utc - margin, end_utc + margin
    if raw is None:
        clip = read_clip(scored, begin, end)
        return None if clip is None else ClipAudio(clip)
    raw_clip = read_clip(raw, begin, end)
    if raw_clip is None:
        return None
    return ClipAudio(raw_clip, read_clip(scored, begin, end))
