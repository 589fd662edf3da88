"""ORCA-CLEAN front end: options, spectrogram values, compression, inverse path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.denoiser.frontend import (
    DenoiserOptions,
    apply_mask,
    complex_stft,
    compress,
    decompress,
    deemphasis,
    inverse_stft,
    normalise,
    preemphasis,
    spectrogram,
)

UPSTREAM_DATA_OPTS = {
    "sr": 44100,
    "preemphases": 0.98,
    "n_fft": 4096,
    "hop_length": 441,
    "n_freq_bins": 256,
    "fmin": 500,
    "fmax": 10000,
    "freq_compression": "linear",
    "min_level_db": -100,
    "ref_level_db": 20,
}
FULL_BAND = DenoiserOptions(fmin=0, fmax=22050)


def test_defaults_are_upstreams_data_opts() -> None:
    assert DenoiserOptions().to_data_opts() == UPSTREAM_DATA_OPTS
    assert DenoiserOptions.from_data_opts(UPSTREAM_DATA_OPTS) == DenoiserOptions()
    assert DenoiserOptions().bin_range == (46, 929)  # floor(4096·500/44100), ceil(4096·1e4/44100)
    assert FULL_BAND.bin_range == (0, 2048)  # upstream never keeps the Nyquist bin


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": 1}, r"unknown keys \['colour'\]"),
        ({"fmin": None}, "fmin must be a finite number"),
        ({"fmax": 30000}, "fmax <= sr/2"),
        ({"freq_compression": "mel"}, "'mel' is not supported"),
        ({"n_fft": 4095}, "n_fft must be even"),
        ({"sr": True}, "sr must be a positive int"),
        ({"hop_length": 4096}, "hop_length"),
        ({"min_level_db": 10}, "min_level_db must be negative"),
    ],
)
def test_bad_data_opts_are_rejected(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DenoiserOptions.from_data_opts({**UPSTREAM_DATA_OPTS, **change})


def test_missing_data_opts_key_is_named() -> None:
    opts = dict(UPSTREAM_DATA_OPTS)
    del opts["hop_length"]
    with pytest.raises(ValueError, match=r"missing keys \['hop_length'\]"):
        DenoiserOptions.from_data_opts(opts)


def test_sine_lands_in_its_bin_at_the_expected_level() -> None:
    """A bin-centred sine, computed independently: pre-emphasis gain, window sums, dB, scaling."""
    options = FULL_BAND
    column = 12  # compression 2048 → 256 keeps every 8th bin, so column j is bin 8j
    k = 8 * column
    freq = k * options.sr / options.n_fft
    amplitude = 0.1
    n = np.arange(options.sr)
    x = torch.from_numpy(amplitude * np.sin(2 * math.pi * freq * n / options.sr))[None]
    normalised, stft = spectrogram(x, options)
    assert normalised.shape == (1, 1, 101, 256)
    assert stft.shape == (1, 101, 2049) and stft.dtype == torch.complex128

    omega = 2 * math.pi * freq / options.sr
    emphasis_gain = abs(1 - options.preemphases * np.exp(-1j * omega))
    window_sum, window_energy = options.n_fft / 2, 3 * options.n_fft / 8  # periodic Hann
    power = (amplitude * emphasis_gain / 2 * window_sum) ** 2 / window_energy
    expected = (10 * math.log10(power) - 20 + 100) / 100
    assert 0.2 < expected < 0.9
    frame = normalised[0, 0, 50]
    assert float(frame[column]) == pytest.approx(expected, abs=1e-6)
    assert int(frame.argmax()) == column


def test_normalisation_floor_and_ceiling() -> None:
    options = DenoiserOptions()
    power = torch.tensor([0.0, 1e-12, 1e-10, 1.0, 100.0, 1e6])
    # dB: floor −100 → −0.2 → 0; 0 dB → 0.8; 20 dB → 1; above → 1.
    expected = torch.tensor([0.0, 0.0, 0.0, 0.8, 1.0, 1.0])
    torch.testing.assert_close(normalise(power, options), expected)


def test_compression_keeps_the_band_by_nearest_index() -> None:
    options = DenoiserOptions()  # bins 46..928 → 256
    bins = torch.arange(options.n_bins, dtype=torch.float64).expand(1, 3, -1)
    got = compress(bins, options)[0, 0].numpy()
    low, high = options.bin_range
    expected = [low + (j * (high - low)) // 256 for j in range(256)]
    np.testing.assert_array_equal(got, expected)


def test_decompression_is_nearest_inside_the_band_and_zero_outside() -> None:
    options = DenoiserOptions()
    low, high = options.bin_range
    mask = torch.rand(2, 5, 256, dtype=torch.float64)
    full = decompress(mask, options)
    assert full.shape == (2, 5, options.n_bins)
    assert torch.all(full[..., :low] == 0) and torch.all(full[..., high:] == 0)
    source = [(i * 256) // (high - low) for i in range(high - low)]
    torch.testing.assert_close(full[..., low:high], mask[..., source])


def test_preemphasis_is_undone_exactly() -> None:
    x = torch.randn(3, 5000, dtype=torch.float64)
    y = preemphasis(x, 0.98)
    assert float(y[0, 0]) == float(x[0, 0])
    torch.testing.assert_close(y[:, 1:], x[:, 1:] - 0.98 * x[:, :-1])
    torch.testing.assert_close(deemphasis(y, 0.98), x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stft_round_trip_and_unit_mask(dtype: torch.dtype) -> None:
    """ISTFT of the STFT is the input; a mask of ones over every kept bin passes everything but
    the Nyquist bin (never kept upstream), which white noise does carry."""
    torch.manual_seed(0)
    x = torch.randn(2, 30_000, dtype=dtype)
    stft = complex_stft(x, FULL_BAND)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(inverse_stft(stft, FULL_BAND, 30_000), x, rtol=0, atol=tolerance)
    ones = torch.ones(2, 1, stft.shape[1], 256, dtype=dtype)
    out = apply_mask(stft, ones, FULL_BAND, 30_000)
    nyquist_only = stft.clone()
    nyquist_only[..., :-1] = 0
    removed = inverse_stft(nyquist_only, FULL_BAND, 30_000)
    torch.testing.assert_close(out + removed, x, rtol=0, atol=tolerance * 10)


def test_float32_and_float64_agree() -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 20_000, dtype=torch.float64) * 0.1
    s64, _ = spectrogram(x, DenoiserOptions())
    s32, stft32 = spectrogram(x.float(), DenoiserOptions())
    assert s32.dtype == torch.float32 and stft32.dtype == torch.complex64
    torch.testing.assert_close(s32.double(), s64, rtol=0, atol=1e-4)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.zeros(2048), r"expected waveforms \(B, n\)"),
        (torch.zeros(1, 2048), "more than n_fft/2"),
        (torch.zeros(1, 5000, dtype=torch.int16), "floating-point"),
    ],
)
def test_bad_waveforms_are_rejected(x: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        spectrogram(x, DenoiserOptions())


def test_mask_shape_must_match_the_stft() -> None:
    stft = complex_stft(torch.zeros(1, 5000), DenoiserOptions())
    with pytest.raises(ValueError, match="does not match"):
        apply_mask(stft, torch.ones(1, 1, stft.shape[1] + 1, 256), DenoiserOptions(), 5000)
