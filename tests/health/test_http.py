"""The health HTTP server, with a real aiohttp client over loopback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest

from monitor.health.analysis import AudioVerdict, ChannelAnalysis, SegmentAnalysis
from monitor.health.board import HealthBoard
from monitor.health.http import HealthServer, HttpSettings
from monitor.health.metrics import Metrics
from monitor.timebase import utc_now


@pytest.fixture
async def served() -> AsyncIterator[tuple[HealthServer, str]]:
    metrics = Metrics()
    board = HealthBoard(metrics=metrics)
    server = HealthServer(
        HttpSettings(port=0, heartbeat_s=0.05, max_loop_stall_s=1.0), board, metrics
    )
    port = await server.start()
    assert port > 0
    yield server, f"http://127.0.0.1:{port}"
    await server.close()


async def test_healthz_and_readyz(served: tuple[HealthServer, str]) -> None:
    server, base = served
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{base}/healthz") as response:
            assert response.status == 200
            assert (await response.json())["ok"] is True
        async with client.get(f"{base}/readyz") as response:
            assert response.status == 503
            assert await response.json() == {
                "ready": False,
                "engine_loaded": False,
                "ingest_started": False,
                "stopping": False,
            }
        server.board.engine_loaded = True
        async with client.get(f"{base}/readyz") as response:
            assert response.status == 503
        server.board.ingest_started = True
        async with client.get(f"{base}/readyz") as response:
            assert response.status == 200
            assert (await response.json())["ready"] is True
        server.board.stopping = True  # SIGTERM: draining, no longer ready (still alive)
        async with client.get(f"{base}/readyz") as response:
            assert response.status == 503
            assert (await response.json())["stopping"] is True
        async with client.get(f"{base}/healthz") as response:
            assert response.status == 200


async def test_healthz_reports_a_blocked_loop(served: tuple[HealthServer, str]) -> None:
    _, base = served
    async with aiohttp.ClientSession() as client:
        time.sleep(1.5)  # deliberately block the event loop, as a bug would  # noqa: ASYNC251
        async with client.get(f"{base}/healthz") as response:
            body = await response.json()
            assert response.status == 503, body
            assert body["ok"] is False and body["loop_stall_s"] > 1.0


async def test_status_lists_feeds(served: tuple[HealthServer, str]) -> None:
    server, base = served
    now = utc_now()
    health = server.board.feed("rpi_orcasound_lab")
    server.board.changed(health.note_playlist(now, now))
    analysis = SegmentAnalysis(
        AudioVerdict.UNINTELLIGIBLE,
        (ChannelAnalysis(-50.0, -93.9, 3.94, AudioVerdict.UNINTELLIGIBLE),),
    )
    server.board.changed(health.note_audio(analysis, now - timedelta(seconds=30), now))
    health.note_processed(now - timedelta(seconds=20), now)
    health.note_gap("missing")
    health.note_error("decode failed: invalid data", now, hint="a corrupt segment; skipped")
    async with aiohttp.ClientSession() as client, client.get(f"{base}/status") as response:
        assert response.status == 200
        status = await response.json()
    feed = status["feeds"]["rpi_orcasound_lab"]
    assert feed["state"] == "unintelligible"
    assert feed["hint"] == "only 60 Hz hum: usually a failing hydrophone cable"
    assert feed["audio"]["channels"][0]["signal_ratio"] == 3.94
    assert feed["gaps"] == 1 and feed["restarts"] == 0
    assert feed["lag_s"] >= 20.0
    assert feed["last_error"]["hint"] == "a corrupt segment; skipped"
    assert feed["last_segment_start"].endswith("Z")
    assert status["ready"] is False


async def test_metrics_endpoint(served: tuple[HealthServer, str]) -> None:
    server, base = served
    server.metrics.segment_fetched("rpi_bush_point", 1234)
    server.board.feed("rpi_bush_point")
    async with aiohttp.ClientSession() as client, client.get(f"{base}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert 'hydromon_fetched_bytes_total{feed="rpi_bush_point"} 1234.0' in text
    assert 'hydromon_feed_state{feed="rpi_bush_point",hydromon_feed_state="unknown"} 1.0' in text


async def test_a_taken_port_is_a_clear_error(served: tuple[HealthServer, str]) -> None:
    server, _ = served
    metrics = Metrics()
    other = HealthServer(HttpSettings(port=server.port or 0), HealthBoard(), metrics)
    with pytest.raises(OSError, match=r"health server cannot bind 127\.0\.0\.1:"):
        await other.start()


async def test_binds_loopback_by_default() -> None:
    assert HttpSettings().host == "127.0.0.1"


async def test_status_and_metrics_need_the_token_when_one_is_set() -> None:
    metrics = Metrics()
    settings = HttpSettings(port=0, heartbeat_s=0.05, token="s3cret")
    server = HealthServer(settings, HealthBoard(metrics=metrics), metrics)
    base = f"http://127.0.0.1:{await server.start()}"
    try:
        async with aiohttp.ClientSession() as client:
            for path in ("/status", "/metrics"):
                for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                    async with client.get(base + path, headers=headers) as response:
                        assert response.status == 401, (path, headers)
                        assert response.headers["WWW-Authenticate"] == "Bearer"
                good = {"Authorization": "Bearer s3cret"}
                async with client.get(base + path, headers=good) as response:
                    assert response.status == 200, path
            for path in ("/healthz", "/readyz"):  # orchestrators probe without credentials
                async with client.get(base + path) as response:
                    assert response.status in (200, 503) and response.status != 401
    finally:
        await server.close()
