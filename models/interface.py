"""What the inference engine needs of the models, and what it gets back from them.

The engine (``monitor/inference/engine.py``) is written against these protocols, not against
``models.classifier.ast.Classifier`` or ``models.denoiser.model.Denoiser`` themselves, so a
test model or another architecture fits as long as it has this shape. Imports torch and numpy
only.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from models.precision import Precision

# One window's classification: target label → score in [0, 1].
Scores = dict[str, float]
# A denoised block of one stream: float32 (n,) at the rate it was given.
DenoisedAudio = np.ndarray


class Classifier(Protocol):
    """Scores windows of audio for its target labels."""

    target_labels: tuple[str, ...]
    # "bf16" runs the network under bf16 autocast; the engine sets it after its probe.
    precision: Precision

    @property
    def sample_rate(self) -> int: ...

    @property
    def window_seconds(self) -> float: ...

    def to(self, device: torch.device | str) -> Any: ...

    def score(self, waveforms: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """(B, n) audio at ``sample_rate`` (default: the model's) → (B, len(target_labels))
        scores on the CPU, in ``target_labels`` order."""
        ...


class Denoiser(Protocol):
    """Denoises audio at its own rate. ``denoise`` is called under ``torch.autocast`` for bf16
    and must keep any processing that cannot run in bf16 out of autocast itself.
    ``grid_seconds``/``context_grids``: see ``models.denoiser.model.Denoiser``."""

    @property
    def sample_rate(self) -> int: ...

    @property
    def grid_seconds(self) -> float: ...

    @property
    def context_grids(self) -> int: ...

    @property
    def min_samples(self) -> int: ...

    def denoise(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(B, n) float waveforms at ``sample_rate`` → (B, n) denoised, same device."""
        ...

    def to(self, device: torch.device | str) -> Any: ...


def scores_of(labels: tuple[str, ...], row: np.ndarray) -> Scores:
    """One row of ``Classifier.score``'s output as ``Scores``."""
    return {label: float(value) for label, value in zip(labels, row, strict=True)}


def denoised_audio(row: np.ndarray) -> DenoisedAudio:
    """One row of a denoised batch as ``DenoisedAudio``."""
    return np.ascontiguousarray(row, dtype=np.float32)
