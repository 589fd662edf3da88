"""Synthetic sounds for window mixing: seeded, finite, of the imitated animal's duration and band,
and used by the mixer at the configured fractions."""

from __future__ import annotations

from dataclasses import replace

import torch

from training.augment import MixSettings, WindowMixer
from training.synthetic_calls import humpback_like, orca_like

RATE = 16000


def _band_share(wave: torch.Tensor, low: float, high: float) -> float:
    power = torch.fft.rfft(wave).abs().pow(2)
    freqs = torch.fft.rfftfreq(wave.numel(), 1 / RATE)
    return float(power[(freqs >= low) & (freqs < high)].sum() / power.sum())


def _sounds(make, count: int = 60) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return [make(RATE, generator) for _ in range(count)]


def test_the_same_seed_makes_the_same_sounds() -> None:
    for make in (humpback_like, orca_like):
        first, second = _sounds(make, 5), _sounds(make, 5)
        assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_humpback_like_units_are_low_and_as_long_as_the_catalogue_units() -> None:
    sounds = _sounds(humpback_like)
    assert all(torch.isfinite(s).all() and s.abs().max() > 0 for s in sounds)
    assert all(0.3 * RATE <= s.numel() <= 4.0 * RATE + 1 for s in sounds)
    low = [_band_share(s, 30.0, 4000.0) for s in sounds]
    assert sorted(low)[len(low) // 10] > 0.8  # nine in ten keep > 80 % of their power < 4 kHz


def test_orca_like_calls_carry_their_energy_above_a_kilohertz() -> None:
    sounds = _sounds(orca_like)
    assert all(torch.isfinite(s).all() and s.abs().max() > 0 for s in sounds)
    high = [_band_share(s, 1000.0, RATE / 2) for s in sounds]
    assert sorted(high)[len(high) // 10] > 0.8


def test_mixer_uses_synthetic_sounds_when_no_recording_is_given() -> None:
    background = torch.randn(RATE * 10, generator=torch.Generator().manual_seed(1)) * 0.01
    settings = MixSettings(
        synthetic_fraction=1.0,
        synthetic_negative_fraction=1.0,
        call_snr_db=(20.0, 20.0),
        gain_db=(0.0, 0.0),
        extra_background_prob=0.0,
        hum_prob=0.0,
    )
    mixer = WindowMixer([], [background], [], [], RATE, RATE * 5, settings)
    generator = torch.Generator().manual_seed(2)
    waves, labels = mixer.batch(16, generator)
    assert waves.shape == (16, RATE * 5) and set(labels.tolist()) == {0, 1}
    calls = waves[labels == 1]
    assert all(float(w.abs().max()) > 3 * float(background.abs().max()) for w in calls)
    negative = mixer.hard_negative(generator)
    assert negative is not None and negative.abs().max() > 0
    real_only = WindowMixer(
        [], [background], [], [], RATE, RATE * 5, replace(settings, synthetic_negative_fraction=0.0)
    )
    assert real_only.hard_negative(generator) is None  # no recordings, no synthetic ones
