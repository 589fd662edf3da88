"""Stage 1's front end: a feed's audio as SNR cells over a per-band background floor.

Frames lie on the UTC sample grid (frame ``f`` covers samples ``[f·hop, f·hop + n)`` of the
epoch sample clock), so the cells do not depend on where segments or chunks begin. Power is
smoothed over 3 bins × ``smooth_frames`` frames (a cell is then the mean of many periodogram
values, so noise alone rarely passes the threshold, and a click shorter than a frame is
diluted). The floor of a band in a ``block_s`` block is a quantile (``floor_quantile``) of the
mean dB of the blocks of the ``history_s`` before it and the ``lookahead_s`` after it: a call
much shorter than that window barely moves it, stationary sound (ship drone, hum) is the floor,
a step in the background (a new recording, a ship arriving) is floor from its first frame
rather than a box, and the memory is finite, so two runs that read the same ``history_s`` of
audio before a moment agree after it. Cells are handed out ``lookahead_s`` late (``flush`` at a
gap or the end hands out the rest over the blocks read).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from monitor.audio.windows import whole_samples
from monitor.candidates.settings import DetectorSettings

_TINY = 1e-20  # power floor before the log (digital silence)


@dataclass(frozen=True, slots=True)
class Cells:
    """SNR (dB) of consecutive frames from ``first_frame``; a row is NaN where no floor is
    known yet (the first blocks of a run)."""

    first_frame: int
    snr_db: np.ndarray  # float32, (frames, bins of the band)
    level_db: np.ndarray  # the same cells' power (dB), before the floor

    @property
    def frames(self) -> int:
        return int(self.snr_db.shape[0])


class SpectrogramFrontEnd:
    """``feed(samples, start_index)``: mono float32 audio starting at that epoch sample index
    (consecutive calls continue the stream; a jump restarts the frame grid) → ``Cells``."""

    def __init__(self, settings: DetectorSettings, sample_rate: int) -> None:
        self.settings = settings
        self.sample_rate = sample_rate
        self.n = whole_samples(settings.frame_s, sample_rate, "detector frame")
        self.hop = whole_samples(settings.frame_hop_s, sample_rate, "detector frame hop")
        block = settings.block_s / settings.frame_hop_s
        if abs(block - round(block)) > 1e-6:
            raise ValueError("detector block_s must be a whole number of frame hops")
        self.block_frames = round(block)
        self.smooth = 2 * settings.smooth_frames // 2 + 1  # odd: a middle frame
        self.history_blocks = max(1, round(settings.history_s / settings.block_s))
        self.min_blocks = max(1, self.history_blocks // 2)
        freqs = np.fft.rfftfreq(self.n, 1.0 / sample_rate)
        self.bin_hz = float(freqs[1])
        inside = np.flatnonzero((freqs >= settings.low_hz) & (freqs <= settings.high_hz))
        if inside.size < 3:
            raise ValueError("detector band holds fewer than 3 frequency bins")
        # One bin either side for the frequency smoothing, inside the spectrum.
        self.lo_bin, self.hi_bin = int(inside[0]), int(inside[-1]) + 1
        self._pad_lo = 1 if self.lo_bin > 0 else 0
        self._pad_hi = 1 if self.hi_bin < freqs.size else 0
        self.freqs = freqs[self.lo_bin : self.hi_bin]
        self.allowed = _off_hum(self.freqs, settings.hum_hz, settings.hum_width_hz)
        self._taper = np.hanning(self.n).astype(np.float32)
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start: int | None = None  # epoch index of _buf[0]
        self._next_frame: int | None = None  # first frame not yet computed
        self._recent = np.zeros((0, self.hi_bin - self.lo_bin), dtype=np.float32)
        self._recent_last: int | None = None  # the next middle frame to hand out
        self._block: int | None = None
        self._block_sum = np.zeros(self.hi_bin - self.lo_bin, dtype=np.float64)
        self._block_count = 0
        self.lookahead_blocks = round(settings.lookahead_s / settings.block_s)
        # Closed blocks' mean dB, (block, mean): enough for the rows waiting for their floor.
        self._history: deque[tuple[int, np.ndarray]] = deque(
            maxlen=self.history_blocks + 2 * self.lookahead_blocks + 2
        )
        self._pending = np.zeros((0, self.hi_bin - self.lo_bin), dtype=np.float32)
        self._pending_first = 0  # frame of _pending[0]

    def frame_centre(self, frame: int) -> int:
        """Epoch sample index of a frame's centre."""
        return frame * self.hop + self.n // 2

    @property
    def next_frame(self) -> int | None:
        """The first (smoothed) frame not yet handed out."""
        return self._pending_first if self._pending.shape[0] else self._recent_last

    def break_stream(self) -> None:
        """A gap: the next audio starts a new frame grid (the background history is kept; the
        waiting rows are dropped, so ``flush`` first)."""
        self._pending = self._pending[:0]
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = None
        self._next_frame = None
        self._recent = self._recent[:0]
        self._recent_last = None

    def feed(self, samples: np.ndarray, start_index: int) -> list[Cells]:
        """The cells whose floor became known (a jump in the stream hands out the rows before
        it first, then starts a new frame grid)."""
        samples = np.asarray(samples, dtype=np.float32)
        out: list[Cells] = []
        if self._buf_start is not None:
            end = self._buf_start + self._buf.size
            if abs(start_index - end) <= self.hop // 2:
                start_index = end  # rounding of chunk times: the same stream
            elif start_index < end:
                samples = samples[end - start_index :]
                start_index = end
            else:
                out += [cells for cells in [self.flush()] if cells is not None]
                self.break_stream()
        if self._buf_start is None:
            self._buf_start = start_index
            self._buf = samples.copy()
            self._next_frame = -(-start_index // self.hop)
        else:
            self._buf = np.concatenate([self._buf, samples])
        assert self._next_frame is not None
        buf_end = self._buf_start + self._buf.size
        last = (buf_end - self.n) // self.hop  # the last frame complete in the buffer
        first = self._next_frame
        if last < first:
            return out
        offset = first * self.hop - self._buf_start
        frames = np.lib.stride_tricks.sliding_window_view(self._buf[offset:], self.n)[:: self.hop][
            : last - first + 1
        ]
        spectrum = np.fft.rfft(frames * self._taper, axis=1)
        lo, hi = self.lo_bin - self._pad_lo, self.hi_bin + self._pad_hi
        band = spectrum[:, lo:hi]
        power = band.real**2 + band.imag**2
        power = _smooth_bins(power, self._pad_lo, self._pad_hi).astype(np.float32)
        self._next_frame = last + 1
        keep_from = self._next_frame * self.hop - self._buf_start
        self._buf = self._buf[keep_from:].copy()
        self._buf_start += keep_from
        cells = self._smoothed(first, power)
        return out if cells is None else [*out, cells]

    def _smoothed(self, first: int, power: np.ndarray) -> Cells | None:
        """Means over ``smooth`` frames, each handed out as its middle frame; then SNR over the
        floor."""
        k = self.smooth
        rows = np.concatenate([self._recent, power]) if self._recent.size else power
        lead = self._recent.shape[0]
        self._recent = rows[-(k - 1) :].copy() if k > 1 else rows[:0].copy()
        self._recent_last = first + power.shape[0] - (k // 2)
        if rows.shape[0] < k:
            return None
        total = np.cumsum(rows, axis=0, dtype=np.float64)
        sums = total[k - 1 :].copy()
        sums[1:] -= total[:-k]
        centre = first - lead + k // 2  # frame of sums[0]
        db = 10.0 * np.log10(sums / k + _TINY).astype(np.float32)
        return self._over_floor(centre, db)

    def _over_floor(self, first: int, db: np.ndarray) -> Cells | None:
        """Queue the rows block by block, and hand out those whose floor became known."""
        released: list[Cells] = []
        frame = first
        row = 0
        while row < db.shape[0]:
            block = frame // self.block_frames
            if block != self._block:
                self._close_block(block)
                released += [cells for cells in [self._release(final=False)] if cells is not None]
            take = min(db.shape[0] - row, (block + 1) * self.block_frames - frame)
            part = db[row : row + take]
            if self._pending.shape[0] == 0:
                self._pending_first = frame
            self._pending = np.concatenate([self._pending, part])
            self._block_sum += part.sum(axis=0, dtype=np.float64)
            self._block_count += take
            row += take
            frame += take
        released += [cells for cells in [self._release(final=False)] if cells is not None]
        if not released:
            return None
        return Cells(
            released[0].first_frame,
            np.concatenate([c.snr_db for c in released]),
            np.concatenate([c.level_db for c in released]),
        )

    def flush(self) -> Cells | None:
        """The end of the stream or a gap: the waiting rows, over the floors the blocks read so
        far allow (their look-ahead cut short)."""
        self._close_block(None)
        return self._release(final=True)

    def _release(self, final: bool) -> Cells | None:
        out_first, parts, levels = self._pending_first, [], []
        while self._pending.shape[0]:
            block = self._pending_first // self.block_frames
            later = [mean for index, mean in self._history if index > block]
            if len(later) < self.lookahead_blocks and not final:
                break
            earlier = [mean for index, mean in self._history if index < block]
            means = earlier[-self.history_blocks :] + later[: self.lookahead_blocks]
            take = min(
                self._pending.shape[0], (block + 1) * self.block_frames - self._pending_first
            )
            rows = self._pending[:take]
            levels.append(rows)
            if len(means) >= self.min_blocks:
                floor = _quantile(np.stack(means), self.settings.floor_quantile)
                parts.append(rows - floor)
            else:
                parts.append(np.full_like(rows, np.nan))
            self._pending = self._pending[take:]
            self._pending_first += take
        if not parts:
            return None
        return Cells(out_first, np.concatenate(parts), np.concatenate(levels))

    def _close_block(self, block: int | None) -> None:
        # A block cut short by a gap counts only if it holds half its frames.
        if self._block is not None and self._block_count * 2 >= self.block_frames:
            mean = (self._block_sum / self._block_count).astype(np.float32)
            self._history.append((self._block, mean))
        self._block = block
        self._block_sum[:] = 0.0
        self._block_count = 0


def _quantile(rows: np.ndarray, q: float) -> np.ndarray:
    """``np.quantile(rows, q, axis=0)`` (linear), for a few rows: a sort is cheaper here."""
    ranked = np.sort(rows, axis=0)
    position = q * (rows.shape[0] - 1)
    low = int(np.floor(position))
    high = min(low + 1, rows.shape[0] - 1)
    weight = np.float32(position - low)
    return ranked[low] + weight * (ranked[high] - ranked[low])


def _smooth_bins(power: np.ndarray, pad_lo: int, pad_hi: int) -> np.ndarray:
    """Mean over each bin and its neighbours (the band's edge bins over what exists)."""
    total = power.copy()
    total[:, 1:] += power[:, :-1]
    total[:, :-1] += power[:, 1:]
    count = np.full(power.shape[1], 3.0)
    count[0] = count[-1] = 2.0
    return (total / count)[:, pad_lo : power.shape[1] - pad_hi]


def _off_hum(freqs: np.ndarray, hum_hz: float, width_hz: float) -> np.ndarray:
    """Bins that may be active: not within ``width_hz`` of a multiple of the mains frequency."""
    if hum_hz <= 0 or width_hz <= 0:
        return np.ones(freqs.shape, dtype=bool)
    distance = np.abs(freqs - np.round(freqs / hum_hz) * hum_hz)
    return distance > width_hz
