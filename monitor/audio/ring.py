"""A feed's recent mono audio, indexed by UTC through an integer sample clock.

Sample index ``i`` is the sample at ``i / sample_rate`` seconds after the Unix epoch, so every
feed and every run shares one grid and windows can be aligned to it exactly.

Writing (deterministic, first come first kept):
- A chunk that starts within ``snap_samples`` of the write head continues it exactly (the
  decoder's microsecond timestamps round to the same sample; the snap only absorbs rounding).
- A chunk that starts later leaves a hole: the hole is zero-filled and recorded in the gap map
  with the reasons of the ``SegmentGap``s seen since the last write (else "discontinuity").
- A chunk that starts earlier (a new run's anchor a little behind the previous run's end) has
  its overlapping head dropped: audio already in the buffer is never rewritten. The dropped
  samples are counted in ``overlap_samples``.
- When the buffer is full the oldest samples are overwritten. Audio samples overwritten before
  the consumer ``release``d them are counted in ``dropped_samples`` (an overrun metric, not an
  error). Zero-filled holes, and audio pushed out by the write that opens a hole, are not
  counted: the consumer did not fall behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from monitor.audio.chunks import AudioChunk, SourceSpan
from monitor.ingest.slots import SegmentGap, SegmentRef
from monitor.timebase import after_samples, from_epoch, samples_between

UNIX_EPOCH = from_epoch(0)


@dataclass(frozen=True, slots=True)
class RingBufferSettings:
    capacity_s: float = 120.0
    sample_rate: int = 48000
    snap_samples: int = 2

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0, got {self.sample_rate}")
        if self.capacity_s * self.sample_rate < 1:
            raise ValueError(f"capacity_s must hold at least one sample, got {self.capacity_s}")
        if self.snap_samples < 0:
            raise ValueError(f"snap_samples must be ≥ 0, got {self.snap_samples}")


@dataclass(frozen=True, slots=True)
class GapRecord:
    start: int  # sample index (inclusive)
    end: int  # sample index (exclusive)
    reason: str
    start_utc: datetime
    end_utc: datetime


@dataclass(frozen=True, slots=True)
class BufferRead:
    samples: np.ndarray  # float32 (n,), zeros where there was no audio
    start: int
    contains_gap: bool
    gaps: tuple[GapRecord, ...]
    sources: tuple[SourceSpan, ...]


class AudioUnavailable(LookupError):
    """The requested span is not (or no longer) in the buffer."""


@dataclass(slots=True)
class _Source:
    start: int
    end: int
    ref: SegmentRef
    offset: int  # samples into the segment's decoded audio at ``start``


@dataclass(slots=True)
class RingBuffer:
    feed: str
    settings: RingBufferSettings = field(default_factory=RingBufferSettings)
    dropped_samples: int = 0
    overlap_samples: int = 0
    gaps: list[GapRecord] = field(default_factory=list)
    _data: np.ndarray = field(init=False, repr=False)
    _capacity: int = field(init=False)
    _first: int | None = field(default=None, init=False)  # oldest index ever written
    _end: int = field(default=0, init=False)  # write head: next index
    _released: int = field(default=0, init=False)  # the consumer needs nothing before this
    _pending_reasons: list[str] = field(default_factory=list, init=False)
    _sources: list[_Source] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._capacity = round(self.settings.capacity_s * self.settings.sample_rate)
        self._data = np.zeros(self._capacity, dtype=np.float32)

    # ---- the clock ----

    @property
    def sample_rate(self) -> int:
        return self.settings.sample_rate

    def index_of(self, moment: datetime) -> int:
        return samples_between(UNIX_EPOCH, moment, self.sample_rate)

    def time_of(self, index: int) -> datetime:
        return after_samples(UNIX_EPOCH, index, self.sample_rate)

    @property
    def empty(self) -> bool:
        return self._first is None

    @property
    def start(self) -> int:
        """Oldest index still held."""
        if self._first is None:
            raise AudioUnavailable(f"{self.feed}: the buffer is empty")
        return max(self._first, self._end - self._capacity)

    @property
    def end(self) -> int:
        """One past the newest index written."""
        if self._first is None:
            raise AudioUnavailable(f"{self.feed}: the buffer is empty")
        return self._end

    # ---- writing ----

    def mark_gap(self, gap: SegmentGap) -> None:
        """Remember why audio is missing; the hole itself is recorded when audio resumes."""
        if gap.reason not in self._pending_reasons:
            self._pending_reasons.append(gap.reason)

    def write(self, chunk: AudioChunk) -> None:
        if chunk.sample_rate != self.sample_rate:
            raise ValueError(
                f"{self.feed}: chunk at {chunk.sample_rate} Hz into a {self.sample_rate} Hz buffer"
            )
        if chunk.samples.ndim != 2 or chunk.samples.shape[0] != 1:
            raise ValueError(
                f"{self.feed}: the buffer takes mono (1, n), got {chunk.samples.shape}"
            )
        samples = chunk.samples[0]
        begin = self.index_of(chunk.start_utc)
        offset = round(chunk.source_offset_s * self.sample_rate)
        if self._first is None:
            self._first = self._end = self._released = begin
        elif abs(begin - self._end) <= self.settings.snap_samples:
            begin = self._end
        elif begin > self._end:
            self._fill_gap(begin, samples.shape[0])
        else:
            overlap = min(self._end - begin, samples.shape[0])
            self.overlap_samples += overlap
            samples = samples[overlap:]
            offset += overlap
            begin = self._end
        self._pending_reasons.clear()
        if samples.shape[0]:
            self._sources.append(_Source(begin, begin + samples.shape[0], chunk.source, offset))
            self._put(samples)
        self._prune()

    def _fill_gap(self, begin: int, incoming: int) -> None:
        reason = "; ".join(self._pending_reasons) or "discontinuity"
        gap_start = self._end
        self.gaps.append(
            GapRecord(gap_start, begin, reason, self.time_of(gap_start), self.time_of(begin))
        )
        # Zero-fill only what can still be held; a hole longer than the buffer just moves on.
        zeros = min(begin - self._end, self._capacity)
        # Audio pushed out by the hole and the chunk after it was not overrun by a slow consumer
        # (only windows spanning the hole still wanted it): not counted.
        self._released = max(self._released, min(gap_start, begin + incoming - self._capacity))
        self._end = begin - zeros
        self._store(np.zeros(zeros, dtype=np.float32))

    def _put(self, samples: np.ndarray) -> None:
        if samples.shape[0] > self._capacity:
            skipped = samples.shape[0] - self._capacity
            self._overrun_to(self._end + samples.shape[0])
            self.dropped_samples += skipped  # never held at all
            self._end += skipped
            self._released = max(self._released, self._end)
            samples = samples[skipped:]
        self._overrun_to(self._end + samples.shape[0])
        self._store(samples)

    def _overrun_to(self, new_end: int) -> None:
        """Count unreleased samples that a head moving to ``new_end`` pushes out."""
        assert self._first is not None
        oldest_after = max(self._first, new_end - self._capacity)
        lost_from = max(self._released, self.start)
        if oldest_after > lost_from:
            lost_to = min(oldest_after, self._end)
            # zero-filled holes are not audio: overwriting them loses nothing
            silent = sum(max(0, min(g.end, lost_to) - max(g.start, lost_from)) for g in self.gaps)
            self.dropped_samples += max(0, lost_to - lost_from - silent)
            self._released = max(self._released, oldest_after)

    def _store(self, samples: np.ndarray) -> None:
        n = samples.shape[0]
        at = self._end % self._capacity
        first = min(n, self._capacity - at)
        self._data[at : at + first] = samples[:first]
        self._data[: n - first] = samples[first:]
        self._end += n

    def _prune(self) -> None:
        oldest = self.start
        self.gaps = [g for g in self.gaps if g.end > oldest]
        self._sources = [s for s in self._sources if s.end > oldest]

    # ---- reading ----

    def release(self, index: int) -> None:
        """The consumer needs nothing before ``index`` any more (for the overrun count)."""
        self._released = max(self._released, index)

    def read(self, start_utc: datetime, end_utc: datetime) -> BufferRead:
        return self.read_index(self.index_of(start_utc), self.index_of(end_utc))

    def read_index(self, start: int, stop: int) -> BufferRead:
        if stop < start:
            raise ValueError(f"{self.feed}: read [{start}, {stop}) ends before it starts")
        if self.empty or start < self.start or stop > self.end:
            held = "nothing" if self.empty else f"[{self.start}, {self.end})"
            raise AudioUnavailable(
                f"{self.feed}: samples [{start}, {stop}) not in the buffer, which holds {held}"
            )
        n = stop - start
        at = start % self._capacity
        first = min(n, self._capacity - at)
        samples = np.concatenate([self._data[at : at + first], self._data[: n - first]])
        gaps = tuple(g for g in self.gaps if g.start < stop and g.end > start)
        sources = tuple(
            SourceSpan(
                ref=s.ref,
                offset_s=(s.offset + max(start, s.start) - s.start) / self.sample_rate,
                duration_s=(min(stop, s.end) - max(start, s.start)) / self.sample_rate,
            )
            for s in self._sources
            if s.start < stop and s.end > start
        )
        return BufferRead(samples, start, bool(gaps), gaps, sources)
