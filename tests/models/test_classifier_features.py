"""Batched features must equal transformers' ASTFeatureExtractor, window by window."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio
from transformers import ASTFeatureExtractor

from models.classifier.features import FeatureExtractor, FeatureParams
from tests.support.classifier import DATA, read_audio, real_windows


def reference(extractor: ASTFeatureExtractor, windows: list[np.ndarray]) -> np.ndarray:
    out = extractor(windows, sampling_rate=extractor.sampling_rate, return_tensors="np")
    return out["input_values"]


@pytest.mark.parametrize(
    ("kwargs", "seconds"),
    [
        ({}, 10.24),  # AudioSet defaults, 1024 frames
        ({}, 3.0),  # shorter than max_length: zero-padded frames
        ({"num_mel_bins": 16, "max_length": 24}, 1.0),  # longer: truncated
        ({"do_normalize": False, "num_mel_bins": 64, "max_length": 100}, 0.5),
        ({"mean": 1.5, "std": 0.25, "num_mel_bins": 32, "max_length": 50}, 0.5),
    ],
)
def test_features_equal_ast_feature_extractor(kwargs: dict, seconds: float) -> None:
    extractor = ASTFeatureExtractor(**kwargs)
    ours = FeatureExtractor(FeatureParams.from_extractor(extractor))
    first, rate = read_audio(DATA / "orcasound-hls" / "normal" / "live2289.ts")
    second, _ = read_audio(DATA / "orcasound-hls" / "normal" / "live839.ts")
    audio = torch.from_numpy(np.concatenate([first, second]))
    audio16 = torchaudio.functional.resample(audio, rate, 16000).numpy()
    n = int(seconds * 16000)
    windows = [audio16[i * 7919 : i * 7919 + n].copy() for i in range(3)]

    got = ours(torch.from_numpy(np.stack(windows))).numpy()
    want = reference(extractor, windows)

    assert got.shape == want.shape == (3, extractor.max_length, extractor.num_mel_bins)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_48khz_stream_audio_is_resampled_like_torchaudio() -> None:
    extractor = ASTFeatureExtractor(num_mel_bins=64, max_length=300)
    ours = FeatureExtractor(FeatureParams.from_extractor(extractor))
    windows, rate = real_windows(4, 3 * 48000)
    assert rate == 48000
    batch = torch.from_numpy(np.stack(windows))

    got = ours(batch, sample_rate=48000).numpy()
    resampled = torchaudio.functional.resample(batch, 48000, 16000).numpy()
    want = reference(extractor, list(resampled))

    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_44k1_humpback_call_features() -> None:
    extractor = ASTFeatureExtractor()
    ours = FeatureExtractor(FeatureParams.from_extractor(extractor))
    call, rate = read_audio(DATA / "humpback-calls" / "Growl.wav")
    got = ours(torch.from_numpy(call)[None], sample_rate=rate).numpy()
    resampled = torchaudio.functional.resample(torch.from_numpy(call), rate, 16000).numpy()
    np.testing.assert_allclose(got, reference(extractor, [resampled]), rtol=0, atol=1e-5)


def test_window_length_follows_max_length() -> None:
    params = FeatureParams(max_length=1024)
    assert params.window_seconds == pytest.approx(10.24)
    assert params.window_samples == 163840
    assert FeatureParams(max_length=24).window_samples == 3840


def test_too_short_or_wrong_shape_input_is_a_clear_error() -> None:
    ours = FeatureExtractor(FeatureParams())
    with pytest.raises(ValueError, match="at least 400 samples"):
        ours(torch.zeros(2, 399))
    with pytest.raises(ValueError, match="batch, samples"):
        ours(torch.zeros(16000))


def test_features_stay_fp32_inside_a_bf16_autocast_region() -> None:
    extractor = ASTFeatureExtractor(num_mel_bins=64, max_length=300)
    ours = FeatureExtractor(FeatureParams.from_extractor(extractor))
    windows, _ = real_windows(2, 3 * 48000)
    batch = torch.from_numpy(np.stack(windows))
    plain = ours(batch, sample_rate=48000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = ours(batch, sample_rate=48000)
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, plain, rtol=0, atol=0)


def median_extractor(tmp_path) -> ASTFeatureExtractor:  # type: ignore[no-untyped-def]
    extractor = ASTFeatureExtractor(num_mel_bins=64, max_length=300)
    extractor.frequency_normalization = "median"
    extractor.save_pretrained(tmp_path)
    return ASTFeatureExtractor.from_pretrained(tmp_path)


def test_median_normalisation_is_saved_and_removes_the_recording_level(tmp_path) -> None:  # type: ignore[no-untyped-def]
    params = FeatureParams.from_extractor(median_extractor(tmp_path))
    assert params.frequency_normalization == "median"
    ours = FeatureExtractor(params)
    windows, rate = real_windows(3, 3 * 48000)
    batch = torch.from_numpy(np.stack(windows))

    got = ours(batch, sample_rate=rate)
    louder = ours(batch * 10.0, sample_rate=rate)

    assert got.shape == (3, 300, 64)
    # Each mel bin's median over the real frames is the background: 0.
    real = (3 * 16000 - 400) // 160 + 1
    np.testing.assert_allclose(got[:, :real].median(dim=1).values.numpy(), 0.0, atol=1e-5)
    # +20 dB on the whole window changes nothing.
    np.testing.assert_allclose(louder.numpy(), got.numpy(), rtol=0, atol=1e-3)
    # The plain front end does depend on the level.
    plain = FeatureExtractor(FeatureParams(num_mel_bins=64, max_length=300))
    shift = plain(batch * 10.0, sample_rate=rate) - plain(batch, sample_rate=rate)
    assert shift[:, :real].abs().min() > 0.4


def test_old_preprocessor_configs_keep_the_plain_front_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ASTFeatureExtractor(num_mel_bins=64, max_length=300).save_pretrained(tmp_path)
    params = FeatureParams.from_extractor(ASTFeatureExtractor.from_pretrained(tmp_path))
    assert params.frequency_normalization == "none"


def test_unknown_normalisation_is_refused() -> None:
    with pytest.raises(ValueError, match="frequency_normalization must be one of none, median"):
        FeatureParams(frequency_normalization="pcen")
