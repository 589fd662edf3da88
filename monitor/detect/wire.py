"""The versioned JSON messages hydromon publishes: ``detection`` and ``feed_status``.

The shape is fixed by ``monitor/schemas/*.schema.json``; ``SCHEMA_VERSION`` changes only when a
field is removed or changes meaning (adding an optional field does not bump it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from monitor.detect.ids import random_id
from monitor.detect.records import FeedInfo, PipelineModels, Species
from monitor.timebase import format_utc, require_aware, to_epoch_ms

SCHEMA_VERSION = 1

DetectionStatus = Literal["opened", "closed"]
CloseReason = Literal["quiet", "max_duration", "gap", "shutdown"]
FEED_STATES = ("Absent", "Offline", "Silent", "Unintelligible", "Lagged", "Up")


@dataclass(frozen=True, slots=True)
class SegmentUse:
    """The part of one segment that a detection's windows read."""

    bucket: str
    key: str
    folder_epoch: int
    number: int
    offset_s: float
    duration_s: float


@dataclass(frozen=True, slots=True)
class DetectionSummary:
    """Everything a detection message reports, frozen at the moment it is emitted."""

    id: str
    feed: FeedInfo
    label: str
    species: Species | None
    start_utc: datetime
    end_utc: datetime
    score_max: float
    score_mean: float
    window_count: int
    positive_window_count: int
    window_s: float
    hop_s: float
    threshold: float
    min_positive_windows: int
    contains_gap: bool
    gap_s: float
    previous_id: str | None
    segments: tuple[SegmentUse, ...]


def _ms_between(later: datetime, earlier: datetime) -> int:
    return round((require_aware(later) - require_aware(earlier)).total_seconds() * 1000)


def message_key(message: dict[str, Any]) -> str:
    """The id that makes a message unique (outputs de-duplicate on it)."""
    return str(message["message_id"])


def detection_message(
    summary: DetectionSummary,
    *,
    status: DetectionStatus,
    models: PipelineModels,
    emitted_utc: datetime,
    audio_end_utc: datetime,
    scored_utc: datetime | None,
    close_reason: CloseReason | None = None,
) -> dict[str, Any]:
    """``latency_ms``: emission − end of the audio that triggered it; ``pipeline_lag_ms``:
    scoring − that audio end (the part of the latency spent before the event builder)."""
    species = summary.species
    folder_epochs = sorted({use.folder_epoch for use in summary.segments})
    buckets = sorted({use.bucket for use in summary.segments})
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "detection",
        "message_id": f"{summary.id}.{status}",
        "id": summary.id,
        "status": status,
        "close_reason": close_reason,
        "previous_id": summary.previous_id,
        "feed": feed_dict(summary.feed),
        "label": summary.label,
        "species": None
        if species is None
        else {
            "common_name": species.common_name,
            "scientific_name": species.scientific_name,
            "itis_tsn": species.itis_tsn,
        },
        "start_utc": format_utc(summary.start_utc),
        "end_utc": format_utc(summary.end_utc),
        "start_epoch_ms": to_epoch_ms(summary.start_utc),
        "end_epoch_ms": to_epoch_ms(summary.end_utc),
        "duration_s": round((summary.end_utc - summary.start_utc).total_seconds(), 3),
        "score": {"max": round(summary.score_max, 6), "mean": round(summary.score_mean, 6)},
        "window_count": summary.window_count,
        "positive_window_count": summary.positive_window_count,
        "window_s": round(summary.window_s, 6),
        "hop_s": round(summary.hop_s, 6),
        "threshold": summary.threshold,
        "min_positive_windows": summary.min_positive_windows,
        "contains_gap": summary.contains_gap,
        "gap_s": round(summary.gap_s, 3),
        "models": models.as_dict(),
        "provenance": {
            "bucket": buckets[0] if len(buckets) == 1 else None,
            "buckets": buckets,
            "folder_epochs": folder_epochs,
            "segments": [
                {
                    "bucket": use.bucket,
                    "key": use.key,
                    "folder_epoch": use.folder_epoch,
                    "number": use.number,
                    "offset_s": round(use.offset_s, 6),
                    "duration_s": round(use.duration_s, 6),
                }
                for use in summary.segments
            ],
        },
        "emitted_utc": format_utc(emitted_utc),
        "latency_ms": _ms_between(emitted_utc, audio_end_utc),
        "pipeline_lag_ms": None if scored_utc is None else _ms_between(scored_utc, audio_end_utc),
    }


def feed_dict(feed: FeedInfo) -> dict[str, Any]:
    return {
        "node": feed.node,
        "display_name": feed.display_name,
        "lat": feed.lat,
        "lon": feed.lon,
    }


def feed_status_message(
    feed: FeedInfo,
    state: str,
    since_utc: datetime,
    *,
    emitted_utc: datetime,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A feed changed state (produced by the health monitor, published by the outputs)."""
    if state not in FEED_STATES:
        raise ValueError(f"bad feed state {state!r}: use one of {', '.join(FEED_STATES)}")
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "feed_status",
        "message_id": random_id(emitted_utc),
        "feed": feed_dict(feed),
        "state": state,
        "since_utc": format_utc(since_utc),
        "since_epoch_ms": to_epoch_ms(since_utc),
        "details": dict(details or {}),
        "emitted_utc": format_utc(emitted_utc),
    }
