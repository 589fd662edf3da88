"""Denoising: chunked vs whole on a real humpback call, batching, dtypes, unit mask."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from models.denoiser import Denoiser, DenoiserOptions, StreamingSettings, build_denoiser
from models.denoiser.frontend import complex_stft, deemphasis, inverse_stft, preemphasis
from models.denoiser.streaming import MIN_FRAMES, chunk_spans, chunked_mask
from tests.support.calls import read_call

CALLS = Path(__file__).parents[1] / "data" / "humpback-calls"
FULL_BAND = DenoiserOptions(fmin=0, fmax=22050)
WHOLE = StreamingSettings(chunk_frames=4096)  # longer than any test input: one pass


@pytest.fixture(scope="module")
def creak() -> torch.Tensor:
    return read_call("Creak.wav")  # 4.38 s → 439 frames


def calibrated_denoiser(audio: torch.Tensor, streaming: StreamingSettings) -> Denoiser:
    """Tiny float64 denoiser whose BatchNorm statistics come from real audio, so that its mask
    varies strongly with the input (a fresh one is nearly constant and would prove little)."""
    torch.manual_seed(0)
    denoiser = build_denoiser(FULL_BAND, base_width=4, streaming=streaming).double()
    for m in denoiser.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration pass
    spec, _ = denoiser.spectrogram(audio)
    denoiser.train()
    with torch.no_grad():
        denoiser(spec)
    return denoiser.eval()


@pytest.mark.parametrize("n_frames", [5, 16, 100, 128, 129, 143, 144, 145, 224, 439, 1000])
@pytest.mark.parametrize(
    "settings",
    [StreamingSettings(), StreamingSettings(overlap_frames=0), StreamingSettings(64, 16, 8)],
)
def test_chunks_cover_the_signal_on_the_pooling_grid(
    n_frames: int, settings: StreamingSettings
) -> None:
    spans = chunk_spans(n_frames, settings)
    assert spans[0][0] == 0 and spans[-1][1] == n_frames
    assert all(a % MIN_FRAMES == 0 for a, _ in spans)
    assert all(b - a == settings.chunk_frames for a, b in spans[:-1])
    last = spans[-1][1] - spans[-1][0]
    assert last < settings.chunk_frames + MIN_FRAMES
    assert last == n_frames if len(spans) == 1 else last >= settings.chunk_frames
    for (a0, b0), (a1, _) in itertools.pairwise(spans):
        # The next chunk starts after the previous, early enough to crossfade past the margin.
        assert a0 < a1 <= b0 - settings.overlap_frames - 2 * settings.margin_frames


@pytest.mark.parametrize("settings", [StreamingSettings(), StreamingSettings(64, 16, 8)])
def test_blending_is_exact_for_a_network_without_context(settings: StreamingSettings) -> None:
    """With a per-pixel network every chunk agrees with the whole pass, so chunked must equal
    whole to rounding: this checks chunk placement and weight normalisation."""
    torch.manual_seed(0)
    pointwise = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Sigmoid()).double()
    spec = torch.rand(2, 1, 439, 256, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(
            chunked_mask(pointwise, spec, settings), pointwise(spec), rtol=0, atol=1e-14
        )


def test_chunked_equals_whole_within_tolerance_on_a_real_call(creak: torch.Tensor) -> None:
    denoiser = calibrated_denoiser(creak, StreamingSettings())
    spec, _ = denoiser.spectrogram(creak)
    with torch.no_grad():
        whole_mask = denoiser(spec)
        chunked = chunked_mask(denoiser.unet, spec, denoiser.streaming)
        hard_cuts = chunked_mask(denoiser.unet, spec, StreamingSettings(overlap_frames=0))
    # The mask really depends on the input: neighbouring frames differ by ~0.06 on average.
    frame_to_frame = (whole_mask[:, :, 1:] - whole_mask[:, :, :-1]).abs().mean()
    assert frame_to_frame > 0.03
    error = (chunked - whole_mask).abs()
    assert float(error.mean()) < 0.1 * float(frame_to_frame)  # measured 0.0029
    assert float(error.max()) < 0.15  # measured 0.073
    assert float(error.mean()) < 0.6 * float((hard_cuts - whole_mask).abs().mean())

    out = denoiser.denoise(creak)
    denoiser.streaming = WHOLE
    reference = denoiser.denoise(creak)
    assert out.shape == creak.shape
    relative = float((out - reference).norm() / reference.norm())
    assert relative < 0.01  # measured 0.0057


def test_more_margin_comes_closer_to_whole(creak: torch.Tensor) -> None:
    denoiser = calibrated_denoiser(creak, StreamingSettings())
    spec, _ = denoiser.spectrogram(creak)
    with torch.no_grad():
        whole_mask = denoiser(spec)
        default = chunked_mask(denoiser.unet, spec, StreamingSettings())
        margin = chunked_mask(denoiser.unet, spec, StreamingSettings(128, 32, 16))
    assert (margin - whole_mask).abs().mean() < 0.75 * (default - whole_mask).abs().mean()


def test_a_batch_equals_single_calls() -> None:
    calls = [read_call(name) for name in ("AscMoan.wav", "moan.wav", "DescMoan.wav")]
    n = min(c.shape[1] for c in calls)
    batch = torch.cat([c[:, :n] for c in calls])
    denoiser = calibrated_denoiser(batch, StreamingSettings(max_batch_chunks=3))
    together = denoiser.denoise(batch)
    for i in range(3):
        torch.testing.assert_close(
            together[i : i + 1], denoiser.denoise(batch[i : i + 1]), rtol=0, atol=1e-12
        )


def test_float32_and_float64_paths_agree(creak: torch.Tensor) -> None:
    denoiser = calibrated_denoiser(creak, StreamingSettings())
    out64 = denoiser.denoise(creak)
    mixed = denoiser.denoise(creak.float())  # float32 audio, float64 network
    assert out64.dtype == torch.float64 and mixed.dtype == torch.float32
    denoiser.float()
    out32 = denoiser.denoise(creak.float())
    assert out32.dtype == torch.float32
    scale = float(out64.abs().max())
    torch.testing.assert_close(out32.double(), out64, rtol=0, atol=1e-4 * scale)
    torch.testing.assert_close(mixed.double(), out64, rtol=0, atol=1e-4 * scale)


def unit_mask_denoiser(options: DenoiserOptions, undo: bool) -> Denoiser:
    """The real model code with its output layer set so that the mask is exactly 1."""
    denoiser = build_denoiser(options, 4, StreamingSettings(undo_preemphasis=undo)).double()
    with torch.no_grad():
        denoiser.unet.outc.conv.weight.zero_()
        denoiser.unet.outc.conv.bias.fill_(40.0)  # sigmoid(40) == 1.0 in float64
    return denoiser


def without_nyquist(emphasised: torch.Tensor) -> torch.Tensor:
    """The pre-emphasised audio less its Nyquist bin, which upstream's band never keeps."""
    stft = complex_stft(emphasised, FULL_BAND)
    stft[..., -1] = 0
    return inverse_stft(stft, FULL_BAND, emphasised.shape[1])


def test_unit_mask_gives_back_the_input(creak: torch.Tensor) -> None:
    """With the pre-emphasis undone, a mask of ones returns the input less its Nyquist bin
    (this file has some: 1e-3 of the peak)."""
    out = unit_mask_denoiser(FULL_BAND, undo=True).denoise(creak)
    expected = deemphasis(without_nyquist(preemphasis(creak, 0.98)), 0.98)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    assert float((out - creak).abs().max()) < 2e-3 * float(creak.abs().max())


def test_without_undo_the_output_stays_pre_emphasised_as_upstream(creak: torch.Tensor) -> None:
    out = unit_mask_denoiser(FULL_BAND, undo=False).denoise(creak)
    torch.testing.assert_close(out, without_nyquist(preemphasis(creak, 0.98)), rtol=0, atol=1e-12)


def test_unit_mask_keeps_only_fmin_to_fmax(creak: torch.Tensor) -> None:
    options = DenoiserOptions(fmin=500, fmax=10000)
    out = unit_mask_denoiser(options, undo=True).denoise(creak)
    freqs = np.fft.rfftfreq(creak.shape[1], 1 / 44100)
    before = np.abs(np.fft.rfft(creak[0].numpy())) ** 2
    after = np.abs(np.fft.rfft(out[0].numpy())) ** 2
    low, band = freqs < 400, (freqs > 700) & (freqs < 9000)
    assert after[low].sum() < 1e-3 * before[low].sum()  # below fmin: > 30 dB down
    assert after[band].sum() == pytest.approx(before[band].sum(), rel=0.02)


def test_denoise_uses_running_statistics_and_restores_the_mode(creak: torch.Tensor) -> None:
    denoiser = calibrated_denoiser(creak, StreamingSettings())
    before = {k: v.clone() for k, v in denoiser.state_dict().items()}
    expected = denoiser.denoise(creak)
    denoiser.train()
    torch.testing.assert_close(denoiser.denoise(creak), expected, rtol=0, atol=0)
    assert denoiser.training
    for k, v in denoiser.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_short_input_is_padded_for_the_network() -> None:
    denoiser = build_denoiser(base_width=4)
    x = torch.randn(2, 3000) * 0.1  # 7 frames: fewer than the U-Net's 16
    out = denoiser.denoise(x)
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "kwargs",
    [{"chunk_frames": 8}, {"chunk_frames": 120}, {"overlap_frames": 30}, {"max_batch_chunks": 0}],
)
def test_bad_streaming_settings_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        StreamingSettings(**kwargs)
