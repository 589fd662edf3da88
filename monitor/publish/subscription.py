"""What a websocket client asked for: the filters of its ``subscribe`` message."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

KINDS = ("detection", "feed_status")
STATUSES = ("opened", "closed")


def _names(
    data: dict[str, Any], key: str, allowed: tuple[str, ...] | None = None
) -> frozenset[str] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"'{key}' must be a list of strings")
    if allowed is not None and not set(value) <= set(allowed):
        raise ValueError(f"'{key}' may only contain {', '.join(allowed)}")
    return frozenset(value)


@dataclass(frozen=True, slots=True)
class Subscription:
    feeds: frozenset[str] | None = None  # None = all
    labels: frozenset[str] | None = None
    min_score: float = 0.0  # against score.max
    statuses: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    since: str | None = None

    @classmethod
    def parse(cls, data: Any) -> Subscription:
        """Validate a client's subscribe message; ``ValueError`` says what is wrong."""
        if not isinstance(data, dict) or data.get("type") != "subscribe":
            raise ValueError('expected {"type": "subscribe", ...}')
        unknown = set(data) - {"type", "feeds", "labels", "min_score", "statuses", "kinds", "since"}
        if unknown:
            raise ValueError(f"unknown subscribe fields: {', '.join(sorted(unknown))}")
        min_score = data.get("min_score", 0.0)
        if isinstance(min_score, bool) or not isinstance(min_score, int | float):
            raise ValueError("'min_score' must be a number")
        if not math.isfinite(min_score):
            raise ValueError(f"'min_score' must be a finite number, not {min_score}")
        since = data.get("since")
        if since is not None and not isinstance(since, str):
            raise ValueError("'since' must be a message id string")
        return cls(
            feeds=_names(data, "feeds"),
            labels=_names(data, "labels"),
            min_score=float(min_score),
            statuses=_names(data, "statuses", STATUSES),
            kinds=_names(data, "kinds", KINDS),
            since=since,
        )

    def matches(self, message: dict[str, Any]) -> bool:
        kind = message.get("kind")
        if self.kinds is not None and kind not in self.kinds:
            return False
        if self.feeds is not None and message.get("feed", {}).get("node") not in self.feeds:
            return False
        if kind != "detection":
            return True
        if self.labels is not None and message.get("label") not in self.labels:
            return False
        if self.statuses is not None and message.get("status") not in self.statuses:
            return False
        return float(message.get("score", {}).get("max", 0.0)) >= self.min_score

    def describe(self) -> dict[str, Any]:
        def listed(names: frozenset[str] | None) -> list[str] | None:
            return None if names is None else sorted(names)

        return {
            "feeds": listed(self.feeds),
            "labels": listed(self.labels),
            "min_score": self.min_score,
            "statuses": listed(self.statuses),
            "kinds": listed(self.kinds),
        }
