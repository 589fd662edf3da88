"""Prometheus metrics, in a registry of hydromon's own (never the process-global one).

One ``Metrics`` object per daemon; the rest of the code calls its small methods. Names follow
Prometheus conventions: ``hydromon_`` prefix, base units (seconds, bytes), ``_total`` counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    GCCollector,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.health.feed_state import FeedState

CONTENT_TYPE = CONTENT_TYPE_LATEST

_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class RequestCounts(Protocol):
    """The S3 store's running request counts (``monitor.ingest.s3.RequestStats``)."""

    gets: int
    lists: int
    retries: int
    not_modified: int
    not_found: int
    too_large: int
    rejected: Mapping[str, int]  # bucket content refused by the readers, by kind


class TaskRuns(Protocol):
    """A supervised task's running counts (``monitor.runtime.supervisor.TaskHealth``)."""

    runs: int


class _Totals(Collector):
    """Counters read, at each scrape, from totals another part keeps (nothing counted twice)."""

    def __init__(self, read: Callable[[], Iterator[Metric]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        return self._read()


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        # The standard process_* and python_gc_* series, in this registry.
        ProcessCollector(registry=r)
        GCCollector(registry=r)
        self.segments_fetched = Counter(
            "hydromon_segments_fetched", "Segments fetched from S3", ["feed"], registry=r
        )
        self.bytes_fetched = Counter(
            "hydromon_fetched_bytes", "Bytes of segments fetched from S3", ["feed"], registry=r
        )
        self.segment_gaps = Counter(
            "hydromon_segment_gaps", "Segment slots with no audio", ["feed", "reason"], registry=r
        )
        self.decode_seconds = Histogram(
            "hydromon_decode_seconds",
            "Time to decode one segment",
            ["feed"],
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "hydromon_inference_seconds",
            "Time for one engine batch",
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "hydromon_batch_size", "Windows per engine batch", buckets=_BATCH_BUCKETS, registry=r
        )
        self.ring_overrun_samples = Counter(
            "hydromon_ring_overrun_samples",
            "Samples overwritten in a ring buffer before they were read",
            ["feed"],
            registry=r,
        )
        self.windows_scored = Counter(
            "hydromon_windows_scored", "Windows scored by the engine", ["feed"], registry=r
        )
        self.windows_skipped = Counter(
            "hydromon_windows_skipped", "Windows not scored", ["feed", "reason"], registry=r
        )
        self.detections = Counter(
            "hydromon_detections",
            "Detection messages by label and status",
            ["feed", "label", "status"],
            registry=r,
        )
        self.publish_failures = Counter(
            "hydromon_publish_failures", "Failed publishes by output", ["output"], registry=r
        )
        self.alerts_held_back = Counter(
            "hydromon_alerts_held_back",
            "Alerts a notification output held back, by reason (cooldown, quiet_hours)",
            ["output", "reason"],
            registry=r,
        )
        self.spool_depth = Gauge(
            "hydromon_spool_depth", "Messages waiting in an output's spool", ["output"], registry=r
        )
        self.websocket_clients = Gauge(
            "hydromon_websocket_clients", "Connected websocket clients", registry=r
        )
        self.feed_state = Enum(
            "hydromon_feed_state",
            "Feed state",
            ["feed"],
            states=[str(s) for s in FeedState],
            registry=r,
        )
        self.segments_cut = Counter(
            "hydromon_segments_cut",
            "Segments whose audio ran past their slot, cut at the slot end",
            ["feed"],
            registry=self.registry,
        )
        self.lag_seconds = Gauge(
            "hydromon_lag_seconds", "How far processing is behind real time", ["feed"], registry=r
        )
        # Totals already turned into observations (the engine and outputs keep running totals).
        self._seen_batch_sizes: dict[int, int] = {}
        self._seen_batches = 0
        self._seen_inference_s = 0.0
        self._seen_failures: dict[str, int] = {}
        self._seen_held_back: dict[str, int] = {}

    def segment_fetched(self, feed: str, nbytes: int) -> None:
        self.segments_fetched.labels(feed).inc()
        self.bytes_fetched.labels(feed).inc(nbytes)

    def segment_gap(self, feed: str, reason: str) -> None:
        self.segment_gaps.labels(feed, reason).inc()

    def decoded(self, feed: str, seconds: float) -> None:
        self.decode_seconds.labels(feed).observe(seconds)

    def ring_overrun(self, feed: str, samples: int) -> None:
        self.ring_overrun_samples.labels(feed).inc(samples)

    def segment_cut(self, feed: str) -> None:
        self.segments_cut.labels(feed).inc()

    def window_scored(self, feed: str, count: int = 1) -> None:
        self.windows_scored.labels(feed).inc(count)

    def window_skipped(self, feed: str, reason: str, count: int = 1) -> None:
        self.windows_skipped.labels(feed, reason).inc(count)

    def detection(self, feed: str, label: str, status: str) -> None:
        self.detections.labels(feed, label, status).inc()

    def set_spool_depth(self, output: str, depth: int) -> None:
        self.spool_depth.labels(output).set(depth)

    def set_websocket_clients(self, count: int) -> None:
        self.websocket_clients.set(count)

    def set_feed_state(self, feed: str, state: FeedState | str) -> None:
        self.feed_state.labels(feed).state(str(state))

    def set_lag(self, feed: str, seconds: float) -> None:
        self.lag_seconds.labels(feed).set(seconds)

    def engine_totals(
        self, batch_sizes: Mapping[int, int], batches: int, inference_seconds: float
    ) -> None:
        """Take the engine's running totals (``EngineStats``), observing what is new since the
        last call: each new batch's size exactly, and each new batch's time as the mean over
        them (the engine keeps only the total time)."""
        for size, total in batch_sizes.items():
            for _ in range(total - self._seen_batch_sizes.get(size, 0)):
                self.batch_size.observe(size)
            self._seen_batch_sizes[size] = total
        new = batches - self._seen_batches
        if new > 0:
            mean = max(0.0, inference_seconds - self._seen_inference_s) / new
            for _ in range(new):
                self.inference_seconds.observe(mean)
            self._seen_batches = batches
            self._seen_inference_s = inference_seconds

    def publish_failures_total(self, output: str, total: int) -> None:
        """An output's running count of failed or dropped publishes; counts what is new."""
        new = total - self._seen_failures.get(output, 0)
        child = self.publish_failures.labels(output)  # shown (at 0) from the start
        if new > 0:
            child.inc(new)
            self._seen_failures[output] = total

    def alerts_held_back_total(self, output: str, reason: str, total: int) -> None:
        """An output's running count of alerts held back for ``reason``; counts what is new."""
        key = f"{output}\0{reason}"
        new = total - self._seen_held_back.get(key, 0)
        child = self.alerts_held_back.labels(output, reason)
        if new > 0:
            child.inc(new)
            self._seen_held_back[key] = total

    def watch_s3(self, stats: RequestCounts) -> None:
        """Export the S3 store's request counts (the store keeps them)."""

        def read() -> Iterator[Metric]:
            requests = CounterMetricFamily(
                "hydromon_s3_requests", "S3 requests by operation (retries apart)", labels=["op"]
            )
            requests.add_metric(["get"], stats.gets)
            requests.add_metric(["list"], stats.lists)
            yield requests
            yield CounterMetricFamily("hydromon_s3_retries", "S3 calls retried", stats.retries)
            yield CounterMetricFamily(
                "hydromon_s3_not_modified", "S3 GETs answered 304", stats.not_modified
            )
            yield CounterMetricFamily(
                "hydromon_s3_not_found", "S3 GETs answered 404", stats.not_found
            )
            yield CounterMetricFamily(
                "hydromon_s3_too_large", "S3 objects refused for their size", stats.too_large
            )
            rejected = CounterMetricFamily(
                "hydromon_bucket_content_rejected",
                "Bucket content refused (bad latest.txt, playlist or key names), by kind",
                labels=["kind"],
            )
            for kind in sorted(stats.rejected):
                rejected.add_metric([kind], stats.rejected[kind])
            yield rejected

        self.registry.register(_Totals(read))

    def watch_totals(
        self, name: str, documentation: str, label: str, read: Callable[[], Mapping[str, int]]
    ) -> None:
        """Export running totals another part keeps, one series per ``label`` value."""

        def collect() -> Iterator[Metric]:
            family = CounterMetricFamily(name, documentation, labels=[label])
            for key, value in sorted(read().items()):
                family.add_metric([key], value)
            yield family

        self.registry.register(_Totals(collect))

    def watch_tasks(self, tasks: Mapping[str, TaskRuns]) -> None:
        """Export the runs started of each supervised task (a crash-looping feed shows here)."""

        def read() -> Iterator[Metric]:
            runs = CounterMetricFamily(
                "hydromon_task_runs_started", "Supervised task runs started", labels=["task"]
            )
            for name in sorted(tasks):
                runs.add_metric([name], tasks[name].runs)
            yield runs

        self.registry.register(_Totals(read))

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
