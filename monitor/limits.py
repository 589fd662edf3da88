"""A setting's bounds, stated once in its field's metadata and checked by one function.

``field(default=8, metadata={"min": 1})``: ``min``/``max`` (inclusive), ``gt`` (exclusive),
``choices``. The config loader checks them with the setting's name and source; a settings class
built in code calls ``check_limits(self)`` in ``__post_init__`` so it cannot hold a value the
loader would refuse. (Standard library only: every component's settings import this.)"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any


def describe_limits(metadata: Mapping[str, Any]) -> str:
    """The bounds in words, e.g. ``≥ 1``, ``in 0..1``, ``> 0.0``."""
    parts = []
    if "gt" in metadata:
        parts.append(f"> {metadata['gt']}")
    if "min" in metadata and "max" in metadata:
        parts.append(f"in {metadata['min']}..{metadata['max']}")
    elif "min" in metadata:
        parts.append(f"≥ {metadata['min']}")
    elif "max" in metadata:
        parts.append(f"≤ {metadata['max']}")
    if "choices" in metadata:
        shown = (json.dumps(c, ensure_ascii=False, default=str) for c in metadata["choices"])
        parts.append("one of " + ", ".join(shown))
    return " ".join(parts)


def within_limits(value: Any, metadata: Mapping[str, Any]) -> bool:
    """Whether ``value`` keeps the bounds (``None``, for an unset optional, always does). A
    bounded number is never NaN (it compares false with everything and would slip through)."""
    if value is None:
        return True
    if "choices" in metadata and value not in metadata["choices"]:
        return False
    if isinstance(value, bool) or not isinstance(value, int | float):
        return True
    bounded = any(key in metadata for key in ("gt", "min", "max"))
    if bounded and math.isnan(value):
        return False
    return not (
        ("gt" in metadata and not value > metadata["gt"])
        or ("min" in metadata and value < metadata["min"])
        or ("max" in metadata and value > metadata["max"])
    )


def check_limits(settings: Any) -> None:
    """Raise ``ValueError("<field>: expected … got …")`` for the first field of the dataclass
    ``settings`` outside its bounds."""
    for f in dataclasses.fields(settings):
        if not f.metadata:
            continue
        value = getattr(settings, f.name)
        if not within_limits(value, f.metadata):
            raise ValueError(f"{f.name}: expected {describe_limits(f.metadata)}, got {value!r}")
