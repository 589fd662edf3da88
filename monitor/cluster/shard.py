"""Live feeds across daemons: shard ``i/n`` follows the feeds whose stable hash is ``i`` mod n.

The hash is SHA-256 of the node name (never Python's ``hash()``, which is salted per process),
so every daemon, on any machine and Python, puts each feed in the same shard.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Shard:
    index: int  # 0-based
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, node: str) -> bool:
        return shard_of(node, self.count) == self.index

    def select(self, nodes: list[str]) -> list[str]:
        return [node for node in nodes if self.owns(node)]


def shard_of(node: str, count: int) -> int:
    digest = hashlib.sha256(node.encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(text: str) -> Shard:
    """``"i/n"`` with 0 ≤ i < n → Shard; else ``ValueError`` saying what is expected."""
    index, sep, count = text.strip().partition("/")
    try:
        shard = Shard(int(index), int(count))
    except ValueError:
        shard = None
    if not sep or shard is None or shard.count < 1 or not 0 <= shard.index < shard.count:
        raise ValueError(f"shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/2")
    return shard
