"""The inference engine's settings (``monitor/inference/engine.py`` re-exports them).

Kept apart from the engine so that reading a configuration does not import torch."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from models.precision import PrecisionRequest
from monitor.limits import check_limits

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class EngineSettings:
    max_batch: int = field(default=8, metadata={"min": 1})
    max_wait_ms: float = field(default=25.0, metadata={"min": 0.0})
    queue_size: int = field(default=64, metadata={"min": 1})
    device: str = "auto"  # "auto", "cpu", "cuda" or "cuda:N"
    precision: PrecisionRequest = "auto"
    # Largest score difference bf16 may show against fp32 on the startup probe.
    bf16_tolerance: float = field(default=0.02, metadata={"min": 0.0})
    num_threads: int = field(default=0, metadata={"min": 0})  # 0 → the cores this process may use
    interop_threads: int = field(default=1, metadata={"min": 0})

    def __post_init__(self) -> None:
        check_limits(self)
        if not math.isfinite(self.max_wait_ms):
            raise ValueError("max_wait_ms: expected a finite number")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, not {self.precision!r}")
        if not _DEVICE.match(self.device):
            raise ValueError(f"device: expected auto, cpu, cuda or cuda:N, got {self.device!r}")
