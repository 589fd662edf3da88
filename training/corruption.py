"""ORCA-CLEAN's training pairs: the target is the (noisy) call spectrogram, the input a further
corrupted copy, one corruption drawn per sample. Spectrograms are the denoiser's normalised
(1, time, freq) tensors in [0, 1]; normalisation is linear in dB (1.0 = 100 dB), so adding to
them is adding noise in the dB domain."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SYNTHETIC = ("gaussian", "chi2", "poisson", "exponential")
CORRUPTIONS = (*SYNTHETIC, "real_noise", "binary_mask")


def uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def db_noise(kind: str, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    """Non-negative-mean noise of 5…20 dB typical level, in normalised units."""
    level = uniform(0.05, 0.2, generator)
    if kind == "gaussian":
        return torch.randn(shape, generator=generator) * level
    if kind == "chi2":
        degrees = 2
        normal = torch.randn((degrees, *shape), generator=generator)
        return normal.pow(2).sum(0) / degrees * level
    if kind == "poisson":
        return torch.poisson(torch.full(shape, 2.0), generator=generator) / 2.0 * level
    if kind == "exponential":
        return torch.empty(shape).exponential_(1.0, generator=generator) * level
    raise ValueError(f"unknown corruption {kind!r}; known: {', '.join(CORRUPTIONS)}")


def mix_at_snr(signal: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """signal + noise scaled so that 10·log10(P_signal / P_noise) = snr_db; noise is tiled or
    cut to the signal's length."""
    if noise.numel() < signal.numel():
        noise = noise.repeat(math.ceil(signal.numel() / noise.numel()))
    noise = noise[: signal.numel()]
    signal_power = signal.pow(2).mean().clamp_min(1e-12)
    noise_power = noise.pow(2).mean().clamp_min(1e-12)
    scale = torch.sqrt(signal_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return signal + scale * noise


def binary_mask(spectrogram: torch.Tensor) -> torch.Tensor:
    """A machine-made attention target: 1 where a bin stands a standard deviation above the
    spectrogram's mean, else 0."""
    threshold = spectrogram.mean() + spectrogram.std()
    return (spectrogram > threshold).to(spectrogram.dtype)


def warp(spectrogram: torch.Tensor, stretch: float, pitch: float) -> torch.Tensor:
    """Time stretch (×stretch frames) and pitch shift (content at f moves to f·pitch, bins past
    the top dropped, bins past the bottom silent) of a (1, time, freq) spectrogram."""
    _, frames, bins = spectrogram.shape
    new_frames = max(1, round(frames * stretch))
    new_bins = max(1, round(bins * pitch))
    out = F.interpolate(
        spectrogram[None], size=(new_frames, new_bins), mode="bilinear", align_corners=False
    )[0]
    return F.pad(out, (0, max(0, bins - new_bins)))[..., :bins]


def crop(spectrogram: torch.Tensor, frames: int, start: int) -> torch.Tensor:
    out = spectrogram[:, start : start + frames]
    return F.pad(out, (0, 0, 0, frames - out.shape[1]))
