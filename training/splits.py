"""Split by recording, never by clip, so no recording's audio is in two splits."""

from __future__ import annotations

import random

from training.manifest import SPLITS


def split_recordings(
    recordings: list[str], fractions: tuple[float, ...], seed: int
) -> dict[str, str]:
    """Deterministic (sorted, then shuffled with ``seed``); largest-remainder counts; every split
    with a non-zero fraction gets at least one recording, or this is an error."""
    if len(fractions) != len(SPLITS) or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"split fractions must be three non-negative numbers, got {fractions}")
    names = sorted(set(recordings))
    wanted = [index for index, fraction in enumerate(fractions) if fraction > 0]
    if len(names) < len(wanted):
        raise ValueError(
            f"{len(names)} recording(s) cannot fill {len(wanted)} splits by recording; "
            "add recordings or set a split fraction to 0"
        )
    total = sum(fractions)
    exact = [len(names) * fraction / total for fraction in fractions]
    counts = [int(value) for value in exact]
    for index in sorted(range(len(SPLITS)), key=lambda i: exact[i] - counts[i], reverse=True):
        if sum(counts) == len(names):
            break
        counts[index] += 1
    for index in wanted:
        if counts[index] == 0:
            donor = max(range(len(SPLITS)), key=lambda i: counts[i])
            counts[donor] -= 1
            counts[index] += 1
    random.Random(seed).shuffle(names)
    assignment: dict[str, str] = {}
    start = 0
    for split, count in zip(SPLITS, counts, strict=True):
        for name in names[start : start + count]:
            assignment[name] = split
        start += count
    return assignment
