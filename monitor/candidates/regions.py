"""Active SNR cells → candidate boxes, frame by frame, with state across calls.

A frame is active when ``min_cells`` cells of the band (off the hum notches) are at least
``threshold_db`` over the floor. Active frames closer than ``merge_gap_s`` form one region (the
pulses of a buzz, the breaks in a moan); a region longer than ``max_duration_s`` is split. When a
region closes, its active cells are split into sounds connected in time *and* frequency (cells
within ``merge_gap_s`` and ``merge_hz`` of each other; parts that share most of their time span,
the harmonics of one call, are one sound), so a step in the background in another band, or a
second animal, is not the call's box. A sound is a box when it lasts ``min_duration_s``, spans
``min_bandwidth_hz`` and its peak cell reaches ``min_snr_db``. Frequencies span the bins active
in ``band_share`` of the sound's active frames; times are frame centres ± half a hop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from scipy import ndimage

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
    rows: list[tuple[int, np.ndarray, np.ndarray]]  # (frame, its cells' SNR, their level dB)


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
        snr = np.where(self.front.allowed & ~np.isnan(cells.snr_db), cells.snr_db, -np.inf)
        with np.errstate(invalid="ignore"):
            active = snr >= self.settings.threshold_db  # NaN rows (no floor yet) are inactive
        any_active = active.sum(axis=1) >= self.settings.min_cells
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
                self._open = region = _Region(frame, frame, [])
            region.last = frame
            self.quiet_from = frame + 1
            region.rows.append((frame, snr[row], cells.level_db[row]))
        return out

    def close(self) -> list[CandidateBox]:
        return self._close()

    def _close(self) -> list[CandidateBox]:
        region, self._open = self._open, None
        if region is None:
            return []
        shape = (region.last - region.first + 1, self.front.freqs.size)
        snr = np.full(shape, -np.inf, np.float32)
        level = np.full(shape, -np.inf, np.float32)
        for frame, cells, levels in region.rows:
            snr[frame - region.first] = cells
            level[frame - region.first] = levels
        boxes = [self._box(region.first, snr, level, part) for part in self._sounds(snr)]
        return sorted((b for b in boxes if b is not None), key=lambda b: b.start_utc)

    def _sounds(self, snr: np.ndarray) -> list[np.ndarray]:
        """The region's active cells as masks, one per sound (see the module's doc)."""
        settings, front = self.settings, self.front
        active = snr >= settings.threshold_db
        reach_t = min(snr.shape[0], max(0, self._merge_frames // 2))
        reach_f = min(snr.shape[1], max(0, round(settings.merge_hz / front.bin_hz / 2)))
        grown = ndimage.binary_dilation(
            active, structure=np.ones((2 * reach_t + 1, 2 * reach_f + 1), dtype=bool)
        )
        labels, _count = ndimage.label(grown)
        labels = np.where(active, labels, 0)
        spans = []
        for part, found in enumerate(ndimage.find_objects(labels), start=1):
            if found is not None:
                spans.append((part, found[0].start, found[0].stop))
        # Parts sharing most of their time span (harmonics, the bands of one pulse) join.
        groups: list[tuple[list[int], list[int]]] = []  # (parts, [first, stop) frames)
        for part, first, stop in sorted(spans, key=lambda s: (s[1], s[2])):
            for members, span in groups:
                shared = min(stop, span[1]) - max(first, span[0])
                union = max(stop, span[1]) - min(first, span[0])
                if shared >= settings.same_sound_overlap * union:
                    members.append(part)
                    span[:] = [min(first, span[0]), max(stop, span[1])]
                    break
            else:
                groups.append(([part], [first, stop]))
        return [np.isin(labels, members) for members, _span in groups]

    def _box(
        self, first_frame: int, snr: np.ndarray, level: np.ndarray, sound: np.ndarray
    ) -> CandidateBox | None:
        settings, front = self.settings, self.front
        cells = np.where(sound, snr, -np.inf)
        frames = np.flatnonzero(sound.any(axis=1))
        peak_row, peak_bin = np.unravel_index(int(np.argmax(cells)), cells.shape)
        peak_snr = float(cells[peak_row, peak_bin])
        # Edges: the first and last frames whose power above the floor (in the sound's cells) is
        # within edge_drop_db of its loudest frame's, so a weak lead-in or tail does not stretch
        # the box (how a call's extent is annotated: within so many dB of its peak energy).
        power = 10.0 ** (np.where(sound, level, 0.0) / 10.0)
        floor = 10.0 ** (np.subtract(level, snr, out=np.zeros_like(level), where=sound) / 10.0)
        energy = np.where(sound, power - floor, 0.0).sum(axis=1)
        strong = (
            frames
            if settings.edge_drop_db <= 0
            else np.flatnonzero(energy >= energy.max() * 10.0 ** (-settings.edge_drop_db / 10.0))
        )
        first, last = first_frame + int(strong[0]), first_frame + int(strong[-1])
        half = front.hop // 2
        start = front.frame_centre(first) - half
        end = front.frame_centre(last) + front.hop - half
        # The band: bins active in a fair share of the sound's active frames (a stray cell
        # far from the call does not stretch the box).
        hits = sound.sum(axis=0)
        core = np.flatnonzero(hits >= max(1.0, settings.band_share * frames.size))
        if core.size == 0:
            core = np.flatnonzero(hits)
        low = float(front.freqs[core[0]]) - front.bin_hz / 2
        high = float(front.freqs[core[-1]]) + front.bin_hz / 2
        rate = front.sample_rate
        if (
            (end - start) / rate < settings.min_duration_s
            or high - low < settings.min_bandwidth_hz
            or peak_snr < settings.min_snr_db
        ):
            return None
        return CandidateBox(
            start_utc=after_samples(_EPOCH, start, rate),
            end_utc=after_samples(_EPOCH, end, rate),
            low_hz=max(low, 0.0),
            high_hz=high,
            peak_hz=float(front.freqs[peak_bin]),
            snr_db=peak_snr,
        )
