"""Audio for the training steps: mono float32 at a chosen rate, read and written through the
project's PyAV audio-file module, resampled with torchaudio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

from monitor.audio.audiofile import read_audio, write_audio
from training.result_files import atomic_path


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    if source_rate == target_rate:
        return samples.astype(np.float32, copy=False)
    tensor = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    return AF.resample(tensor, source_rate, target_rate).numpy()


def load_mono(path: Path, sample_rate: int) -> np.ndarray:
    """(n,) float32 at ``sample_rate``: channels averaged, then resampled."""
    samples, rate = read_audio(path)
    return resample(np.asarray(samples, dtype=np.float32).mean(axis=0), int(rate), sample_rate)


def load_mono_fixed(path: Path, sample_rate: int, length: int) -> np.ndarray:
    """(length,) float32: the clip's first ``length`` samples, zero-padded when it is shorter."""
    samples = load_mono(path, sample_rate)[:length]
    return np.pad(samples, (0, length - len(samples)))


def save_mono(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Atomically: a clip on disk is complete or absent."""
    with atomic_path(path) as temporary:
        write_audio(temporary, np.asarray(samples, dtype=np.float32)[None, :], sample_rate)
