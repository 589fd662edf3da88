"""Active SNR cells → candidate boxes, frame by frame, with state across calls.

A frame is active when a cell of the band (off the hum notches) is at least ``threshold_db``
over the floor. Active frames closer than ``merge_gap_s`` form one region (the pulses of a
buzz, the breaks in a moan); a region longer than ``max_duration_s`` is split. A closed region
is a box when it lasts ``min_duration_s``, spans ``min_bandwidth_hz`` and its peak cell reaches
``min_snr_db``. Frequencies span the bins active in ``band_share`` of the region's active
frames; times are frame centres ± half a hop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from monitor.candidates.settings import DetectorSettings
from monitor.candidates.spectrogram import Cells, SpectrogramFrontEnd
from monitor.timebase import after_samples, from_epoch

_EPOCH = from_epoch(0)


@dataclass(frozen=True, slots=True)
class CandidateBox:
    """A time-frequency region with energy above the background."""

    start_utc: datetime
    end_utc: datetime
    low_hz: float
    high_hz: float
    peak_hz: float
    snr_db: float

    @property
    def duration_s(self) -> float:
        return (self.end_utc - self.start_utc).total_seconds()

    @property
    def centre_utc(self) -> datetime:
        return self.start_utc + (self.end_utc - self.start_utc) / 2


@dataclass(slots=True)
class _Region:
    first: int
    last: int
    hits: np.ndarray  # active frames per bin
    frames: int  # active frames
    peak_snr: float
    peak_bin: int
    frame_peaks: list[tuple[int, float]]  # (frame, its peak SNR) of the active frames


class RegionTracker:
    """``add(cells)`` → the boxes closed by those frames; ``close()`` ends the open region."""

    def __init__(self, settings: DetectorSettings, front: SpectrogramFrontEnd) -> None:
        self.settings = settings
        self.front = front
        hop = settings.frame_hop_s
        self._merge_frames = round(settings.merge_gap_s / hop)
        self._max_frames = max(1, round(settings.max_duration_s / hop))
        self._open: _Region | None = None
        self._next_frame: int | None = None
        self.quiet_from: int | None = None  # the frame after the last active one (or the first)

    @property
    def open_first_frame(self) -> int | None:
        return None if self._open is None else self._open.first

    def add(self, cells: Cells) -> list[CandidateBox]:
        snr = np.where(self.front.allowed, cells.snr_db, -np.inf)
        with np.errstate(invalid="ignore"):
            active = snr >= self.settings.threshold_db  # NaN rows (no floor yet) are inactive
        any_active = active.sum(axis=1) >= self.settings.min_cells
        peak_bin = np.argmax(np.where(active, snr, -np.inf), axis=1)
        peak = snr[np.arange(snr.shape[0]), peak_bin]
        out: list[CandidateBox] = []
        if self.quiet_from is None:
            self.quiet_from = cells.first_frame
        self._next_frame = cells.first_frame + cells.frames
        for row in [*np.flatnonzero(any_active).tolist(), None]:
            frame = self._next_frame if row is None else cells.first_frame + row
            region = self._open
            if region is not None and (
                frame - region.last - 1 > self._merge_frames
                or (row is not None and frame - region.first >= self._max_frames)
            ):
                out += self._close()
                region = None
            if row is None:
                break
            if region is None:
                hits = np.zeros(active.shape[1], dtype=np.int32)
                self._open = region = _Region(frame, frame, hits, 0, -np.inf, 0, [])
            region.last = frame
            self.quiet_from = frame + 1
            region.frame_peaks.append((frame, float(peak[row])))
            region.hits += active[row]
            region.frames += 1
            if peak[row] > region.peak_snr:
                region.peak_snr, region.peak_bin = float(peak[row]), int(peak_bin[row])
        return out

    def close(self) -> list[CandidateBox]:
        return self._close()

    def _close(self) -> list[CandidateBox]:
        region, self._open = self._open, None
        if region is None:
            return []
        settings, front = self.settings, self.front
        first, last = _edges(region, settings)
        half = front.hop // 2
        start = front.frame_centre(first) - half
        end = front.frame_centre(last) + front.hop - half
        # The band: bins active in a fair share of the region's active frames (a stray cell
        # of background far from the call does not stretch the box).
        core = np.flatnonzero(region.hits >= max(1.0, settings.band_share * region.frames))
        if core.size == 0:
            core = np.flatnonzero(region.hits)
        low = float(front.freqs[core[0]]) - front.bin_hz / 2
        high = float(front.freqs[core[-1]]) + front.bin_hz / 2
        rate = front.sample_rate
        if (
            (end - start) / rate < settings.min_duration_s
            or high - low < settings.min_bandwidth_hz
            or region.peak_snr < settings.min_snr_db
        ):
            return []
        return [
            CandidateBox(
                start_utc=after_samples(_EPOCH, start, rate),
                end_utc=after_samples(_EPOCH, end, rate),
                low_hz=max(low, 0.0),
                high_hz=high,
                peak_hz=float(front.freqs[region.peak_bin]),
                snr_db=region.peak_snr,
            )
        ]


def _edges(region: _Region, settings: DetectorSettings) -> tuple[int, int]:
    """The region's first and last frames whose peak SNR is within ``edge_drop_db`` of the
    region's peak: a weak lead-in (a step up in the background just before a call, which the
    floor has not absorbed yet) or tail does not stretch the box."""
    if settings.edge_drop_db <= 0:
        return region.first, region.last
    floor = region.peak_snr - settings.edge_drop_db
    strong = [frame for frame, snr in region.frame_peaks if snr >= floor]
    return strong[0], strong[-1]
