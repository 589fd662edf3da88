"""How long to wait before a retry: exponential growth up to a cap, with jitter so that many
clients of one restarted server do not all come back at the same moment."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int,
    *,
    base_s: float,
    max_s: float,
    rng: random.Random,
    factor: float = 2.0,
    jitter: float | None = None,
) -> float:
    """The delay before retry ``attempt`` (counted from 0): ``base_s·factor^attempt`` capped at
    ``max_s``; ``jitter=None`` draws it uniformly in [0, that] ("full jitter"), a fraction
    ``jitter`` spreads it by ± that fraction."""
    capped = min(max_s, base_s * factor**attempt)
    if jitter is None:
        return rng.uniform(0.0, capped)
    spread = capped * jitter
    return max(0.0, capped + rng.uniform(-spread, spread))
