"""Training windows made on the fly from a few real recordings: a call (pitch-shifted,
time-stretched, band-EQ'd) mixed into one or more real backgrounds at a drawn SNR, with mains
hum and hard negatives (other animals' calls) among the noise windows.

Everything is drawn from one ``torch.Generator``, so a seeded run makes the same windows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torchaudio.functional as AF

from training.corruption import uniform
from training.synthetic_calls import humpback_like, orca_like


@dataclass(frozen=True)
class MixSettings:
    positive_fraction: float = 0.5  # windows that hold a call
    hard_negative_fraction: float = 0.25  # of the noise windows: another animal's call mixed in
    call_snr_db: tuple[float, float] = (-5.0, 20.0)  # call power over the call's span vs background
    pitch_octaves: float = 0.5  # pitch shift drawn in ±this many octaves
    stretch: tuple[float, float] = (0.75, 1.33)  # time stretch factor (duration ×)
    eq_prob: float = 0.5  # random band-limited EQ on the call
    eq_gain_db: tuple[float, float] = (-12.0, 12.0)
    extra_background_prob: float = 0.5  # a second background mixed in
    hum_prob: float = 0.2  # mains hum (60 Hz + harmonics) added to the background
    gain_db: tuple[float, float] = (-6.0, 6.0)  # the whole window's level
    synthetic_fraction: float = 0.0  # positives that are synthetic humpback-like calls
    synthetic_negative_fraction: float = 0.0  # hard negatives that are synthetic orca-like calls
    splice_prob: float = 0.0  # background cut at a random point to another (a click at the join)
    # Calls and hard negatives placed with their middle at the window's (± centre_jitter_s), as
    # the cascade's windows are centred on stage-1 boxes; the rest at a uniform offset.
    centred_fraction: float = 0.0
    centre_jitter_s: float = 0.5


def _pick(items: list[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
    return items[int(torch.randint(len(items), (), generator=generator))]


def resample_by(wave: torch.Tensor, factor: float) -> torch.Tensor:
    """Play ``wave`` ``factor`` times faster: pitch × factor, duration ÷ factor."""
    if abs(factor - 1.0) < 1e-3:
        return wave
    new = max(8, round(1000 / factor))
    return AF.resample(wave, 1000, new)


def time_stretch(wave: torch.Tensor, factor: float) -> torch.Tensor:
    """Duration × ``factor`` at the same pitch (phase vocoder on a 512-point STFT)."""
    if abs(factor - 1.0) < 1e-3 or wave.numel() < 1024:
        return wave
    window = torch.hann_window(512)
    spec = torch.stft(wave, 512, 128, window=window, return_complex=True)
    advance = torch.linspace(0, math.pi * 128, spec.shape[0])[..., None]
    stretched = AF.phase_vocoder(spec, 1.0 / factor, advance)
    return torch.istft(stretched, 512, 128, window=window, length=round(wave.numel() * factor))


def band_eq(
    wave: torch.Tensor, rate: int, generator: torch.Generator, gain_db: float
) -> torch.Tensor:
    """Boost or cut one random band (log-uniform centre 50 Hz … rate/2.5, ~1 octave wide)."""
    centre = math.exp(uniform(math.log(50.0), math.log(rate / 2.5), generator))
    return AF.equalizer_biquad(wave, rate, centre, gain_db, Q=1.4)


def crop_or_loop(wave: torch.Tensor, length: int, generator: torch.Generator) -> torch.Tensor:
    """A random ``length``-sample stretch of ``wave``, looped when ``wave`` is shorter."""
    if wave.numel() < length:
        wave = wave.repeat(math.ceil(length / wave.numel()) + 1)
    start = int(torch.randint(wave.numel() - length + 1, (), generator=generator))
    return wave[start : start + length]


def power(wave: torch.Tensor) -> torch.Tensor:
    return wave.pow(2).mean().clamp_min(1e-12)


def hum(length: int, rate: int, generator: torch.Generator) -> torch.Tensor:
    """Mains hum: 60 Hz and a few odd/even harmonics with random levels and phases."""
    t = torch.arange(length) / rate
    out = torch.zeros(length)
    for harmonic in range(1, 8):
        level = uniform(0.1, 1.0, generator) / harmonic
        phase = uniform(0, 2 * math.pi, generator)
        out += level * torch.sin(2 * math.pi * 60.0 * harmonic * t + phase)
    return out


@dataclass
class WindowMixer:
    """Makes (windows, is_call) batches from the sources. Calls and negatives are whole
    recordings of any length; backgrounds are cropped or looped to the window."""

    calls: list[torch.Tensor]
    backgrounds: list[torch.Tensor]
    hard_negatives: list[torch.Tensor]
    hum_backgrounds: list[torch.Tensor]
    rate: int
    length: int
    settings: MixSettings

    def __post_init__(self) -> None:
        if not self.backgrounds:
            raise ValueError("window mixing needs at least one background recording")
        if not self.calls and self.settings.synthetic_fraction <= 0:
            raise ValueError("window mixing needs calls (or synthetic_fraction > 0)")

    def batch(self, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        waves = torch.zeros(size, self.length)
        labels = torch.zeros(size, dtype=torch.long)
        for i in range(size):
            positive = float(torch.rand((), generator=generator)) < self.settings.positive_fraction
            waves[i] = self.window(positive, generator)
            labels[i] = int(positive)
        return waves, labels

    def background(self, generator: torch.Generator) -> torch.Tensor:
        s = self.settings
        pool = self.backgrounds
        if self.hum_backgrounds and float(torch.rand((), generator=generator)) < 0.25:
            pool = self.hum_backgrounds
        # Backgrounds keep their recorded level: the daemon scores the streams as decoded.
        out = crop_or_loop(_pick(pool, generator), self.length, generator).clone()
        level = power(out).sqrt()
        if float(torch.rand((), generator=generator)) < s.extra_background_prob:
            extra = crop_or_loop(_pick(self.backgrounds, generator), self.length, generator)
            out += extra / power(extra).sqrt() * level * 10 ** (uniform(-10, 0, generator) / 20)
        if float(torch.rand((), generator=generator)) < s.splice_prob:
            out = self.splice(out, generator)
        if float(torch.rand((), generator=generator)) < s.hum_prob:
            tone = hum(self.length, self.rate, generator)
            out += tone / power(tone).sqrt() * level * 10 ** (uniform(-20, 5, generator) / 20)
        return out

    def splice(self, window: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """From a random point on, another background stretch at ±6 dB of this one's level, joined
        without a crossfade: the step and click at the join are not a call (streams are spliced
        from segments, recorders glitch)."""
        at = 1 + int(torch.randint(self.length - 1, (), generator=generator))
        other = crop_or_loop(_pick(self.backgrounds, generator), self.length - at, generator)
        gain = power(window).sqrt() / power(other).sqrt() * 10 ** (uniform(-6, 6, generator) / 20)
        out = window.clone()
        out[at:] = other * gain
        return out

    def place(
        self, window: torch.Tensor, sound: torch.Tensor, snr_db: float, generator: torch.Generator
    ) -> torch.Tensor:
        """Add ``sound`` (cut to the window) at a random offset (or centred: ``centred_fraction``),
        scaled to ``snr_db`` over the background in the span it covers."""
        sound = sound[: self.length]
        room = self.length - sound.numel()
        if float(torch.rand((), generator=generator)) < self.settings.centred_fraction:
            jitter = uniform(-1.0, 1.0, generator) * self.settings.centre_jitter_s * self.rate
            start = min(max(round(room / 2 + jitter), 0), room)
        else:
            start = int(torch.randint(room + 1, (), generator=generator))
        span = window[start : start + sound.numel()]
        scale = torch.sqrt(power(span) * 10 ** (snr_db / 10) / power(sound))
        out = window.clone()
        out[start : start + sound.numel()] += scale * sound
        return out

    def call(self, generator: torch.Generator) -> torch.Tensor:
        s = self.settings
        if not self.calls or float(torch.rand((), generator=generator)) < s.synthetic_fraction:
            sound = humpback_like(self.rate, generator)
        else:
            sound = _pick(self.calls, generator)
        sound = resample_by(sound, 2 ** uniform(-s.pitch_octaves, s.pitch_octaves, generator))
        sound = time_stretch(sound, uniform(*s.stretch, generator))
        if float(torch.rand((), generator=generator)) < s.eq_prob:
            sound = band_eq(sound, self.rate, generator, uniform(*s.eq_gain_db, generator))
        return sound

    def hard_negative(self, generator: torch.Generator) -> torch.Tensor | None:
        """Another animal's call: a stretch of a real recording or a synthetic orca-like one."""
        synthetic = (
            float(torch.rand((), generator=generator)) < self.settings.synthetic_negative_fraction
        )
        if synthetic or not self.hard_negatives:
            return orca_like(self.rate, generator) if synthetic else None
        negative = crop_or_loop(_pick(self.hard_negatives, generator), self.length, generator)
        return negative[: round(uniform(0.5, 5.0, generator) * self.rate)]

    def window(self, positive: bool, generator: torch.Generator) -> torch.Tensor:
        s = self.settings
        out = self.background(generator)
        if positive:
            out = self.place(
                out, self.call(generator), uniform(*s.call_snr_db, generator), generator
            )
        elif float(torch.rand((), generator=generator)) < s.hard_negative_fraction:
            negative = self.hard_negative(generator)
            if negative is not None:
                out = self.place(out, negative, uniform(-5.0, 20.0, generator), generator)
        return out * 10 ** (uniform(*s.gain_db, generator) / 20)
