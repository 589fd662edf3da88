"""Window mixing's background splice: a cut to another background at a level step within ±6 dB,
as the benchmark's rotated streams (and recorder glitches) have."""

from __future__ import annotations

import math

import torch

from training.augment import MixSettings, WindowMixer

RATE = 16000


def test_splice_cuts_to_another_background_at_a_bounded_level_step() -> None:
    quiet, loud = torch.full((RATE * 8,), 0.01), torch.full((RATE * 8,), 0.05)
    settings = MixSettings(splice_prob=1.0, extra_background_prob=0.0, hum_prob=0.0)
    mixer = WindowMixer([quiet], [quiet, loud], [], [], RATE, RATE * 5, settings)
    generator = torch.Generator().manual_seed(4)
    steps = []
    for _ in range(20):
        window = mixer.background(generator)
        first = float(window[0])
        assert math.isclose(first, 0.01, rel_tol=1e-6) or math.isclose(
            first, 0.05, rel_tol=1e-6
        )  # its own level kept
        levels = torch.unique(window)
        assert len(levels) <= 2
        steps.append(20 * math.log10(float(window[-1]) / first))
    assert all(abs(step) <= 6.0 + 1e-3 for step in steps)
    assert sum(abs(step) > 0.5 for step in steps) >= 15  # a real step, not a copy


def test_no_splice_by_default() -> None:
    quiet = torch.full((RATE * 8,), 0.01)
    mixer = WindowMixer([quiet], [quiet], [], [], RATE, RATE * 5, MixSettings(hum_prob=0.0))
    window = mixer.background(torch.Generator().manual_seed(1))
    assert torch.unique(window).numel() == 1


def test_hard_negatives_high_passed_lose_their_low_band_and_keep_their_call() -> None:
    from training.train_classifier import high_passed

    rate = 16_000
    t = torch.arange(rate * 2) / rate
    rumble = 10.0 * torch.sin(2 * math.pi * 80.0 * t)  # the recorder's loud low band
    call = 0.5 * torch.sin(2 * math.pi * 2_500.0 * t)  # the animal, 26 dB under it
    filtered = high_passed(rumble + call, rate, 500.0)

    def band_power(wave: torch.Tensor, low: float, high: float) -> float:
        spectrum = torch.fft.rfft(wave).abs() ** 2
        freqs = torch.fft.rfftfreq(wave.numel(), 1 / rate)
        return float(spectrum[(freqs >= low) & (freqs < high)].sum())

    assert band_power(filtered, 0, 200) < 1e-4 * band_power(rumble + call, 0, 200)
    assert math.isclose(
        band_power(filtered, 2_000, 3_000), band_power(call, 2_000, 3_000), rel_tol=1e-3
    )
    assert high_passed(rumble, rate, 0.0) is rumble


def test_hard_negative_high_pass_must_be_below_nyquist() -> None:
    import pytest

    from training.train_classifier import high_passed

    with pytest.raises(ValueError, match="hard_negative_highpass_hz"):
        high_passed(torch.zeros(100), 16_000, 8_000.0)


def test_centred_sounds_sit_mid_window_within_the_jitter() -> None:
    quiet = torch.zeros(RATE * 8)
    burst = torch.ones(RATE)  # 1 s in a 5 s window: centred, it starts at 2 s ± 0.5 s
    settings = MixSettings(centred_fraction=1.0, extra_background_prob=0.0, hum_prob=0.0)
    mixer = WindowMixer([burst], [quiet], [], [], RATE, RATE * 5, settings)
    generator = torch.Generator().manual_seed(1)
    starts = []
    for _ in range(50):
        window = mixer.place(quiet[: RATE * 5] + 1e-3, burst, 10.0, generator)
        starts.append(int(torch.nonzero(window > 2e-3)[0]) / RATE)
    assert all(1.5 - 1e-3 <= s <= 2.5 + 1e-3 for s in starts)
    assert max(starts) - min(starts) > 0.5  # jittered, not one place
    uniform_mixer = WindowMixer([burst], [quiet], [], [], RATE, RATE * 5, MixSettings())
    spread = [
        int(
            torch.nonzero(
                uniform_mixer.place(quiet[: RATE * 5] + 1e-3, burst, 10.0, generator) > 2e-3
            )[0]
        )
        / RATE
        for _ in range(50)
    ]
    assert min(spread) < 1.0 and max(spread) > 3.0  # by default anywhere in the window
