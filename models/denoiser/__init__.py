"""ORCA-CLEAN denoiser (Bergler et al. 2020) re-implemented for PyTorch 2.x.

Public API (the inference engine and the training scripts depend on it):
    Denoiser, build_denoiser, load_denoiser, save_denoiser, save_epoch_checkpoint,
    read_checkpoint, checkpoint_sha256, CheckpointError, DenoiserOptions, StreamingSettings,
    spectrogram, apply_mask.
"""

from models.denoiser.checkpoint import (
    CheckpointContents,
    CheckpointError,
    checkpoint_sha256,
    load_denoiser,
    read_checkpoint,
    save_denoiser,
    save_epoch_checkpoint,
)
from models.denoiser.frontend import DenoiserOptions, apply_mask, spectrogram
from models.denoiser.model import Denoiser, build_denoiser
from models.denoiser.streaming import StreamingSettings
from models.denoiser.unet import UNet

__all__ = [
    "CheckpointContents",
    "CheckpointError",
    "Denoiser",
    "DenoiserOptions",
    "StreamingSettings",
    "UNet",
    "apply_mask",
    "build_denoiser",
    "checkpoint_sha256",
    "load_denoiser",
    "read_checkpoint",
    "save_denoiser",
    "save_epoch_checkpoint",
    "spectrogram",
]
