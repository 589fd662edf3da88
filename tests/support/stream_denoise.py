"""A tiny real denoiser whose mask depends on its input, and real audio cut into chunks."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import torch
from torch import nn

from models.classifier.ast import load_classifier
from models.denoiser import Denoiser, DenoiserOptions, build_denoiser
from monitor.audio.chunks import AudioChunk
from monitor.inference.engine import EngineSettings, InferenceEngine
from monitor.ingest.slots import SegmentRef
from monitor.timebase import after_samples
from tests.support.classifier import DATA, read_audio, save_tiny_ast

FULL_BAND = DenoiserOptions(fmin=0, fmax=22050)


def real_stream(*names: str) -> tuple[np.ndarray, int]:
    """Real Orcasound segments decoded and joined: (mono float32, rate)."""
    parts = [read_audio(DATA / "orcasound-hls" / "normal" / name) for name in names]
    return np.concatenate([p[0] for p in parts]), parts[0][1]


def calibrated_denoiser(samples: np.ndarray, rate: int) -> Denoiser:
    """Width-4 U-Net whose BatchNorm statistics come from real audio, so that its mask varies
    with the input (a fresh one is nearly constant and would prove little)."""
    import torchaudio

    torch.manual_seed(0)
    denoiser = build_denoiser(FULL_BAND, base_width=4)
    for m in denoiser.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
    audio = torchaudio.functional.resample(torch.from_numpy(samples)[None], rate, 44100)
    spec, _ = denoiser.spectrogram(audio)
    denoiser.train()
    with torch.no_grad():
        denoiser(spec)
    return denoiser.eval()


def engine_with(denoiser: Denoiser, directory, **settings) -> InferenceEngine:
    classifier = load_classifier(save_tiny_ast(directory, max_length=100), "cpu")
    options = {"device": "cpu", "precision": "fp32", "num_threads": 1, **settings}
    return InferenceEngine(classifier, denoiser, EngineSettings(**options))


def as_chunks(
    samples: np.ndarray, rate: int, start: datetime, sizes: list[int], feed: str = "rpi_test"
) -> list[AudioChunk]:
    """Cut ``samples`` into consecutive mono chunks of the given sizes (the last takes the rest)."""
    chunks, at = [], 0
    for number, size in enumerate([*sizes, samples.shape[0]]):
        piece = samples[at : at + size]
        if piece.shape[0] == 0:
            break
        ref = SegmentRef("test-bucket", f"{feed}/live{number}.ts", 1_717_761_600, number)
        chunks.append(
            AudioChunk(feed, after_samples(start, at, rate), rate, piece[None].copy(), ref)
        )
        at += piece.shape[0]
    return chunks
