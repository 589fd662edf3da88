"""hydromon's Prometheus metrics: own registry, every metric exposed with the right values."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from monitor.health.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.exposition().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_every_metric_is_exposed_with_its_value() -> None:
    metrics = Metrics()
    metrics.segment_fetched("rpi_bush_point", 110_000)
    metrics.segment_fetched("rpi_bush_point", 90_000)
    metrics.segment_gap("rpi_bush_point", "missing")
    metrics.decoded("rpi_bush_point", 0.02)
    metrics.engine_totals({8: 1, 3: 1}, batches=2, inference_seconds=0.6)
    metrics.ring_overrun("rpi_bush_point", 4800)
    metrics.window_scored("rpi_bush_point", 5)
    metrics.window_skipped("rpi_bush_point", "gap")
    metrics.detection("rpi_bush_point", "Whale vocalization", "opened")
    metrics.publish_failures_total("redis", 1)
    metrics.set_spool_depth("redis", 12)
    metrics.set_websocket_clients(3)
    metrics.set_feed_state("rpi_bush_point", "unintelligible")
    metrics.set_lag("rpi_bush_point", 42.5)

    got = samples(metrics)
    feed = (("feed", "rpi_bush_point"),)
    assert got[("hydromon_segments_fetched_total", feed)] == 2
    assert got[("hydromon_fetched_bytes_total", feed)] == 200_000
    assert got[("hydromon_segment_gaps_total", (*feed, ("reason", "missing")))] == 1
    assert got[("hydromon_decode_seconds_count", feed)] == 1
    assert got[("hydromon_decode_seconds_sum", feed)] == 0.02
    assert got[("hydromon_batch_size_sum", ())] == 11
    assert got[("hydromon_batch_size_bucket", (("le", "4.0"),))] == 1
    assert got[("hydromon_inference_seconds_count", ())] == 2
    assert got[("hydromon_ring_overrun_samples_total", feed)] == 4800
    assert got[("hydromon_windows_scored_total", feed)] == 5
    assert got[("hydromon_windows_skipped_total", (*feed, ("reason", "gap")))] == 1
    detection = (*feed, ("label", "Whale vocalization"), ("status", "opened"))
    assert got[("hydromon_detections_total", detection)] == 1
    assert got[("hydromon_publish_failures_total", (("output", "redis"),))] == 1
    assert got[("hydromon_spool_depth", (("output", "redis"),))] == 12
    assert got[("hydromon_websocket_clients", ())] == 3
    state = (*feed, ("hydromon_feed_state", "unintelligible"))
    assert got[("hydromon_feed_state", state)] == 1
    assert got[("hydromon_feed_state", (*feed, ("hydromon_feed_state", "up")))] == 0
    assert got[("hydromon_lag_seconds", feed)] == 42.5


def test_registries_are_independent_and_not_the_global_one() -> None:
    first, second = Metrics(), Metrics()  # would raise "Duplicated timeseries" if shared
    first.set_websocket_clients(5)
    assert samples(second)[("hydromon_websocket_clients", ())] == 0
    assert first.registry is not REGISTRY
    assert REGISTRY.get_sample_value("hydromon_websocket_clients") is None


def test_unknown_feed_state_is_refused() -> None:
    metrics = Metrics()
    try:
        metrics.set_feed_state("f", "sleepy")
    except ValueError as exc:
        assert "sleepy" in str(exc)
    else:
        raise AssertionError("an unknown state was accepted")


def test_engine_and_output_totals_are_counted_once() -> None:
    metrics = Metrics()
    metrics.engine_totals({8: 1, 3: 1}, batches=2, inference_seconds=0.6)
    metrics.engine_totals({8: 1, 3: 1}, batches=2, inference_seconds=0.6)  # nothing new
    metrics.engine_totals({8: 2, 3: 1, 1: 1}, batches=4, inference_seconds=1.0)
    metrics.publish_failures_total("redis", 0)
    metrics.publish_failures_total("files", 2)
    metrics.publish_failures_total("files", 2)
    metrics.publish_failures_total("files", 5)

    got = samples(metrics)
    assert got[("hydromon_batch_size_count", ())] == 4
    assert got[("hydromon_batch_size_sum", ())] == 8 + 3 + 8 + 1
    assert got[("hydromon_batch_size_bucket", (("le", "1.0"),))] == 1
    assert got[("hydromon_inference_seconds_count", ())] == 4
    assert abs(got[("hydromon_inference_seconds_sum", ())] - 1.0) < 1e-9
    # the two later batches took 0.4 s together: 0.2 s each
    assert got[("hydromon_inference_seconds_bucket", (("le", "0.1"),))] == 0
    assert got[("hydromon_inference_seconds_bucket", (("le", "0.25"),))] == 2
    assert got[("hydromon_publish_failures_total", (("output", "redis"),))] == 0
    assert got[("hydromon_publish_failures_total", (("output", "files"),))] == 5


def test_s3_requests_task_runs_and_the_process_collectors_reach_the_exposition() -> None:
    from monitor.ingest.s3 import RequestStats
    from monitor.runtime.supervisor import TaskHealth

    metrics = Metrics()
    stats = RequestStats()
    tasks = {"feed:rpi_bush_point": TaskHealth("feed:rpi_bush_point")}
    metrics.watch_s3(stats)
    metrics.watch_tasks(tasks)
    stats.gets, stats.lists, stats.retries, stats.not_found = 7, 2, 3, 1
    stats.too_large = 2
    stats.rejected["latest"] += 5
    tasks["feed:rpi_bush_point"].runs = 4
    text = metrics.exposition().decode()
    assert 'hydromon_s3_requests_total{op="get"} 7.0' in text
    assert 'hydromon_s3_requests_total{op="list"} 2.0' in text
    assert "hydromon_s3_retries_total 3.0" in text
    assert "hydromon_s3_not_found_total 1.0" in text
    assert "hydromon_s3_too_large_total 2.0" in text
    assert 'hydromon_bucket_content_rejected_total{kind="latest"} 5.0' in text
    assert 'hydromon_task_runs_started_total{task="feed:rpi_bush_point"} 4.0' in text
    stats.gets += 1  # read at each scrape, never copied
    assert 'hydromon_s3_requests_total{op="get"} 8.0' in metrics.exposition().decode()
    assert "python_gc_collections_total" in text
    if Path("/proc/self/stat").exists():
        assert "process_resident_memory_bytes" in text


def test_totals_kept_elsewhere_are_exported_by_label() -> None:
    metrics = Metrics()
    counts = {"rpi_bush_point": 1}
    metrics.watch_totals("hydromon_things", "Things", "feed", lambda: counts)
    assert 'hydromon_things_total{feed="rpi_bush_point"} 1.0' in metrics.exposition().decode()
    counts["rpi_bush_point"] = 3
    counts["rpi_orcasound_lab"] = 2
    text = metrics.exposition().decode()
    assert 'hydromon_things_total{feed="rpi_bush_point"} 3.0' in text
    assert 'hydromon_things_total{feed="rpi_orcasound_lab"} 2.0' in text
    metrics.segment_cut("rpi_bush_point")
    assert 'hydromon_segments_cut_total{feed="rpi_bush_point"} 1.0' in metrics.exposition().decode()
