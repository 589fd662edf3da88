"""ORCA-CLEAN's spectral front end and its inverse, batched, on any device and float dtype.

Forward: pre-emphasis → complex STFT (Hann, centred, reflect padding) → power normalised by
the window energy → "linear" frequency compression (keep bins floor(n_fft·fmin/sr) ..
ceil(n_fft·fmax/sr), exclusive end, nearest-resize to n_freq_bins) → dB (floor
10^(min_level_db/10), i.e. 1e-10 at −100 dB) → clamp((dB − ref − min) / −min, 0, 1).

Inverse: a (B, 1, time, n_freq_bins) mask is nearest-resized back onto the kept bins, zero
outside them (the Nyquist bin is never kept, as upstream), multiplied onto the noisy complex
STFT, and inverted with ISTFT (noisy phase).

Spectrogram tensors are (B, time, freq); the network view adds a channel: (B, 1, time, freq).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
import torchaudio.functional as AF

# The keys of an upstream checkpoint's "dataOpts", in upstream's order.
DATA_OPTS_KEYS = (
    "sr",
    "preemphases",
    "n_fft",
    "hop_length",
    "n_freq_bins",
    "fmin",
    "fmax",
    "freq_compression",
    "min_level_db",
    "ref_level_db",
)
FREQ_COMPRESSIONS = ("linear",)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DenoiserOptions:
    """The front-end settings; field for field the upstream checkpoint's `dataOpts`.

    Defaults are upstream's (orca calls, 500–10,000 Hz); the humpback hackathon used fmin 0.
    """

    sr: int = 44100
    preemphases: float = 0.98
    n_fft: int = 4096
    hop_length: int = 441
    n_freq_bins: int = 256
    fmin: float = 500
    fmax: float = 10000
    freq_compression: str = "linear"
    min_level_db: float = -100
    ref_level_db: float = 20

    def __post_init__(self) -> None:
        problems = []
        for name in ("sr", "n_fft", "hop_length", "n_freq_bins"):
            value = getattr(self, name)
            if not _is_int(value) or value <= 0:
                problems.append(f"{name} must be a positive int, got {value!r}")
        for name in ("preemphases", "fmin", "fmax", "min_level_db", "ref_level_db"):
            value = getattr(self, name)
            if not _is_real(value):
                problems.append(f"{name} must be a finite number, got {value!r}")
        if problems:
            raise ValueError("; ".join(problems))
        if self.n_fft % 2:
            problems.append(f"n_fft must be even, got {self.n_fft}")
        if self.hop_length >= self.n_fft:
            problems.append(f"hop_length ({self.hop_length}) must be < n_fft ({self.n_fft})")
        if self.n_freq_bins < 16:
            problems.append(
                f"n_freq_bins must be >= 16 (the U-Net pools 4 times), got {self.n_freq_bins}"
            )
        if not 0 <= self.preemphases < 1:
            problems.append(f"preemphases must be in [0, 1), got {self.preemphases}")
        if not 0 <= self.fmin < self.fmax <= self.sr / 2:
            problems.append(
                f"need 0 <= fmin < fmax <= sr/2, "
                f"got fmin={self.fmin}, fmax={self.fmax}, sr={self.sr}"
            )
        if self.freq_compression not in FREQ_COMPRESSIONS:
            problems.append(
                f"freq_compression {self.freq_compression!r} is not supported "
                f"(supported: {', '.join(FREQ_COMPRESSIONS)})"
            )
        if self.min_level_db >= 0:
            problems.append(f"min_level_db must be negative, got {self.min_level_db}")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_data_opts(cls, data_opts: Mapping[str, Any]) -> DenoiserOptions:
        """Options from an upstream `dataOpts` dict; exactly the upstream keys are accepted."""
        if not isinstance(data_opts, Mapping):
            raise ValueError(f"dataOpts must be a dict, got {type(data_opts).__name__}")
        unknown = sorted(str(k) for k in data_opts if k not in DATA_OPTS_KEYS)
        missing = [k for k in DATA_OPTS_KEYS if k not in data_opts]
        if unknown or missing:
            raise ValueError(f"dataOpts: unknown keys {unknown}, missing keys {missing}")
        return cls(**{k: data_opts[k] for k in DATA_OPTS_KEYS})

    def to_data_opts(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def n_bins(self) -> int:
        """STFT bins, n_fft/2 + 1."""
        return self.n_fft // 2 + 1

    @property
    def bin_range(self) -> tuple[int, int]:
        """The STFT bins [low, high) that the linear compression keeps."""
        low = max(0, math.floor(self.n_fft * self.fmin / self.sr))
        high = min(self.n_fft - 1, math.ceil(self.n_fft * self.fmax / self.sr))
        return low, high


def _check_waveforms(waveforms: torch.Tensor, options: DenoiserOptions) -> None:
    if waveforms.dim() != 2:
        raise ValueError(f"expected waveforms (B, n), got shape {tuple(waveforms.shape)}")
    if not waveforms.is_floating_point():
        raise ValueError(f"expected real floating-point waveforms, got {waveforms.dtype}")
    if waveforms.shape[1] <= options.n_fft // 2:
        raise ValueError(
            f"need more than n_fft/2 = {options.n_fft // 2} samples per waveform "
            f"(reflect padding), got {waveforms.shape[1]}"
        )


def window(options: DenoiserOptions, like: torch.Tensor) -> torch.Tensor:
    """Periodic Hann window of n_fft on `like`'s device, in its real dtype."""
    dtype = like.real.dtype if like.is_complex() else like.dtype
    return torch.hann_window(options.n_fft, device=like.device, dtype=dtype)


def preemphasis(waveforms: torch.Tensor, coefficient: float) -> torch.Tensor:
    """y[0] = x[0], y[n] = x[n] − c·x[n−1], along the last dimension."""
    return torch.cat(
        [waveforms[..., :1], waveforms[..., 1:] - coefficient * waveforms[..., :-1]], -1
    )


def deemphasis(waveforms: torch.Tensor, coefficient: float) -> torch.Tensor:
    """The exact inverse of `preemphasis`: x[n] = y[n] + c·x[n−1], x[0] = y[0]."""
    if coefficient == 0:
        return waveforms
    a = torch.tensor([1.0, -coefficient], dtype=waveforms.dtype, device=waveforms.device)
    b = torch.tensor([1.0, 0.0], dtype=waveforms.dtype, device=waveforms.device)
    return AF.lfilter(waveforms, a, b, clamp=False)


def complex_stft(waveforms: torch.Tensor, options: DenoiserOptions) -> torch.Tensor:
    """Complex STFT (B, time, n_fft/2+1) of (B, n) waveforms; time = 1 + n // hop."""
    _check_waveforms(waveforms, options)
    spec = torch.stft(
        waveforms,
        n_fft=options.n_fft,
        hop_length=options.hop_length,
        window=window(options, waveforms),
        center=True,
        pad_mode="reflect",
        onesided=True,
        return_complex=True,
    )
    return spec.transpose(1, 2)


def power(stft: torch.Tensor, options: DenoiserOptions) -> torch.Tensor:
    """|X / sqrt(Σ w²)|²."""
    energy = window(options, stft).pow(2).sum()
    return stft.abs().pow(2) / energy


def compress(spec: torch.Tensor, options: DenoiserOptions) -> torch.Tensor:
    """(B, time, n_bins) → (B, time, n_freq_bins): keep fmin..fmax bins, nearest resize."""
    low, high = options.bin_range
    kept = spec[..., low:high]
    return F.interpolate(kept, size=options.n_freq_bins, mode="nearest")


def decompress(mask: torch.Tensor, options: DenoiserOptions) -> torch.Tensor:
    """(B, time, n_freq_bins) → (B, time, n_bins): nearest resize onto the kept bins, 0 outside."""
    low, high = options.bin_range
    inner = F.interpolate(mask, size=high - low, mode="nearest")
    return F.pad(inner, [low, options.n_bins - high])


def normalise(power_spec: torch.Tensor, options: DenoiserOptions) -> torch.Tensor:
    """Power → dB (floored at min_level_db) → [0, 1]."""
    floor = 10.0 ** (options.min_level_db / 10.0)
    db = 10.0 * torch.log10(power_spec.clamp_min(floor))
    low = options.min_level_db
    return ((db - options.ref_level_db - low) / -low).clamp(0.0, 1.0)


def spectrogram(
    waveforms: torch.Tensor, options: DenoiserOptions
) -> tuple[torch.Tensor, torch.Tensor]:
    """Network input and the complex STFT it came from, for (B, n) waveforms at options.sr.

    Returns (normalised (B, 1, time, n_freq_bins) in [0, 1], complex STFT (B, time, n_bins) of
    the pre-emphasised waveforms).
    """
    _check_waveforms(waveforms, options)
    stft = complex_stft(preemphasis(waveforms, options.preemphases), options)
    normalised = normalise(compress(power(stft, options), options), options)
    return normalised.unsqueeze(1), stft


def inverse_stft(stft: torch.Tensor, options: DenoiserOptions, length: int) -> torch.Tensor:
    """(B, time, n_bins) complex → (B, length) waveforms."""
    return torch.istft(
        stft.transpose(1, 2),
        n_fft=options.n_fft,
        hop_length=options.hop_length,
        window=window(options, stft),
        center=True,
        onesided=True,
        length=length,
    )


def apply_mask(
    stft: torch.Tensor, mask: torch.Tensor, options: DenoiserOptions, length: int
) -> torch.Tensor:
    """Network mask (B, 1, time, n_freq_bins) as a gain on the complex STFT, then ISTFT."""
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"expected mask (B, 1, time, freq), got {tuple(mask.shape)}")
    if mask.shape[0] != stft.shape[0] or mask.shape[2] != stft.shape[1]:
        raise ValueError(
            f"mask {tuple(mask.shape)} does not match STFT {tuple(stft.shape)} in batch/time"
        )
    gain = decompress(mask.squeeze(1).to(stft.real.dtype), options)
    return inverse_stft(stft * gain, options, length)
