"""Sortable message ids: UUIDv7 (RFC 9562) built from a moment and 74 bits of entropy.

Detection ids use the detection's start (feed time) and bits hashed from what identifies the
detection, so replaying the same audio with the same model yields the same id and the outputs
de-duplicate it. Other messages use random bits.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import datetime

from monitor.timebase import to_epoch_ms

_RAND_BITS = 74  # 12 bits rand_a + 62 bits rand_b


def uuid7(moment: datetime, entropy: bytes | None = None) -> uuid.UUID:
    """A version-7 UUID whose 48-bit prefix is ``moment`` in Unix milliseconds."""
    millis = to_epoch_ms(moment)
    if not 0 <= millis < 1 << 48:
        raise ValueError(f"{moment!r} is outside the UUIDv7 time range")
    raw = entropy if entropy is not None else os.urandom(10)
    rand = int.from_bytes(raw[:10].ljust(10, b"\0"), "big") & ((1 << _RAND_BITS) - 1)
    rand_a = rand >> 62
    rand_b = rand & ((1 << 62) - 1)
    value = (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return uuid.UUID(int=value)


def detection_id(moment: datetime, *parts: str) -> str:
    """Deterministic UUIDv7 for a detection that starts at ``moment``, identified by ``parts``."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return str(uuid7(moment, digest))


def random_id(moment: datetime) -> str:
    return str(uuid7(moment))


def uuid7_millis(value: str) -> int:
    """The Unix milliseconds inside a UUIDv7 string."""
    parsed = uuid.UUID(value)
    if parsed.version != 7:
        raise ValueError(f"{value!r} is not a UUIDv7")
    return parsed.int >> 80
