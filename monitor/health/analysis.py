"""Is a segment's audio usable? Silent, Unintelligible (60 Hz hum and little else) or Up.

The rules follow Orcasound's orcanode-monitor (facts, re-implemented): one Hann-windowed FFT of
the whole segment per channel, zero-padded to a power of two, magnitudes scaled ``2|X|/N`` (so a
full-scale sine reads 0 dB), looked at from DC up to ``max_frequency_hz``.

- Silent: the spectrum's peak is below ``silent_below_db``. Between that and ``sound_above_db``
  the previous verdict stands (hysteresis); a fresh feed in that band counts as sound.
- Unintelligible: everything away from the hum lines is below ``silent_below_db``, or the summed
  magnitude off the hum lines is less than ``min_signal_ratio`` × the summed magnitude on them
  (hum lines: multiples of 60 Hz ± ``hum_tolerance_hz``, DC excluded). Once Unintelligible, the
  ratio must reach ``recover_signal_ratio`` to count as Up again.
- A segment is Up if any channel is Up (better channels win: Up > Unintelligible > Silent).

The thresholds were checked against the real segments in ``tests/data/orcasound-hls`` (see
``docs/health.md`` for the measured numbers). CPU work (~20 ms a channel): call it off the loop.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class AudioVerdict(enum.StrEnum):
    UP = "up"
    UNINTELLIGIBLE = "unintelligible"
    SILENT = "silent"


_RANK = {AudioVerdict.SILENT: 0, AudioVerdict.UNINTELLIGIBLE: 1, AudioVerdict.UP: 2}


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    silent_below_db: float = -95.0
    sound_above_db: float = -80.0
    min_signal_ratio: float = field(default=14.0, metadata={"gt": 0.0})
    recover_signal_ratio: float = field(default=16.0, metadata={"gt": 0.0})
    hum_hz: float = field(default=60.0, metadata={"gt": 0.0})
    hum_tolerance_hz: float = field(default=1.0, metadata={"gt": 0.0})
    max_frequency_hz: float = field(default=12_000.0, metadata={"gt": 0.0})

    def __post_init__(self) -> None:
        if self.sound_above_db < self.silent_below_db:
            raise ValueError("sound_above_db: must be ≥ silent_below_db (the hysteresis band)")
        if self.recover_signal_ratio < self.min_signal_ratio:
            raise ValueError("recover_signal_ratio: must be ≥ min_signal_ratio")
        if not 0 < self.hum_tolerance_hz < self.hum_hz / 2:
            raise ValueError("hum_tolerance_hz: must be between 0 and half of hum_hz")


@dataclass(frozen=True, slots=True)
class ChannelAnalysis:
    peak_db: float  # strongest spectral line
    non_hum_peak_db: float  # strongest line off the hum lines
    signal_ratio: float  # summed magnitude off / on the hum lines
    verdict: AudioVerdict


@dataclass(frozen=True, slots=True)
class SegmentAnalysis:
    verdict: AudioVerdict
    channels: tuple[ChannelAnalysis, ...]

    def details(self) -> dict[str, object]:
        return {
            "channels": [
                {
                    "verdict": str(c.verdict),
                    "peak_db": round(c.peak_db, 1),
                    "non_hum_peak_db": round(c.non_hum_peak_db, 1),
                    "signal_ratio": round(c.signal_ratio, 2),
                }
                for c in self.channels
            ]
        }


def hum_mask(frequencies: np.ndarray, hum_hz: float, tolerance_hz: float) -> np.ndarray:
    """True where a frequency lies within ``tolerance_hz`` of a non-zero multiple of ``hum_hz``."""
    remainder = np.mod(frequencies, hum_hz)
    near = (remainder < tolerance_hz) | (remainder > hum_hz - tolerance_hz)
    return near & (frequencies >= hum_hz - tolerance_hz)


def _db(magnitude: float) -> float:
    return float(20.0 * np.log10(magnitude)) if magnitude > 0 else float("-inf")


def spectrum(channel: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, magnitudes) of one channel: Hann window, zero-pad to 2^k, ``2|X|/N``."""
    n = channel.shape[-1]
    size = 1 << max(1, (n - 1).bit_length())
    windowed = np.zeros(size, dtype=np.float64)
    windowed[:n] = channel * np.hanning(n)
    magnitudes = np.abs(np.fft.rfft(windowed)) * (2.0 / size)
    magnitudes[0] /= 2.0  # DC is not mirrored
    frequencies = np.fft.rfftfreq(size, d=1.0 / sample_rate)
    return frequencies, magnitudes


def analyze_channel(
    channel: np.ndarray,
    sample_rate: int,
    previous: AudioVerdict | None,
    settings: AnalysisSettings,
) -> ChannelAnalysis:
    frequencies, magnitudes = spectrum(channel, sample_rate)
    band = frequencies < settings.max_frequency_hz
    frequencies, magnitudes = frequencies[band], magnitudes[band]
    hum = hum_mask(frequencies, settings.hum_hz, settings.hum_tolerance_hz)
    peak_db = _db(float(magnitudes.max()))
    non_hum_peak_db = _db(float(magnitudes[~hum].max()))
    hum_total = float(magnitudes[hum].sum())
    ratio = float(magnitudes[~hum].sum()) / hum_total if hum_total > 0 else float("inf")

    def verdict() -> AudioVerdict:
        if peak_db < settings.silent_below_db:
            return AudioVerdict.SILENT
        if peak_db <= settings.sound_above_db and previous is AudioVerdict.SILENT:
            return AudioVerdict.SILENT
        if non_hum_peak_db < settings.silent_below_db:
            return AudioVerdict.UNINTELLIGIBLE
        needed = (
            settings.recover_signal_ratio
            if previous is AudioVerdict.UNINTELLIGIBLE
            else settings.min_signal_ratio
        )
        return AudioVerdict.UNINTELLIGIBLE if ratio < needed else AudioVerdict.UP

    return ChannelAnalysis(peak_db, non_hum_peak_db, ratio, verdict())


def analyze_audio(
    samples: np.ndarray,
    sample_rate: int,
    previous: AudioVerdict | None = None,
    settings: AnalysisSettings | None = None,
) -> SegmentAnalysis:
    """Classify ``samples`` (float32, ``(channels, n)`` or ``(n,)``, full scale ±1).

    ``previous`` is the feed's last verdict, for the hysteresis. Each channel is judged alone and
    the best verdict wins, so a stereo node with one dead channel is still Up.
    """
    settings = settings or AnalysisSettings()
    audio = np.atleast_2d(np.asarray(samples))
    if audio.ndim != 2 or audio.shape[-1] < 2:
        raise ValueError(f"analyze_audio needs (channels, n) samples with n ≥ 2, got {audio.shape}")
    if sample_rate <= 0:
        raise ValueError(f"bad sample rate {sample_rate}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or infinite samples")
    channels = tuple(analyze_channel(ch, sample_rate, previous, settings) for ch in audio)
    best = max(channels, key=lambda c: _RANK[c.verdict]).verdict
    return SegmentAnalysis(best, channels)
