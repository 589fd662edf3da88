"""The precisions the models run in, as plain names (no torch: the configuration reads them)."""

from __future__ import annotations

from typing import Literal

Precision = Literal["fp32", "bf16"]
PrecisionRequest = Literal["auto", "fp32", "bf16"]  # "auto": bf16 only where a probe shows it pays
