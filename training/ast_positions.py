"""Keep a pretrained AST's position embeddings when the input length changes.

transformers re-initialises them when ``max_length`` differs from the checkpoint's; here the
(frequency × time) patch grid — 12 × 101 for the AudioSet models — is cropped or interpolated
along time instead. The two leading tokens (CLS and distillation) are kept as they are."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import ASTConfig, ASTForAudioClassification


def patch_grid(config: ASTConfig, max_length: int | None = None) -> tuple[int, int]:
    length = config.max_length if max_length is None else max_length
    frequency = (config.num_mel_bins - config.patch_size) // config.frequency_stride + 1
    time = (length - config.patch_size) // config.time_stride + 1
    return frequency, time


def resize_position_grid(
    embeddings: torch.Tensor, grid: tuple[int, int], time: int, mode: str
) -> torch.Tensor:
    """(1, 2 + f·t, hidden) → (1, 2 + f·time, hidden), cropping or interpolating the time axis."""
    frequency, old_time = grid
    leading, patches = embeddings[:, :2], embeddings[:, 2:]
    hidden = patches.shape[-1]
    if patches.shape[1] != frequency * old_time:
        raise ValueError(
            f"position embeddings hold {patches.shape[1]} patches, not {frequency}×{old_time}"
        )
    square = patches.reshape(1, frequency, old_time, hidden)
    if mode == "crop":
        if time > old_time:
            raise ValueError(f"cannot crop {old_time} time patches to {time}: use interpolate")
        resized = square[:, :, :time]
    elif mode == "interpolate":
        planes = square.permute(0, 3, 1, 2)  # (1, hidden, f, t)
        resized = F.interpolate(
            planes, size=(frequency, time), mode="bilinear", align_corners=False
        )
        resized = resized.permute(0, 2, 3, 1)
    else:
        raise ValueError(f"position embedding mode must be crop or interpolate, not {mode!r}")
    return torch.cat([leading, resized.reshape(1, frequency * time, hidden)], dim=1)


def adapt_max_length(model: ASTForAudioClassification, max_length: int, mode: str = "crop") -> None:
    """Change the model's input length in place, keeping the learned position embeddings."""
    config = model.config
    if max_length == config.max_length:
        return
    embeddings = model.audio_spectrogram_transformer.embeddings
    grid = patch_grid(config)
    _, time = patch_grid(config, max_length)
    if time < 1:
        raise ValueError(f"max_length {max_length} is shorter than one patch ({config.patch_size})")
    with torch.no_grad():
        resized = resize_position_grid(embeddings.position_embeddings.data, grid, time, mode)
    embeddings.position_embeddings = torch.nn.Parameter(resized.contiguous())
    config.max_length = max_length
