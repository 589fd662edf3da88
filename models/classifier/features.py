"""Batched AST input features, numerically equal to transformers' `ASTFeatureExtractor`.

`ASTFeatureExtractor` runs torchaudio's Kaldi fbank one waveform at a time on the CPU. This
module does the same arithmetic (Kaldi framing with snip_edges, DC removal, pre-emphasis 0.97,
symmetric Hann window, 512-point power spectrum, Kaldi mel banks, log with float32 epsilon,
pad/truncate to `max_length` frames, (x − mean) / (2·std)) on a whole (B, n) batch at once and
on the model's device. Audio at another rate is first resampled with torchaudio.

``frequency_normalization = "median"`` (an extra key of the saved preprocessor config; absent:
``"none"``, the extractor above) instead subtracts each mel bin's median over the window's
frames, as bioacoustic detectors do: the background's level and colour become 0 and a call
stands out by how far it rises above them, whatever the recording level.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio
from torchaudio.compliance import kaldi

from models.device import autocast_off

# Kaldi's fixed framing, which ASTFeatureExtractor does not expose.
FRAME_LENGTH_MS = 25.0
FRAME_SHIFT_MS = 10.0
PREEMPHASIS = 0.97
LOW_FREQ_HZ = 20.0
_EPSILON = torch.finfo(torch.float32).eps
NORMALIZATIONS = ("none", "median")


@dataclass(frozen=True)
class FeatureParams:
    """The parameters of an `ASTFeatureExtractor` that decide its output."""

    sampling_rate: int = 16000
    num_mel_bins: int = 128
    max_length: int = 1024
    do_normalize: bool = True
    mean: float = -4.2677393
    std: float = 4.5689974
    frequency_normalization: str = "none"  # none | median (per-bin median over the window)

    def __post_init__(self) -> None:
        if self.frequency_normalization not in NORMALIZATIONS:
            raise ValueError(
                f"frequency_normalization must be one of {', '.join(NORMALIZATIONS)}, "
                f"not {self.frequency_normalization!r}"
            )

    @classmethod
    def from_extractor(cls, extractor: object) -> FeatureParams:
        """Read the parameters off an `ASTFeatureExtractor` (or anything with the same fields)."""
        return cls(
            sampling_rate=int(extractor.sampling_rate),  # type: ignore[attr-defined]
            num_mel_bins=int(extractor.num_mel_bins),  # type: ignore[attr-defined]
            max_length=int(extractor.max_length),  # type: ignore[attr-defined]
            do_normalize=bool(extractor.do_normalize),  # type: ignore[attr-defined]
            mean=float(extractor.mean),  # type: ignore[attr-defined]
            std=float(extractor.std),  # type: ignore[attr-defined]
            frequency_normalization=str(getattr(extractor, "frequency_normalization", "none")),
        )

    @property
    def window_size(self) -> int:
        return int(self.sampling_rate * FRAME_LENGTH_MS / 1000)

    @property
    def window_shift(self) -> int:
        return int(self.sampling_rate * FRAME_SHIFT_MS / 1000)

    @property
    def fft_size(self) -> int:
        return 1 << (self.window_size - 1).bit_length()

    @property
    def window_seconds(self) -> float:
        """Audio the model sees: `max_length` frames of 10 ms (the AST convention)."""
        return self.max_length * FRAME_SHIFT_MS / 1000

    @property
    def window_samples(self) -> int:
        return round(self.window_seconds * self.sampling_rate)


class FeatureExtractor(torch.nn.Module):
    """(B, n) waveforms → (B, max_length, num_mel_bins) normalised log-mel features."""

    def __init__(self, params: FeatureParams) -> None:
        super().__init__()
        self.params = params
        banks, _ = kaldi.get_mel_banks(
            params.num_mel_bins,
            params.fft_size,
            float(params.sampling_rate),
            LOW_FREQ_HZ,
            0.0,
            100.0,
            -500.0,
            1.0,
        )
        # Kaldi leaves the Nyquist bin out of every mel filter.
        banks = torch.nn.functional.pad(banks, (0, 1))
        self.register_buffer("mel_banks_t", banks.T.contiguous().float(), persistent=False)
        self.register_buffer(
            "window",
            torch.hann_window(params.window_size, periodic=False, dtype=torch.float32),
            persistent=False,
        )
        self._resamplers = torch.nn.ModuleDict()

    def resample(self, waveforms: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Resample (B, n) audio to the model's rate (no-op at that rate)."""
        target = self.params.sampling_rate
        if sample_rate == target:
            return waveforms
        key = str(sample_rate)
        if key not in self._resamplers:
            self._resamplers[key] = torchaudio.transforms.Resample(
                sample_rate, target, dtype=torch.float32
            ).to(device=waveforms.device)
        return self._resamplers[key](waveforms)

    def forward(self, waveforms: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        # fp32 even inside a caller's bf16 autocast region: equality with ASTFeatureExtractor.
        with autocast_off(self.window.device):
            return self._features(waveforms, sample_rate)

    def _features(self, waveforms: torch.Tensor, sample_rate: int | None) -> torch.Tensor:
        if waveforms.dim() != 2:
            shape = tuple(waveforms.shape)
            raise ValueError(f"expected (batch, samples) waveforms, got shape {shape}")
        p = self.params
        x = waveforms.to(device=self.window.device, dtype=torch.float32)
        if sample_rate is not None:
            x = self.resample(x, sample_rate)
        if x.shape[1] < p.window_size:
            raise ValueError(
                f"need at least {p.window_size} samples at {p.sampling_rate} Hz for one frame, "
                f"got {x.shape[1]}"
            )
        frames = x.unfold(1, p.window_size, p.window_shift)  # (B, m, window_size)
        frames = frames - frames.mean(dim=2, keepdim=True)
        previous = torch.cat((frames[:, :, :1], frames[:, :, :-1]), dim=2)
        frames = (frames - PREEMPHASIS * previous) * self.window
        frames = torch.nn.functional.pad(frames, (0, p.fft_size - p.window_size))
        power = torch.fft.rfft(frames).abs().pow(2.0)
        fbank = torch.matmul(power, self.mel_banks_t).clamp_min(_EPSILON).log()
        if p.frequency_normalization == "median":
            # Over the real frames only; padded frames then read as background (0).
            fbank = fbank - fbank.median(dim=1, keepdim=True).values
        n_frames = fbank.shape[1]
        if n_frames < p.max_length:
            fbank = torch.nn.functional.pad(fbank, (0, 0, 0, p.max_length - n_frames))
        else:
            fbank = fbank[:, : p.max_length]
        if p.do_normalize and p.frequency_normalization == "none":
            fbank = (fbank - p.mean) / (p.std * 2)
        return fbank
