"""The engine with a (tiny, real) ORCA-CLEAN denoiser in front of the classifier."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch
import torchaudio

from models.classifier.ast import load_classifier
from models.denoiser.model import build_denoiser
from models.device import bf16_native
from monitor.inference.engine import DENOISER_PROBE_SECONDS, EngineSettings, InferenceEngine
from tests.support.classifier import real_windows, save_tiny_ast

RATE = 48000


async def test_engine_denoises_then_classifies_each_caller(tmp_path) -> None:
    # 100 frames = 1 s windows, long enough for several denoiser STFT frames.
    clf = load_classifier(save_tiny_ast(tmp_path / "tiny", max_length=100), "cpu")
    torch.manual_seed(1)
    denoiser = build_denoiser(base_width=4)
    windows, rate = real_windows(12, RATE)
    assert rate == RATE
    engine = InferenceEngine(
        clf,
        denoiser,
        EngineSettings(device="cpu", precision="fp32", max_batch=4, max_wait_ms=50, num_threads=1),
    )
    engine.start()
    try:
        results = await asyncio.gather(*(engine.score(w, RATE) for w in windows))
    finally:
        await engine.stop()

    stats = engine.stats()
    assert stats.requests == 12
    assert max(stats.batch_sizes) > 1
    raw = clf.score(torch.from_numpy(np.stack(windows)), RATE).numpy()
    for i, (window, got) in enumerate(zip(windows, results, strict=True)):
        at_44k1 = torchaudio.functional.resample(torch.from_numpy(window)[None], RATE, 44100)
        clean = denoiser.denoise(at_44k1)
        want = clf.score(clean, 44100)[0].numpy()
        assert [got[label] for label in clf.target_labels] == pytest.approx(want, abs=1e-5)
        # The denoiser really changed what the classifier saw.
        assert not np.allclose(want, raw[i], atol=1e-6)


async def test_precision_is_chosen_per_model_and_scores_still_agree(tmp_path) -> None:
    clf = load_classifier(save_tiny_ast(tmp_path / "tiny", max_length=100), "cpu")
    torch.manual_seed(1)
    denoiser = build_denoiser(base_width=4)
    windows, _ = real_windows(3, RATE)
    engine = InferenceEngine(
        clf, denoiser, EngineSettings(device="cpu", precision="auto", bf16_tolerance=0.05)
    )
    probe_inputs: list[tuple[int, ...]] = []
    probe_outputs: list[torch.dtype] = []
    hooks = [
        denoiser.unet.register_forward_pre_hook(lambda m, a: probe_inputs.append(a[0].shape)),
        denoiser.unet.outc.conv.register_forward_hook(
            lambda m, a, o: probe_outputs.append(o.dtype)
        ),
    ]
    engine.start()
    try:
        await engine.wait_ready()
    finally:
        for hook in hooks:
            hook.remove()
    assert engine.precision is not None
    assert engine.denoiser_precision is not None
    if bf16_native(torch.device("cpu")):
        # The probe really ran the U-Net in bf16 through the denoiser's public API (the DSP
        # around it stays fp32), and cheaply: one probe clip, whole at this window length.
        assert engine.denoiser_precision.max_abs_diff is not None
        assert torch.bfloat16 in probe_outputs and torch.float32 in probe_outputs
        assert all(shape[0] == 1 for shape in probe_inputs)
        assert len(probe_inputs) == 2  # one network call per precision
    else:
        assert not probe_inputs
    results = await asyncio.gather(*(engine.score(w, RATE) for w in windows))
    await engine.stop()

    clf.precision = "fp32"
    for window, got in zip(windows, results, strict=True):
        at_44k1 = torchaudio.functional.resample(torch.from_numpy(window)[None], RATE, 44100)
        want = clf.score(denoiser.denoise(at_44k1), 44100)[0].numpy()
        # Whatever the policy picked must agree with fp32 within its tolerance.
        assert [got[label] for label in clf.target_labels] == pytest.approx(want, abs=0.1)


async def test_denoiser_probe_is_capped_below_a_long_window(tmp_path) -> None:
    # A 4 s window; the denoiser probe uses only DENOISER_PROBE_SECONDS (257 frames: chunks
    # 0–128 and 96–224 in one call, 128–257 in another), not the whole window (401 frames).
    clf = load_classifier(save_tiny_ast(tmp_path / "tiny", max_length=400), "cpu")
    torch.manual_seed(1)
    denoiser = build_denoiser(base_width=4)
    shapes: list[tuple[int, ...]] = []
    hook = denoiser.unet.register_forward_pre_hook(lambda m, a: shapes.append(a[0].shape))
    engine = InferenceEngine(
        clf, denoiser, EngineSettings(device="cpu", precision="auto", bf16_tolerance=0.05)
    )
    engine.start()
    try:
        await engine.wait_ready()
    finally:
        hook.remove()
        await engine.stop()
    assert clf.window_seconds > DENOISER_PROBE_SECONDS
    if bf16_native(torch.device("cpu")):
        assert [(s[0], s[2]) for s in shapes] == [(2, 128), (1, 129)] * 2
    else:
        assert shapes == []
