"""The denoiser: the U-Net plus the front end that feeds it and turns its mask into audio."""

from __future__ import annotations

import math

import torch
from torch import nn

from models.denoiser.frontend import DenoiserOptions, spectrogram
from models.denoiser.streaming import MIN_FRAMES, StreamingSettings, denoise_waveforms
from models.denoiser.unet import UNet


class Denoiser(nn.Module):
    """ORCA-CLEAN denoiser.

    `state_dict()` keys are "unet.<upstream key>", the layout of upstream epoch checkpoints.
    `checkpoint_sha256` is set when loaded from a file (provenance), else None.
    `unet` is a `UNet`, or a wrapper around one that exposes `base_width`.
    """

    def __init__(
        self,
        unet: nn.Module,
        options: DenoiserOptions | None = None,
        streaming: StreamingSettings | None = None,
    ) -> None:
        super().__init__()
        self.unet = unet
        self.options = options or DenoiserOptions()
        self.streaming = streaming or StreamingSettings()
        self.checkpoint_sha256: str | None = None

    @property
    def sample_rate(self) -> int:
        return self.options.sr

    @property
    def grid_seconds(self) -> float:
        """Spacing of the chunk grid (the network hop, 0.96 s by default). A block of a stream
        that starts on this grid sees the chunks where a pass over the whole stream sees them."""
        return self.streaming.hop_frames * self.options.hop_length / self.options.sr

    @property
    def context_grids(self) -> int:
        """Grid steps of context a block needs on each side of the part it keeps, so that every
        chunk reaching that part is an inner chunk of both the block and the whole stream (the
        last chunk runs up to 15 frames long; STFT edges reach n_fft/2 samples in)."""
        edge = math.ceil(self.options.n_fft / 2 / self.options.hop_length)
        span = self.streaming.chunk_frames + MIN_FRAMES + edge
        return math.ceil(span / self.streaming.hop_frames)

    @property
    def min_samples(self) -> int:
        """Shortest input the STFT's reflect padding accepts."""
        return self.options.n_fft // 2 + 1

    @property
    def base_width(self) -> int:
        return self.unet.base_width

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """Mask in [0, 1] for normalised spectrograms (B, 1, time, n_freq_bins)."""
        if spectrogram.dim() != 4 or spectrogram.shape[3] != self.options.n_freq_bins:
            raise ValueError(
                f"expected (B, 1, time, {self.options.n_freq_bins}), got {tuple(spectrogram.shape)}"
            )
        return self.unet(spectrogram)

    def spectrogram(self, waveforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised (B, 1, time, F), complex STFT (B, time, n_fft/2+1)) of (B, n) audio."""
        return spectrogram(waveforms, self.options)

    def denoise(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(B, n) float waveforms at `sample_rate` → (B, n) denoised, same device and dtype.

        Runs the U-Net in eval mode (BatchNorm running statistics) without gradients, and
        restores the previous mode afterwards. Under `torch.autocast` (e.g. bf16) only the
        U-Net runs at the lower precision; the signal processing stays float32.
        """
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return denoise_waveforms(self.unet, waveforms, self.options, self.streaming)
        finally:
            self.train(was_training)


def build_denoiser(
    options: DenoiserOptions | None = None,
    base_width: int = 64,
    streaming: StreamingSettings | None = None,
) -> Denoiser:
    """A freshly initialised denoiser, in eval mode."""
    return Denoiser(UNet(base_width), options, streaming).eval()
