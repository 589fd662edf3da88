"""Helpers for the classifier and engine tests: a tiny AST checkpoint and real audio."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

DATA = Path(__file__).resolve().parents[1] / "data"
LABELS = ("Speech", "Music", "Whale vocalization", "Ship", "Silence")


def tiny_config(problem_type: str | None = "multi_label_classification", **overrides) -> ASTConfig:
    """The tiny AST used by transformers' own tests (max_length 24 → 0.24 s windows)."""
    fields = dict(
        patch_size=2,
        max_length=24,
        num_mel_bins=16,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        frequency_stride=2,
        time_stride=2,
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
        problem_type=problem_type,
    )
    fields.update(overrides)
    return ASTConfig(**fields)


def save_tiny_ast(
    directory: Path,
    problem_type: str | None = "multi_label_classification",
    seed: int = 0,
    **overrides,
) -> Path:
    """Save a random-init tiny AST checkpoint plus its ASTFeatureExtractor config."""
    config = tiny_config(problem_type, **overrides)
    torch.manual_seed(seed)
    model = ASTForAudioClassification(config).eval()
    model.save_pretrained(directory)
    extractor = ASTFeatureExtractor(num_mel_bins=config.num_mel_bins, max_length=config.max_length)
    extractor.save_pretrained(directory)
    return directory


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Decode a real file with PyAV → (mono float32 samples, sample rate)."""
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray()[0])
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray()[0])
    return np.concatenate(chunks).astype(np.float32), rate


def real_windows(count: int, length: int, path: Path | None = None) -> tuple[list[np.ndarray], int]:
    """`count` different windows of `length` samples cut from a real Orcasound segment."""
    samples, rate = read_audio(path or DATA / "orcasound-hls" / "normal" / "live385.ts")
    step = max(1, (samples.shape[0] - length) // max(1, count))
    windows = [samples[i * step : i * step + length].copy() for i in range(count)]
    if any(w.shape[0] != length for w in windows):
        raise ValueError(f"{path} is too short for {count} windows of {length} samples")
    return windows, rate
