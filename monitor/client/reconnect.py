"""How long a client waits before reconnecting: from 0.5 s doubling to 30 s, ±20 % jitter so
that many clients of one restarted server do not all come back at the same moment."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

from monitor.backoff import backoff_delay

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0

Delays = Callable[[], float]


def reconnect_delays() -> Delays:
    """A fresh sequence of delays (start one again after each successful connection)."""
    attempts = itertools.count()
    rng = random.Random()
    return lambda: backoff_delay(
        next(attempts), base_s=BACKOFF_START_S, max_s=BACKOFF_MAX_S, rng=rng, jitter=0.2
    )
