"""The real humpback call files, decoded for the model tests."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch

CALLS = Path(__file__).parents[1] / "data" / "humpback-calls"


def read_call(name: str, sample_rate: int = 44100) -> torch.Tensor:
    """A call file as mono float64 (1, n) at sample_rate, decoded with PyAV."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    parts = []
    with av.open(str(CALLS / name)) as container:
        for frame in container.decode(audio=0):
            parts += [f.to_ndarray() for f in resampler.resample(frame)]
    parts += [f.to_ndarray() for f in resampler.resample(None)]
    return torch.from_numpy(np.concatenate(parts, axis=1).astype(np.float64))
