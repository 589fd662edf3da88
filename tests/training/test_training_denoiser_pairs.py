"""ORCA-CLEAN training pairs: shapes, every corruption, exact SNR mixing, determinism."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from models.denoiser import DenoiserOptions
from training.audio import load_mono
from training.corruption import CORRUPTIONS, binary_mask, mix_at_snr, warp
from training.manifest import Clip
from training.train_denoiser import TrainDenoiserSettings, TrainingPairs, training_pair

OPTIONS = DenoiserOptions(
    sr=16000, fmin=0.0, fmax=8000.0, n_fft=512, hop_length=160, n_freq_bins=64
)


def call(data_dir: Path) -> torch.Tensor:
    return torch.from_numpy(load_mono(data_dir / "humpback-calls" / "Chirp.wav", 16000))


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_each_corruption_makes_a_pair(kind: str, data_dir: Path) -> None:
    settings = TrainDenoiserSettings(corruptions=(kind,), frames=32)
    noise = torch.randn(16000) * 0.01
    source, target = training_pair(
        call(data_dir), noise, settings, OPTIONS, torch.Generator().manual_seed(1)
    )
    assert source.shape == target.shape == (1, 32, 64)
    assert source.min() >= 0 and source.max() <= 1
    if kind == "binary_mask":
        assert set(target.unique().tolist()) == {0.0, 1.0}  # a mask of the call's loud bins
    else:
        assert not torch.equal(source, target)  # the input is corrupted, the target is not


def test_mix_at_snr_is_exact() -> None:
    generator = torch.Generator().manual_seed(0)
    signal, noise = torch.randn(8000, generator=generator), torch.randn(3000, generator=generator)
    mixed = mix_at_snr(signal, noise, -5.0)
    added = mixed - signal
    assert added.numel() == 8000  # the noise was tiled
    snr = 10 * math.log10(float(signal.pow(2).mean() / added.pow(2).mean()))
    assert snr == pytest.approx(-5.0, abs=1e-4)


def test_warp_and_mask() -> None:
    spec = torch.zeros(1, 10, 8)
    spec[:, :, 2] = 1.0
    shifted = warp(spec, stretch=1.0, pitch=2.0)
    assert shifted.shape == (1, 10, 8)  # cut back to the frequency bins
    assert warp(spec, 2.0, 1.0).shape == (1, 20, 8)  # longer in time; cropped later
    assert shifted[0, 0].argmax() in (4, 5)  # the line moved up by ×2
    assert binary_mask(spec).sum() == 10


def test_pairs_depend_only_on_seed_epoch_and_position(tmp_path: Path, data_dir: Path) -> None:
    from monitor.audio.audiofile import write_audio

    clips = []
    for i, name in enumerate(["Chirp.wav", "Buzz.wav"]):
        path = tmp_path / f"{i}.wav"
        write_audio(
            path,
            np.asarray(
                call(data_dir) if i == 0 else load_mono(data_dir / "humpback-calls" / name, 16000)
            ),
            16000,
        )
        clips.append(Clip(str(i), path, "r", "r.flac", 0, 1, "Chirp", 1, "call", "train", 16000))
    settings = TrainDenoiserSettings(frames=32)
    first = TrainingPairs(clips, [], settings, OPTIONS)
    second = TrainingPairs(clips, [], settings, OPTIONS)
    first.start_epoch(3, 4)
    second.start_epoch(3, 4)
    for k in range(4):
        assert all(torch.equal(a, b) for a, b in zip(first[k], second[k], strict=True))
    second.start_epoch(4, 4)
    assert not all(torch.equal(first[k][0], second[k][0]) for k in range(4))
