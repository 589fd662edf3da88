"""The one retry backoff: exponential up to a cap, with full or proportional jitter."""

from __future__ import annotations

import random

from monitor.backoff import backoff_delay


def test_full_jitter_is_capped_and_spread() -> None:
    rng = random.Random(7)
    delays = [
        backoff_delay(attempt, base_s=0.5, max_s=4.0, rng=rng)
        for attempt in range(8)
        for _ in range(50)
    ]
    assert min(delays) >= 0.0 and max(delays) <= 4.0
    early = [backoff_delay(0, base_s=0.5, max_s=4.0, rng=rng) for _ in range(200)]
    assert max(early) <= 0.5 and len({round(d, 6) for d in early}) > 100


def test_proportional_jitter_grows_caps_and_spreads() -> None:
    rng = random.Random(1)
    for attempt, base in [(0, 1), (1, 2), (2, 4), (4, 16), (5, 30), (19, 30)]:
        delays = [
            backoff_delay(attempt, base_s=1, max_s=30, rng=rng, factor=2, jitter=0.2)
            for _ in range(200)
        ]
        assert min(delays) >= base * 0.8 and max(delays) <= base * 1.2
        assert max(delays) - min(delays) > base * 0.2  # the jitter really spreads retries


def test_a_factor_of_one_keeps_the_delay_flat() -> None:
    rng = random.Random(3)
    delays = [backoff_delay(a, base_s=2, max_s=60, rng=rng, factor=1, jitter=0) for a in range(9)]
    assert delays == [2.0] * 9
