"""Per-feed state machine: Absent, Offline, Silent, Unintelligible, Lagged, Up.

A ``FeedHealth`` is told what the rest of the daemon sees (``latest.txt`` missing, playlist
modification times, audio verdicts, how far processing is behind real time, gaps, restarts,
errors) and works out one state, worst condition first:

    Absent          no ``latest.txt`` (the node never started or was removed)
    Offline         the playlist has not been modified for more than ``offline_after_s``
    Silent          the last segment's audio verdict is Silent
    Unintelligible  the last segment's audio verdict is Unintelligible (hum only)
    Lagged          processing is more than ``lagged_after_s`` behind real time
    Up              none of the above
    Unknown         nothing heard yet

Every change of state returns a ``FeedStatus`` record that the daemon publishes (the outputs
encode it as a ``feed_status`` message). Offline and Lagged depend on the clock, so the daemon
also calls ``evaluate(now)`` periodically (``tick``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from monitor.detect.records import FeedInfo, FeedState, FeedStatus
from monitor.health.analysis import AnalysisSettings, AudioVerdict, SegmentAnalysis
from monitor.timebase import format_utc, require_aware


@dataclass(frozen=True, slots=True)
class HealthSettings:
    offline_after_s: float = field(default=120.0, metadata={"gt": 0.0})
    lagged_after_s: float = field(default=120.0, metadata={"gt": 0.0})
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)


@dataclass(frozen=True, slots=True)
class LastError:
    at: datetime
    message: str
    hint: str


# What to tell an operator for each state (the /status "hint").
HINTS: dict[FeedState, str] = {
    FeedState.UNKNOWN: "no data yet: the feed task has not reported",
    FeedState.ABSENT: "no latest.txt under the node prefix: the node never started or was renamed",
    FeedState.OFFLINE: "the playlist stopped changing: the node stopped uploading (power, network)",
    FeedState.SILENT: "the audio is (near) silent: hydrophone or sound card fault",
    FeedState.UNINTELLIGIBLE: "only 60 Hz hum: usually a failing hydrophone cable",
    FeedState.LAGGED: "processing is behind real time: too little CPU, slow S3, or a large backlog",
    FeedState.UP: "",
}


@dataclass(slots=True)
class FeedHealth:
    """What is known about one feed; mutated only from the event loop."""

    feed: str
    settings: HealthSettings = field(default_factory=HealthSettings)
    state: FeedState = FeedState.UNKNOWN
    since: datetime | None = None
    latest_missing: bool = False
    playlist_modified: datetime | None = None
    audio: AudioVerdict | None = None
    audio_details: dict[str, object] = field(default_factory=dict)
    last_segment_start: datetime | None = None
    processed_until: datetime | None = None
    lag_s: float | None = None
    gaps: int = 0
    gaps_by_reason: dict[str, int] = field(default_factory=dict)
    restarts: int = 0
    last_error: LastError | None = None

    def note_latest_missing(self, now: datetime) -> FeedStatus | None:
        self.latest_missing = True
        return self.evaluate(now)

    def note_latest_present(self, now: datetime) -> FeedStatus | None:
        """``latest.txt`` exists (again)."""
        self.latest_missing = False
        return self.evaluate(now)

    def note_playlist(self, last_modified: datetime, now: datetime) -> FeedStatus | None:
        """A playlist was read; ``last_modified`` is its S3 Last-Modified time."""
        self.latest_missing = False
        self.playlist_modified = require_aware(last_modified)
        return self.evaluate(now)

    def note_audio(
        self, analysis: SegmentAnalysis, segment_start: datetime, now: datetime
    ) -> FeedStatus | None:
        self.latest_missing = False
        self.audio = analysis.verdict
        self.audio_details = analysis.details()
        self.last_segment_start = require_aware(segment_start)
        return self.evaluate(now)

    def note_processed(self, until: datetime, now: datetime) -> FeedStatus | None:
        """Audio up to ``until`` has been scored."""
        self.processed_until = require_aware(until)
        return self.evaluate(now)

    def note_gap(self, reason: str) -> None:
        self.gaps += 1
        self.gaps_by_reason[reason] = self.gaps_by_reason.get(reason, 0) + 1

    def note_restart(self) -> None:
        self.restarts += 1

    def note_error(self, message: str, now: datetime, hint: str = "") -> None:
        self.last_error = LastError(require_aware(now), message, hint)

    def condition(self, now: datetime) -> tuple[FeedState, dict[str, object]]:
        """The state the facts call for at ``now``, with the facts that decided it."""
        now = require_aware(now)
        if self.processed_until is not None:
            self.lag_s = max(0.0, (now - self.processed_until).total_seconds())
        if self.latest_missing:
            return FeedState.ABSENT, {"reason": "latest.txt missing"}
        if self.playlist_modified is not None:
            age = (now - self.playlist_modified).total_seconds()
            if age > self.settings.offline_after_s:
                return FeedState.OFFLINE, {
                    "reason": "playlist not modified",
                    "playlist_age_s": round(age, 1),
                    "playlist_modified": format_utc(self.playlist_modified),
                }
        if self.audio is AudioVerdict.SILENT:
            return FeedState.SILENT, {"reason": "audio silent", **self.audio_details}
        if self.audio is AudioVerdict.UNINTELLIGIBLE:
            return FeedState.UNINTELLIGIBLE, {"reason": "hum only", **self.audio_details}
        if self.lag_s is not None and self.lag_s > self.settings.lagged_after_s:
            return FeedState.LAGGED, {"reason": "behind real time", "lag_s": round(self.lag_s, 1)}
        if self.audio is AudioVerdict.UP or self.processed_until is not None:
            return FeedState.UP, {}
        return FeedState.UNKNOWN, {}

    def evaluate(self, now: datetime) -> FeedStatus | None:
        """Move to the state the facts call for; the change if it changed. The record names the
        feed by its node only: the publisher knows its display name and place."""
        state, details = self.condition(now)
        if state is self.state:
            return None
        previous, self.state, self.since = self.state, state, require_aware(now)
        return FeedStatus(
            feed=FeedInfo.unknown(self.feed),
            state=state,
            previous=previous,
            since_utc=self.since,
            emitted_utc=self.since,
            details={"hint": HINTS[state], **details},
        )

    def snapshot(self) -> dict[str, object]:
        """The feed's entry in ``/status``."""
        return {
            "state": str(self.state),
            "since": format_utc(self.since) if self.since else None,
            "hint": HINTS[self.state],
            "last_segment_start": _iso(self.last_segment_start),
            "processed_until": _iso(self.processed_until),
            "lag_s": None if self.lag_s is None else round(self.lag_s, 1),
            "playlist_modified": _iso(self.playlist_modified),
            "audio": None
            if self.audio is None
            else {"verdict": str(self.audio), **self.audio_details},
            "gaps": self.gaps,
            "gaps_by_reason": dict(self.gaps_by_reason),
            "restarts": self.restarts,
            "last_error": None
            if self.last_error is None
            else {
                "at": format_utc(self.last_error.at),
                "message": self.last_error.message,
                "hint": self.last_error.hint,
            },
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else format_utc(moment)
