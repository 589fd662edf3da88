"""Sliding windows over a feed's ring buffer, on a UTC grid.

Window starts are multiples of the hop since the Unix epoch (in the buffer's integer sample
clock), so the live daemon and a replay of the same time range produce identical windows
whatever segment or folder the audio came from. A window is handed out as soon as its last
sample is in the buffer.

Gaps: a window that overlaps a recorded gap is skipped and counted (``skipped_gap``); scoring
zero-filled audio would only make false events. Windows whose audio was overwritten before they
were cut (the consumer fell more than the buffer's capacity behind) are counted in
``skipped_overrun``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.audio.chunks import Window
from monitor.audio.ring import RingBuffer
from monitor.limits import check_limits


@dataclass(frozen=True, slots=True)
class WindowSettings:
    # None: the classifier's own window length (the daemon resolves it once the model is loaded)
    length_s: float | None = field(default=None, metadata={"gt": 0.0})
    hop_s: float = field(default=1.0, metadata={"gt": 0.0})

    def __post_init__(self) -> None:
        check_limits(self)

    def resolved(self, classifier_window_s: float) -> WindowSettings:
        """These settings with an unset length taken from the classifier."""
        if self.length_s is not None:
            return self
        return WindowSettings(classifier_window_s, self.hop_s)


def whole_samples(seconds: float, sample_rate: int, what: str) -> int:
    exact = seconds * sample_rate
    count = round(exact)
    if count < 1 or abs(exact - count) > 1e-6:
        raise ValueError(f"{what} {seconds} s is not a whole number of samples at {sample_rate} Hz")
    return count


@dataclass(slots=True)
class WindowScheduler:
    """Cuts one feed's windows; call ``ready(buffer)`` after every write."""

    length_s: float
    hop_s: float
    emitted: int = 0
    skipped_gap: int = 0
    skipped_overrun: int = 0
    _next: int | None = field(default=None, init=False)  # start index of the next window
    _rate: int = field(default=0, init=False)
    _length: int = field(default=0, init=False)
    _hop: int = field(default=0, init=False)

    @classmethod
    def from_settings(cls, settings: WindowSettings) -> WindowScheduler:
        if settings.length_s is None:
            raise ValueError("window length_s is unset: resolve it with the classifier's first")
        return cls(settings.length_s, settings.hop_s)

    def __post_init__(self) -> None:
        WindowSettings(self.length_s, self.hop_s)  # validates

    def ready(self, buffer: RingBuffer) -> list[Window]:
        """Every window that is complete in ``buffer`` and not yet handed out, oldest first."""
        if buffer.empty:
            return []
        self._bind(buffer.sample_rate)
        if self._next is None:
            self._next = self._grid_at_or_after(buffer.start)
        if self._next < buffer.start:
            target = self._grid_at_or_after(buffer.start)
            self.skipped_overrun += (target - self._next) // self._hop
            self._next = target
        windows: list[Window] = []
        end = buffer.end
        while self._next + self._length <= end:
            start, stop = self._next, self._next + self._length
            read = buffer.read_index(start, stop)
            if read.contains_gap:
                resume = self._grid_at_or_after(max(g.end for g in read.gaps))
                self.skipped_gap += (resume - start) // self._hop
                self._next = resume
                continue
            windows.append(
                Window(
                    feed=buffer.feed,
                    start_utc=buffer.time_of(start),
                    sample_rate=self._rate,
                    samples=read.samples,
                    hop_s=self.hop_s,
                    sources=read.sources,
                )
            )
            self._next = start + self._hop
        self.emitted += len(windows)
        buffer.release(min(self._next, end))
        return windows

    def _bind(self, rate: int) -> None:
        if self._rate == rate:
            return
        if self._rate:
            raise ValueError(f"window scheduler bound to {self._rate} Hz, buffer is {rate} Hz")
        self._length = whole_samples(self.length_s, rate, "window length")
        self._hop = whole_samples(self.hop_s, rate, "window hop")
        self._rate = rate

    def _grid_at_or_after(self, index: int) -> int:
        return -(-index // self._hop) * self._hop
