"""One feed's stage-1 detector over its decoded stream: chunks in, closed boxes out.

The same audio gives the same boxes however it is cut into chunks, segments or folders (the
frame grid is the epoch sample clock); a gap closes the open region and restarts the frame
grid. ``settled_until`` is the moment before which every box is known: a window whose boxes
would all start before it can be decided.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from monitor.audio.chunks import AudioChunk
from monitor.candidates.regions import CandidateBox, RegionTracker
from monitor.candidates.settings import DetectorSettings
from monitor.candidates.spectrogram import SpectrogramFrontEnd
from monitor.timebase import after_samples, from_epoch, samples_between

_EPOCH = from_epoch(0)


class CandidateStage:
    def __init__(self, settings: DetectorSettings) -> None:
        self.settings = settings
        self._front: SpectrogramFrontEnd | None = None
        self._regions: RegionTracker | None = None
        self._settled: datetime | None = None

    @property
    def settled_until(self) -> datetime | None:
        """Every box that starts before this moment has been handed out (None: nothing read)."""
        return self._settled

    @property
    def quiet_from(self) -> datetime | None:
        """Where the present stretch without an active frame began (None: nothing read); it
        lasts until ``heard_until``."""
        regions, front = self._regions, self._front
        if regions is None or front is None or regions.quiet_from is None:
            return None
        return self._moment(front, regions.quiet_from)

    @property
    def heard_until(self) -> datetime | None:
        """The end of the frames handed out so far (None: nothing read)."""
        front = self._front
        if front is None or front.next_frame is None:
            return None
        return self._moment(front, front.next_frame)

    def feed(self, chunk: AudioChunk) -> list[CandidateBox]:
        return self.feed_samples(chunk.samples[0], chunk.start_utc, chunk.sample_rate)

    def feed_samples(
        self, samples: np.ndarray, start_utc: datetime, sample_rate: int
    ) -> list[CandidateBox]:
        out: list[CandidateBox] = []
        if self._front is None or self._front.sample_rate != sample_rate:
            out += self.close()
            self._front = SpectrogramFrontEnd(self.settings, sample_rate)
            self._regions = RegionTracker(self.settings, self._front)
        front, regions = self._front, self._regions
        assert regions is not None
        for cells in front.feed(samples, samples_between(_EPOCH, start_utc, sample_rate)):
            out += regions.add(cells)
        self._settle(front, regions)
        return out

    def close(self) -> list[CandidateBox]:
        """A gap or the end of the stream: the open region ends here."""
        if self._front is None or self._regions is None:
            return []
        cells = self._front.flush()
        out = [] if cells is None else self._regions.add(cells)
        out += self._regions.close()
        self._front.break_stream()
        return out

    def _settle(self, front: SpectrogramFrontEnd, regions: RegionTracker) -> None:
        first = regions.open_first_frame
        if first is None:
            first = front.next_frame
        if first is None:
            return
        moment = self._moment(front, first)
        if self._settled is None or moment > self._settled:
            self._settled = moment

    @staticmethod
    def _moment(front: SpectrogramFrontEnd, frame: int) -> datetime:
        return after_samples(_EPOCH, front.frame_centre(frame) - front.hop // 2, front.sample_rate)
