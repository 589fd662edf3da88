"""Device choice, thread counts and the bf16 policy."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import torch

from models.classifier.ast import load_classifier
from models.device import (
    available_cores,
    bf16_native,
    choose_precision,
    configure_threads,
    select_device,
)
from monitor.inference.engine import EngineSettings, EngineStoppedError, InferenceEngine
from tests.support.classifier import real_windows, save_tiny_ast


def test_select_device() -> None:
    assert select_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    with pytest.raises(ValueError, match=r"bad device|unsupported device"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda:0")


def test_configure_threads_sets_what_it_reports() -> None:
    before = torch.get_num_threads()
    try:
        config = configure_threads(1, 1)
        assert config.intra_op == 1 == torch.get_num_threads()
        assert config.inter_op == torch.get_num_interop_threads()
        assert configure_threads(0).intra_op == available_cores()
        with pytest.raises(ValueError):
            configure_threads(-1)
    finally:
        torch.set_num_threads(before)


def test_fp32_request_never_probes() -> None:
    def probe(_: str) -> torch.Tensor:
        raise AssertionError("fp32 must not probe")

    choice = choose_precision("fp32", torch.device("cpu"), probe, 0.01)
    assert choice.precision == "fp32"


def test_bf16_refused_when_it_disagrees_with_fp32() -> None:
    outputs = {"fp32": torch.tensor([0.2, 0.9]), "bf16": torch.tensor([0.2, 0.7])}
    choice = choose_precision("auto", torch.device("cpu"), outputs.__getitem__, 0.05)
    assert choice.precision == "fp32"
    if bf16_native(torch.device("cpu")):
        assert choice.max_abs_diff == pytest.approx(0.2)
        assert "differ" in choice.reason
    else:
        assert "not native" in choice.reason


def slow_probe(slow: str, outputs: dict[str, torch.Tensor]):
    """A probe whose `slow` precision takes visibly longer (as a slower kernel would)."""

    def probe(precision: str) -> torch.Tensor:
        if precision == slow:
            time.sleep(0.05)
        return outputs[precision]

    return probe


def test_bf16_refused_when_it_is_not_faster() -> None:
    outputs = {"fp32": torch.tensor([0.2, 0.9]), "bf16": torch.tensor([0.2, 0.901])}
    choice = choose_precision("auto", torch.device("cpu"), slow_probe("bf16", outputs), 0.05)
    assert choice.precision == "fp32"
    if bf16_native(torch.device("cpu")):
        assert "not faster" in choice.reason
        assert choice.bf16_seconds is not None and choice.fp32_seconds is not None
        assert choice.bf16_seconds > choice.fp32_seconds
        assert choice.max_abs_diff == pytest.approx(0.001, abs=1e-6)
        # Asked for explicitly, bf16 is used when it agrees, faster or not.
        forced = choose_precision("bf16", torch.device("cpu"), slow_probe("bf16", outputs), 0.05)
        assert forced.precision == "bf16"
        # Agreeing and faster: chosen, with both timings recorded.
        fast = choose_precision("auto", torch.device("cpu"), slow_probe("fp32", outputs), 0.05)
        assert fast.precision == "bf16"
        assert fast.bf16_seconds < fast.fp32_seconds  # type: ignore[operator]


def test_bad_precision_request() -> None:
    with pytest.raises(ValueError, match="bad precision"):
        choose_precision("fp16", torch.device("cpu"), lambda _: torch.zeros(1), 0.1)  # type: ignore[arg-type]


async def test_engine_probe_with_a_real_model(tmp_path) -> None:
    clf = load_classifier(save_tiny_ast(tmp_path / "tiny"), "cpu")
    engine = InferenceEngine(
        clf, None, EngineSettings(device="cpu", precision="auto", bf16_tolerance=0.05)
    )
    engine.start()
    choice = await engine.wait_ready()
    if bf16_native(torch.device("cpu")):
        assert choice.max_abs_diff is not None
        assert choice.fp32_seconds is not None and choice.bf16_seconds is not None
        usable = choice.max_abs_diff <= 0.05 and choice.bf16_seconds < choice.fp32_seconds
        assert choice.precision == ("bf16" if usable else "fp32")
    else:
        assert choice.precision == "fp32"
    assert clf.precision == choice.precision
    windows, rate = real_windows(4, 11520)
    scores = await asyncio.gather(*(engine.score(w, rate) for w in windows))
    await engine.stop()
    reference = clf.score(torch.from_numpy(np.stack(windows)), rate).numpy()
    got = np.array([[s[label] for label in clf.target_labels] for s in scores])
    tolerance = 0.05 if choice.precision == "bf16" else 1e-5
    np.testing.assert_allclose(got, reference, atol=tolerance)


async def test_wait_ready_before_start_is_an_error(tmp_path) -> None:
    clf = load_classifier(save_tiny_ast(tmp_path / "tiny"), "cpu")
    engine = InferenceEngine(clf, None, EngineSettings(device="cpu", precision="fp32"))
    with pytest.raises(EngineStoppedError, match="never started"):
        await asyncio.wait_for(engine.wait_ready(), 5)
