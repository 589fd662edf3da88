"""The denoiser under bf16 autocast and with low-precision audio, through its public API."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.denoiser import Denoiser, DenoiserOptions, StreamingSettings, build_denoiser
from tests.support.calls import read_call


@pytest.fixture(scope="module")
def call() -> torch.Tensor:
    return read_call("Creak.wav").float()[:, : 3 * 44100]  # 3 s: several chunks


@pytest.fixture(scope="module")
def denoiser(call: torch.Tensor) -> Denoiser:
    """Width-8 U-Net whose BatchNorm statistics come from the call, so its mask varies."""
    torch.manual_seed(0)
    model = build_denoiser(DenoiserOptions(fmin=0), base_width=8, streaming=StreamingSettings())
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
    spec, _ = model.spectrogram(call)
    model.train()
    with torch.no_grad():
        model(spec)
    return model.eval()


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.double() - want.double()).norm() / want.double().norm())


def test_bf16_autocast_runs_the_unet_in_bf16_and_the_dsp_in_fp32(
    denoiser: Denoiser, call: torch.Tensor
) -> None:
    reference = denoiser.denoise(call)
    seen: list[torch.dtype] = []
    hook = denoiser.unet.outc.conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = denoiser.denoise(call)
    finally:
        hook.remove()
    assert seen and set(seen) == {torch.bfloat16}  # the network really ran in bf16
    assert out.dtype == torch.float32 and out.shape == call.shape
    error = relative_error(out, reference)
    assert 0 < error < 0.02  # differs (bf16 network) but only by rounding


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_audio_comes_back_in_its_dtype(
    denoiser: Denoiser, call: torch.Tensor, dtype: torch.dtype
) -> None:
    x = call.to(dtype)
    out = denoiser.denoise(x)
    assert out.dtype == dtype and out.shape == x.shape
    # The same as denoising the (rounded) audio in float32, up to the output's rounding.
    want = denoiser.denoise(x.float())
    assert relative_error(out, want) < 0.01


def test_bf16_weights_denoise_float32_audio(denoiser: Denoiser, call: torch.Tensor) -> None:
    reference = denoiser.denoise(call)
    low = build_denoiser(denoiser.options, base_width=8)
    low.load_state_dict(denoiser.state_dict())
    low = low.to(torch.bfloat16).eval()
    out = low.denoise(call)
    assert out.dtype == torch.float32
    assert relative_error(out, reference) < 0.05
