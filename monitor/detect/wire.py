"""The versioned JSON messages hydromon publishes: ``detection`` and ``feed_status``.

``encode`` is the one place where a record (``Detection``, ``FeedStatus``) becomes the dict that
every output writes. The shape is fixed by ``monitor/schemas/*.schema.json``; ``SCHEMA_VERSION``
changes only when a field is removed or changes meaning (adding an optional field does not
bump it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from monitor.detect.records import (
    Detection,
    FeedInfo,
    FeedState,
    FeedStatus,
    Message,
)
from monitor.timebase import format_utc, require_aware, to_epoch_ms

SCHEMA_VERSION = 1

# The wire spells the states capitalised; ``unknown`` is never published.
WIRE_STATES: dict[FeedState, str] = {
    state: state.value.capitalize() for state in FeedState if state is not FeedState.UNKNOWN
}


def wire_moment(moment: datetime) -> datetime:
    """``moment`` as the wire's ``*_utc`` text holds it: cut to whole milliseconds."""
    moment = require_aware(moment)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def wire_score(score: float) -> float:
    """A score as the wire carries it (six decimals)."""
    return round(score, 6)


def _ms_between(later: datetime, earlier: datetime) -> int:
    return round((require_aware(later) - require_aware(earlier)).total_seconds() * 1000)


def message_key(message: dict[str, Any]) -> str:
    """The id that makes a message unique (outputs de-duplicate on it)."""
    return str(message["message_id"])


def encode(message: Message) -> dict[str, Any]:
    """The wire form of a record (what the JSON Schemas describe)."""
    if isinstance(message, Detection):
        return _detection(message)
    return _feed_status(message)


def _detection(detection: Detection) -> dict[str, Any]:
    """``latency_ms``: emission − end of the audio that triggered it; ``pipeline_lag_ms``:
    scoring − that audio end (the part of the latency spent before the event builder)."""
    summary, status = detection.summary, detection.status
    emitted_utc, audio_end_utc = detection.emitted_utc, detection.audio_end_utc
    scored_utc = detection.scored_utc
    species = summary.species
    media = detection.media
    folder_epochs = sorted({use.folder_epoch for use in summary.segments})
    buckets = sorted({use.bucket for use in summary.segments})
    message: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kind": "detection",
        "message_id": detection.message_id,
        "id": summary.id,
        "status": status,
        "close_reason": detection.close_reason,
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
        "score": {"max": wire_score(summary.score_max), "mean": wire_score(summary.score_mean)},
        "window_count": summary.window_count,
        "positive_window_count": summary.positive_window_count,
        "window_s": round(summary.window_s, 6),
        "hop_s": round(summary.hop_s, 6),
        "threshold": summary.threshold,
        "min_positive_windows": summary.min_positive_windows,
        "contains_gap": summary.contains_gap,
        "gap_s": round(summary.gap_s, 3),
        "models": detection.models.as_dict(),
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
    if media is not None:  # an optional field: only closed detections with files carry it
        message["media"] = {**media.urls(), "clip_start_utc": format_utc(media.clip_start_utc)}
    return message


def feed_dict(feed: FeedInfo) -> dict[str, Any]:
    return {
        "node": feed.node,
        "display_name": feed.display_name,
        "lat": feed.lat,
        "lon": feed.lon,
    }


def _feed_status(status: FeedStatus) -> dict[str, Any]:
    if status.state not in WIRE_STATES:
        raise ValueError(f"feed state {status.state!r} is not published: it says nothing yet")
    since = wire_moment(status.since_utc)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "feed_status",
        "message_id": status.message_id,
        "feed": feed_dict(status.feed),
        "state": WIRE_STATES[status.state],
        "since_utc": format_utc(since),
        "since_epoch_ms": to_epoch_ms(since),
        "details": dict(status.details),
        "emitted_utc": format_utc(status.emitted_utc),
    }
