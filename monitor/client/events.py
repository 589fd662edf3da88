"""The wire messages (docs/detections.md) as small typed records for client code.

``parse`` takes a decoded ``detection`` or ``feed_status`` message and returns a
``DetectionEvent`` or ``FeedStatusEvent``; the full message stays in ``raw`` for anything the
records leave out (provenance, models, latency). A message of another schema version, or one
that is not a detection or feed status, is a ``ValueError`` saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from monitor.detect.records import FeedInfo, Species
from monitor.detect.wire import SCHEMA_VERSION
from monitor.timebase import parse_utc


@dataclass(frozen=True, slots=True)
class DetectionEvent:
    message_id: str  # unique per message: "<id>.opened" / "<id>.closed"
    id: str  # the detection (same in its opened and closed messages)
    status: Literal["opened", "closed"]
    feed: FeedInfo
    label: str
    species: Species | None
    start_utc: datetime
    end_utc: datetime
    score_max: float
    score_mean: float
    close_reason: str | None
    emitted_utc: datetime
    raw: dict[str, Any]

    @property
    def duration_s(self) -> float:
        return (self.end_utc - self.start_utc).total_seconds()


@dataclass(frozen=True, slots=True)
class FeedStatusEvent:
    message_id: str
    feed: FeedInfo
    state: str  # "Up", "Lagged", "Silent", "Offline", "Absent", "Unintelligible"
    since_utc: datetime
    details: dict[str, Any]
    emitted_utc: datetime
    raw: dict[str, Any]


Event = DetectionEvent | FeedStatusEvent


def _feed(data: dict[str, Any]) -> FeedInfo:
    return FeedInfo(data["node"], data["display_name"], data.get("lat"), data.get("lon"))


def parse(message: dict[str, Any]) -> Event:
    """A wire message as a record; ``ValueError`` for anything else."""
    version = message.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"schema_version {version!r}: this client reads {SCHEMA_VERSION}")
    kind = message.get("kind")
    try:
        if kind == "detection":
            species = message["species"]
            return DetectionEvent(
                message_id=message["message_id"],
                id=message["id"],
                status=message["status"],
                feed=_feed(message["feed"]),
                label=message["label"],
                species=None if species is None else Species(**species),
                start_utc=parse_utc(message["start_utc"]),
                end_utc=parse_utc(message["end_utc"]),
                score_max=float(message["score"]["max"]),
                score_mean=float(message["score"]["mean"]),
                close_reason=message.get("close_reason"),
                emitted_utc=parse_utc(message["emitted_utc"]),
                raw=message,
            )
        if kind == "feed_status":
            return FeedStatusEvent(
                message_id=message["message_id"],
                feed=_feed(message["feed"]),
                state=message["state"],
                since_utc=parse_utc(message["since_utc"]),
                details=dict(message.get("details") or {}),
                emitted_utc=parse_utc(message["emitted_utc"]),
                raw=message,
            )
    except (KeyError, TypeError) as error:
        raise ValueError(f"a {kind} message without a usable {error}") from error
    raise ValueError(f"kind {kind!r} is not a detection or feed_status message")
