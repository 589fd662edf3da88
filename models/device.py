"""Where and how models run: device choice, thread counts, and the bf16 policy.

bf16 autocast is offered only where the hardware runs it natively (CUDA with bf16, or a CPU
whose oneDNN reports bf16 support) and only after a probe at startup shows that its scores
agree with fp32 within a tolerance and that it ran faster than fp32; otherwise fp32, with the
reason recorded.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from models.precision import Precision, PrecisionRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThreadConfig:
    intra_op: int
    inter_op: int


@dataclass(frozen=True)
class PrecisionChoice:
    precision: Precision
    reason: str
    max_abs_diff: float | None = None
    # Wall time of the probe pass in each precision (None where it did not run).
    fp32_seconds: float | None = None
    bf16_seconds: float | None = None


def select_device(name: str = "auto") -> torch.device:
    """'auto' → the first CUDA device when there is one, else the CPU; otherwise as named."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"bad device {name!r}: use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA devices")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {name!r}: use auto, cpu, cuda or cuda:N")
    return device


def available_cores() -> int:
    """CPU cores this process may run on (affinity / container limits, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def configure_threads(num_threads: int = 0, interop_threads: int = 1) -> ThreadConfig:
    """Set torch's intra-op threads (0 → the cores available) and inter-op threads.

    The inter-op pool can be sized only before torch first uses it; after that the existing
    size stays and is reported.
    """
    if num_threads < 0 or interop_threads < 0:
        raise ValueError("thread counts must be >= 0")
    intra = num_threads or available_cores()
    torch.set_num_threads(intra)
    if interop_threads:
        try:
            torch.set_num_interop_threads(interop_threads)
        except RuntimeError:
            log.debug("inter-op threads already fixed at %d", torch.get_num_interop_threads())
    return ThreadConfig(intra_op=torch.get_num_threads(), inter_op=torch.get_num_interop_threads())


def autocast_at(precision: Precision, device: torch.device) -> AbstractContextManager[object]:
    """bf16 autocast on `device` for "bf16", nothing for "fp32"."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def autocast_off(device: torch.device) -> AbstractContextManager[object]:
    """Autocast disabled on `device`: signal processing inside a caller's bf16 autocast
    region keeps full precision (and kernels such as the FFT and lfilter that refuse bf16)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return nullcontext()


def bf16_native(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and _cpu_bf16())
    return False


def _cpu_bf16() -> bool:
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


def _timed(
    probe: Callable[[Precision], torch.Tensor], precision: Precision
) -> tuple[torch.Tensor, float]:
    started = time.perf_counter()
    scores = probe(precision).float().cpu()  # .cpu() waits for the device to finish
    return scores, time.perf_counter() - started


def choose_precision(
    requested: PrecisionRequest,
    device: torch.device,
    probe: Callable[[Precision], torch.Tensor],
    tolerance: float,
    *,
    require_faster: bool = True,
) -> PrecisionChoice:
    """Decide fp32 or bf16. `probe(precision)` returns scores for a fixed input.

    bf16 needs native support, scores within `tolerance` of fp32 and, unless
    `require_faster` is off, a probe pass faster than the fp32 one (the fp32 pass runs first
    and so also carries the one-off warm-up costs, which favours bf16 on a close call).
    `requested="bf16"` still probes and falls back to fp32 where bf16 disagrees.
    """
    if requested not in ("auto", "fp32", "bf16"):
        raise ValueError(f"bad precision {requested!r}: use auto, fp32 or bf16")
    if requested == "fp32":
        return PrecisionChoice("fp32", "fp32 requested")
    if not bf16_native(device):
        return PrecisionChoice("fp32", f"bf16 is not native on {device}")
    reference, fp32_s = _timed(probe, "fp32")
    try:
        candidate, bf16_s = _timed(probe, "bf16")
    except RuntimeError as exc:
        return PrecisionChoice("fp32", f"bf16 probe failed: {str(exc)[:160]}", None, fp32_s)
    diff = float((candidate - reference).abs().max())
    times = f"probe {bf16_s:.3g} s bf16 vs {fp32_s:.3g} s fp32"
    if not diff <= tolerance:
        return PrecisionChoice(
            "fp32",
            f"bf16 scores differ from fp32 by {diff:.4g} > {tolerance}; {times}",
            diff,
            fp32_s,
            bf16_s,
        )
    if require_faster and requested == "auto" and not bf16_s < fp32_s:
        return PrecisionChoice(
            "fp32",
            f"bf16 is not faster here ({times}); agrees within {diff:.4g}",
            diff,
            fp32_s,
            bf16_s,
        )
    return PrecisionChoice(
        "bf16", f"bf16 agrees with fp32 within {diff:.4g}; {times}", diff, fp32_s, bf16_s
    )
