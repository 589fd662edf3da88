"""Seamless chunked denoising of long audio.

Upstream cuts audio into non-overlapping 2 s pieces, runs STFT → mask → ISTFT on each and
concatenates the pieces, which leaves seams at every cut. Here the STFT and the ISTFT run once
over the whole signal; only the network, whose cost grows with the input, sees chunks. The
normalised spectrogram is cut into `chunk_frames`-frame chunks overlapping by `overlap_frames`;
every chunk of every waveform goes through the network in one batch (bounded by
`max_batch_chunks`); the chunk masks are blended with raised-cosine crossfades over the
overlaps (weights normalised to sum to 1 on every frame) into one mask for the whole signal.
The mask is therefore continuous across chunk edges, and the gain on the STFT and the single
ISTFT introduce no discontinuity of their own. `tests/models/test_denoiser_streaming.py`
measures how close chunked output comes to a single pass over the whole spectrogram.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from models.denoiser.frontend import DenoiserOptions, apply_mask, deemphasis, spectrogram
from models.denoiser.unet import LEVELS
from models.device import autocast_off

MIN_FRAMES = 2**LEVELS  # the U-Net pools 4 times


@dataclass(frozen=True)
class StreamingSettings:
    """How `Denoiser.denoise` processes long inputs.

    chunk_frames: network input length in STFT frames (128 = 1.28 s, upstream's training size).
    overlap_frames: frames over which neighbouring chunks crossfade; 0 = hard cuts.
    margin_frames: frames at each inner chunk edge whose output is discarded (weight 0); more
        context per output frame, at more network calls per second of audio.
    The hop, chunk_frames − overlap_frames − 2·margin_frames, must be a multiple of 16 (the
    pooling grid). Network cost per second of audio = chunk_frames / hop (defaults: 128/96).
    max_batch_chunks: chunks per network call; bounds memory for long or many inputs.
    undo_preemphasis: apply the inverse filter to the output (upstream never does; with it, a
        mask of ones gives back the input).
    """

    chunk_frames: int = 128
    overlap_frames: int = 32
    margin_frames: int = 0
    max_batch_chunks: int = 16
    undo_preemphasis: bool = True

    @property
    def hop_frames(self) -> int:
        return self.chunk_frames - self.overlap_frames - 2 * self.margin_frames

    def __post_init__(self) -> None:
        if self.chunk_frames < MIN_FRAMES:
            raise ValueError(f"chunk_frames must be >= {MIN_FRAMES}, got {self.chunk_frames}")
        if self.overlap_frames < 0 or self.margin_frames < 0:
            raise ValueError("overlap_frames and margin_frames must be >= 0")
        if self.hop_frames <= 0 or self.hop_frames % MIN_FRAMES:
            raise ValueError(
                f"the hop, chunk_frames − overlap_frames − 2·margin_frames "
                f"({self.chunk_frames} − {self.overlap_frames} − 2·{self.margin_frames}), "
                f"must be a positive multiple of {MIN_FRAMES}"
            )
        if self.chunk_frames % MIN_FRAMES:
            raise ValueError(f"chunk_frames must be a multiple of {MIN_FRAMES}")
        if self.max_batch_chunks < 1:
            raise ValueError(f"max_batch_chunks must be >= 1, got {self.max_batch_chunks}")


def chunk_spans(n_frames: int, settings: StreamingSettings) -> list[tuple[int, int]]:
    """[start, stop) frames of each chunk.

    Starts are multiples of the hop, itself a multiple of 16, so every chunk sees the U-Net's
    max-pooling grid where a single pass over the whole spectrogram would see it. Chunks are
    chunk_frames long, except the last, which runs to the end (chunk_frames to chunk_frames+15
    frames), and a lone chunk for a short input (its whole length).
    """
    length = settings.chunk_frames
    if n_frames <= length:
        return [(0, n_frames)]
    starts = list(range(0, n_frames - length + 1, settings.hop_frames))
    last = (n_frames - length) // MIN_FRAMES * MIN_FRAMES
    if starts[-1] + length < n_frames:
        if starts[-1] == last:
            starts.pop()
        starts.append(last)
    return [(s, s + length) for s in starts[:-1]] + [(starts[-1], n_frames)]


def _fade_in(n: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # sin² rises from near 0 to near 1; its mirror (cos²) sums with it to exactly 1.
    i = torch.arange(n, device=device, dtype=dtype)
    return torch.sin(0.5 * math.pi * (i + 0.5) / n).pow(2)


def chunk_weights(
    start: int,
    length: int,
    n_frames: int,
    settings: StreamingSettings,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """Blend weights (length,) of one chunk. On a side that touches another chunk (not the
    signal's edge): 0 over the margin, then a fade over the overlap."""
    weights = torch.ones(length, device=device, dtype=dtype)
    margin, ramp = settings.margin_frames, settings.overlap_frames
    fade = _fade_in(ramp, device, dtype) if ramp else weights[:0]
    if start > 0:
        weights[:margin] = 0
        weights[margin : margin + ramp] = fade
    if start + length < n_frames:
        weights[length - margin - ramp : length - margin] = fade.flip(0)
        weights[length - margin :] = 0
    return weights


def run_network(network: nn.Module, chunks: torch.Tensor, max_batch: int) -> torch.Tensor:
    """Network over (N, 1, time, freq) in slices of max_batch, on the network's device/dtype."""
    reference = next(network.parameters())
    outputs = [
        network(part.to(device=reference.device, dtype=reference.dtype))
        for part in chunks.split(max_batch)
    ]
    return torch.cat(outputs).to(device=chunks.device, dtype=chunks.dtype)


def chunked_mask(
    network: nn.Module, spec: torch.Tensor, settings: StreamingSettings
) -> torch.Tensor:
    """Mask (B, 1, T, F) for a normalised spectrogram (B, 1, T, F) of any length T."""
    batch, _, n_frames, _ = spec.shape
    if n_frames < MIN_FRAMES:
        # Too short for the U-Net: pad with silence (0 = the dB floor), crop afterwards.
        padded = F.pad(spec, [0, 0, 0, MIN_FRAMES - n_frames])
        return run_network(network, padded, settings.max_batch_chunks)[:, :, :n_frames]
    spans = chunk_spans(n_frames, settings)
    # Full-length chunks go through the network together; the longer last one on its own.
    full = [span for span in spans if span[1] - span[0] == settings.chunk_frames]
    groups = [full, [span for span in spans if span not in full]]
    total = torch.zeros_like(spec)
    weight_sum = torch.zeros(n_frames, device=spec.device, dtype=spec.dtype)
    for group in groups:
        if not group:
            continue
        chunks = torch.cat([spec[:, :, a:b] for a, b in group])  # (K·B, 1, L, F), chunk-major
        masks = run_network(network, chunks, settings.max_batch_chunks).split(batch)
        for (a, b), chunk_mask in zip(group, masks, strict=True):
            w = chunk_weights(a, b - a, n_frames, settings, spec.device, spec.dtype)
            total[:, :, a:b] += chunk_mask * w[:, None]
            weight_sum[a:b] += w
    return total / weight_sum[:, None]


def signal_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the DSP runs in: float64 stays, everything else (float32, bf16, half) is
    float32, since the FFT and lfilter kernels take only float32/float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def denoise_waveforms(
    network: nn.Module,
    waveforms: torch.Tensor,
    options: DenoiserOptions,
    settings: StreamingSettings,
) -> torch.Tensor:
    """(B, n) waveforms at options.sr → (B, n) denoised, same device and dtype.

    Safe inside `torch.autocast`: only the network runs under it (e.g. in bf16); the STFT,
    the mask blending, the ISTFT and the de-emphasis filter run with autocast off, in float32
    (float64 for float64 input). Low-precision waveforms are processed in float32 and the
    result is cast back to their dtype.
    """
    x = waveforms.to(signal_dtype(waveforms.dtype))
    with autocast_off(x.device):
        spec, stft = spectrogram(x, options)
    mask = chunked_mask(network, spec, settings)
    with autocast_off(x.device):
        out = apply_mask(stft, mask.to(spec.dtype), options, x.shape[1])
        if settings.undo_preemphasis:
            out = deemphasis(out, options.preemphases)
    return out.to(waveforms.dtype)
