"""All feeds' health in one place, plus the daemon's readiness, for /status and the metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from monitor.detect.records import FeedStatus
from monitor.health.feed_state import FeedHealth, FeedState, HealthSettings
from monitor.health.metrics import Metrics
from monitor.timebase import format_utc, utc_now


@dataclass(slots=True)
class HealthBoard:
    settings: HealthSettings = field(default_factory=HealthSettings)
    metrics: Metrics | None = None
    started: datetime = field(default_factory=utc_now)
    engine_loaded: bool = False
    ingest_started: bool = False
    stopping: bool = False  # draining after SIGTERM: no longer ready (take no new clients)
    feeds: dict[str, FeedHealth] = field(default_factory=dict)

    def feed(self, name: str) -> FeedHealth:
        if name not in self.feeds:
            self.feeds[name] = FeedHealth(name, self.settings)
            if self.metrics is not None:
                self.metrics.set_feed_state(name, FeedState.UNKNOWN)
        return self.feeds[name]

    @property
    def ready(self) -> bool:
        return self.engine_loaded and self.ingest_started and not self.stopping

    def changed(self, change: FeedStatus | None) -> FeedStatus | None:
        """Pass a feed's change (or None) through, updating the metrics."""
        if change is not None and self.metrics is not None:
            self.metrics.set_feed_state(change.feed.node, change.state)
        return change

    def tick(self, now: datetime) -> list[FeedStatus]:
        """Re-evaluate the clock-driven states (Offline, Lagged); the resulting changes."""
        messages = []
        for health in self.feeds.values():
            message = self.changed(health.evaluate(now))
            if message is not None:
                messages.append(message)
            if self.metrics is not None and health.lag_s is not None:
                self.metrics.set_lag(health.feed, health.lag_s)
        return messages

    def status(self, now: datetime) -> dict[str, object]:
        return {
            "now": format_utc(now),
            "started": format_utc(self.started),
            "ready": self.ready,
            "engine_loaded": self.engine_loaded,
            "ingest_started": self.ingest_started,
            "stopping": self.stopping,
            "feeds": {name: self.feeds[name].snapshot() for name in sorted(self.feeds)},
        }
