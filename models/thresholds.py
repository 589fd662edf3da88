"""What a detection threshold is: a number in 0..1 (standard library only, so the config, the
bundle reader and the classifier loader check it alike)."""

from __future__ import annotations

import math
from collections.abc import Mapping


def is_threshold(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and not math.isnan(value)
        and 0.0 <= value <= 1.0
    )


def bad_thresholds(table: Mapping[str, object]) -> dict[str, object]:
    """The entries of ``label → threshold`` that are not thresholds."""
    return {label: value for label, value in table.items() if not is_threshold(value)}
