"""Synthetic animal sounds for window mixing: humpback-like units (extra positives) and
killer-whale-like calls (extra hard negatives), each labelled by what it imitates.

Humpback units (the catalogue's types; energy ~50 Hz … 4 kHz, 0.3–4 s): moans (harmonic stacks,
fundamental 50 Hz … 1.5 kHz, slow contour and vibrato), FM sweeps up or down (chirps, ascending /
descending moans), pulsed units (creaks, buzzes: band-limited click trains at 3–150 pulses/s) and
growls (broadband low noise, amplitude-modulated). Killer-whale calls: pulsed calls (repetition
rate 300–2,000 Hz, so sidebands at that spacing, energy mostly 1–8 kHz, contours with abrupt
jumps), echolocation click trains (broadband above ~2 kHz) and whistles (2 … 7.5 kHz at 16 kHz
sampling). Everything is drawn from one
``torch.Generator``."""

from __future__ import annotations

import itertools
import math

import torch

from training.corruption import uniform


def _log_uniform(low: float, high: float, generator: torch.Generator) -> float:
    return math.exp(uniform(math.log(low), math.log(high), generator))


def _choice(count: int, generator: torch.Generator) -> int:
    return int(torch.randint(count, (), generator=generator))


def envelope(n: int, rate: int, generator: torch.Generator) -> torch.Tensor:
    """A random amplitude envelope: attack and release of 5–40 % each, a tilted sustain, and
    sometimes a slow tremolo."""
    progress = torch.linspace(0, 1, n)
    attack = uniform(0.05, 0.4, generator)
    release = uniform(0.05, 0.4, generator)
    rise = (progress / attack).clamp(max=1)
    fall = ((1 - progress) / release).clamp(max=1)
    tilt = 1 + uniform(-0.5, 0.5, generator) * (progress - 0.5)
    out = rise.sqrt() * fall.sqrt() * tilt
    if float(torch.rand((), generator=generator)) < 0.3:
        tremolo = uniform(1.0, 8.0, generator)
        out = out * (1 - 0.4 * (0.5 + 0.5 * torch.sin(2 * math.pi * tremolo * progress * n / rate)))
    return out.clamp_min(0)


def contour(
    n: int, rate: int, f0: float, generator: torch.Generator, *, shape: int | None = None
) -> torch.Tensor:
    """A frequency contour (Hz per sample) starting near ``f0``: flat, up, down or arched, with a
    slow vibrato."""
    progress = torch.linspace(0, 1, n)
    shape = _choice(4, generator) if shape is None else shape
    span = 2 ** uniform(0.2, 1.5, generator)
    if shape == 0:
        freq = torch.full((n,), f0)
    elif shape == 1:
        freq = f0 * span**progress
    elif shape == 2:
        freq = f0 * span ** (-progress)
    else:
        freq = f0 * span ** torch.sin(math.pi * progress) ** 2
    depth = uniform(0.0, 0.04, generator)
    vibrato = uniform(1.0, 6.0, generator)
    seconds = torch.arange(n) / rate
    return freq * (1 + depth * torch.sin(2 * math.pi * vibrato * seconds))


def harmonic_stack(
    freq: torch.Tensor, rate: int, harmonics: int, generator: torch.Generator, *, tilt: float
) -> torch.Tensor:
    """Σ_k a_k sin(k·φ(t)) over the harmonics below Nyquist, a_k ~ k^-tilt × random."""
    # float64 phase: k·φ reaches ~10⁶ rad for high harmonics of long calls.
    cycles = torch.cumsum(freq.double(), 0) / rate + uniform(0, 1, generator)
    out = torch.zeros(freq.numel(), dtype=torch.float64)
    for k in range(1, harmonics + 1):
        below = (freq * k < rate / 2 * 0.95).double()
        partial = torch.sin(2 * math.pi * torch.frac(k * cycles))
        out += below * partial * uniform(0.3, 1.0, generator) / k**tilt
    return out.float()


def click_train(
    n: int, rate: int, pulses_hz: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Unit impulses at a (varying) repetition rate, each a few samples of decaying noise."""
    phase = torch.cumsum(pulses_hz, 0) / rate
    onsets = torch.nonzero(torch.diff(torch.floor(phase), prepend=torch.zeros(1)) > 0).flatten()
    out = torch.zeros(n)
    click = torch.randn(24, generator=generator) * torch.exp(-torch.arange(24) / 4.0)
    for at in onsets.tolist():
        end = min(n, at + click.numel())
        out[at:end] += click[: end - at]
    return out


def band_pass(wave: torch.Tensor, rate: int, low: float, high: float) -> torch.Tensor:
    """Keep ``low`` … ``high`` Hz (FFT mask with raised-cosine edges a quarter octave wide): a
    synthetic sound must not leak energy outside the band of the animal it imitates."""
    spectrum = torch.fft.rfft(wave.double())
    freqs = torch.fft.rfftfreq(wave.numel(), 1 / rate, dtype=torch.float64)
    octaves = torch.log2(freqs.clamp_min(1.0))
    edge = 0.25
    rise = ((octaves - math.log2(low)) / edge + 0.5).clamp(0, 1)
    fall = ((math.log2(high) - octaves) / edge + 0.5).clamp(0, 1)
    mask = torch.sin(0.5 * math.pi * rise) ** 2 * torch.sin(0.5 * math.pi * fall) ** 2
    return torch.fft.irfft(spectrum * mask, wave.numel()).float()


def humpback_like(rate: int, generator: torch.Generator) -> torch.Tensor:
    """One synthetic humpback unit (moan, sweep, pulsed unit or growl)."""
    kind = _choice(4, generator)
    duration = uniform(0.3, 4.0, generator) if kind != 1 else uniform(0.3, 2.0, generator)
    n = round(duration * rate)
    if kind == 0:  # moan: harmonic stack, slow contour, vibrato
        freq = contour(n, rate, _log_uniform(50.0, 1500.0, generator), generator)
        sound = harmonic_stack(freq, rate, 1 + _choice(6, generator), generator, tilt=1.0)
    elif kind == 1:  # FM sweep up or down (chirp, ascending / descending moan)
        f0 = _log_uniform(150.0, 3000.0, generator)
        freq = contour(n, rate, f0, generator, shape=1 + _choice(2, generator))
        sound = harmonic_stack(freq, rate, 1 + _choice(4, generator), generator, tilt=1.5)
    elif kind == 2:  # pulsed unit: creak / buzz, band-limited click train
        pulses = contour(n, rate, _log_uniform(3.0, 150.0, generator), generator)
        low = _log_uniform(80.0, 1000.0, generator)
        high = min(low * uniform(2, 8, generator), 4000.0)
        sound = band_pass(click_train(n, rate, pulses, generator), rate, low, high)
    else:  # growl: broadband low noise, amplitude-modulated, sometimes with a low tone
        low = _log_uniform(40.0, 200.0, generator)
        noise = band_pass(
            torch.randn(n, generator=generator), rate, low, uniform(400, 1500, generator)
        )
        am = uniform(8.0, 50.0, generator)
        sound = noise * (0.6 + 0.4 * torch.sin(2 * math.pi * am * torch.arange(n) / rate))
        if float(torch.rand((), generator=generator)) < 0.5:
            freq = contour(n, rate, _log_uniform(60.0, 300.0, generator), generator)
            tone = harmonic_stack(freq, rate, 3, generator, tilt=1.0)
            sound = sound / sound.abs().max().clamp_min(1e-6) + 0.5 * tone
    return sound * envelope(n, rate, generator)


def jumpy_contour(
    n: int, rate: int, low: float, high: float, generator: torch.Generator
) -> torch.Tensor:
    """A killer-whale call's repetition-rate contour: smooth segments with 0–2 abrupt jumps."""
    points = sorted(
        float(torch.rand((), generator=generator)) for _ in range(_choice(3, generator))
    )
    bounds = [0, *(round(p * n) for p in points), n]
    parts = []
    for a, b in itertools.pairwise(bounds):
        if b > a:
            f0 = _log_uniform(low, high, generator)
            parts.append(contour(b - a, rate, f0, generator, shape=_choice(4, generator)))
    return torch.cat(parts).clamp(low * 0.7, high * 1.4)


def orca_like(rate: int, generator: torch.Generator) -> torch.Tensor:
    """One synthetic killer-whale sound: clicks (1/5), a pulsed call (3/5) or a whistle."""
    draw = float(torch.rand((), generator=generator))
    if draw < 0.2:  # echolocation: a train of broadband clicks above 2 kHz
        n = round(uniform(0.3, 2.0, generator) * rate)
        pulses = contour(n, rate, _log_uniform(5.0, 120.0, generator), generator)
        clicks = click_train(n, rate, pulses, generator)
        return band_pass(clicks, rate, uniform(1500, 3000, generator), rate / 2) * envelope(
            n, rate, generator
        )
    if draw < 0.8:
        n = round(uniform(0.5, 2.0, generator) * rate)
        prr = jumpy_contour(n, rate, 300.0, 2000.0, generator)
        harmonics = int(rate / 2 / 300)
        sound = harmonic_stack(prr, rate, harmonics, generator, tilt=0.3)
        centre = _log_uniform(1500.0, 6000.0, generator)
        sound = band_pass(sound, rate, centre / 2.5, min(centre * 2.5, rate / 2 * 0.95))
    else:
        n = round(uniform(0.5, 3.0, generator) * rate)
        freq = contour(n, rate, _log_uniform(2000.0, 7000.0, generator), generator)
        sound = harmonic_stack(freq.clamp(max=rate / 2 * 0.9), rate, 2, generator, tilt=1.5)
    return sound * envelope(n, rate, generator)
