"""A feed that keeps failing is restarted with backoff and reported; the other feeds and the
daemon carry on, and the feed recovers once its fault is fixed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from monitor.config.loader import load_config
from monitor.runtime.daemon import Daemon, LiveMode
from monitor.timebase import utc_now
from tests.support.e2e import build_stream, playlist, write_config
from tests.support.s3_proxy import denying_proxy
from tests.support.synthetic_node import synthetic_node

GOOD, BROKEN = "rpi_good", "rpi_broken"


async def eventually(check, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_a_crashing_feed_restarts_with_backoff_and_never_takes_the_daemon_down(
    moto_server, bucket_name, trained_classifier, tmp_path: Path
) -> None:
    epoch = int(utc_now().timestamp()) - 60
    stream = build_stream(epoch, 20.0, [])
    denied = {BROKEN}  # its objects answer 403: no retry fixes that, so its task fails
    async with (
        denying_proxy(moto_server.endpoint_url, denied) as endpoint,
        synthetic_node(moto_server.endpoint_url, bucket_name, GOOD) as node,
    ):
        path = write_config(
            tmp_path, endpoint, bucket_name, GOOD, trained_classifier,
            extra_nodes=(BROKEN,), supervisor_backoff_s=0.2, health_tick_s=0.2,
        )  # fmt: skip
        config = load_config(path, env={})
        for name in (GOOD, BROKEN):
            await node.put(f"{name}/hls/{epoch}/live000.ts", stream.segments[0])
            await node.put(f"{name}/hls/{epoch}/live.m3u8", playlist(range(1)))
            await node.put(f"{name}/latest.txt", f"{epoch}\n")

        stop = asyncio.Event()
        daemon = Daemon(config, LiveMode(), [GOOD, BROKEN])
        run = asyncio.create_task(daemon.run(stop))
        try:
            await asyncio.wait_for(daemon.started.wait(), 60)
            status_url = f"http://127.0.0.1:{daemon.http_port}/status"
            async with aiohttp.ClientSession() as http:

                async def broken_restarted() -> bool:
                    async with http.get(status_url) as response:
                        feeds = (await response.json())["feeds"]
                    return feeds.get(BROKEN, {}).get("restarts", 0) >= 3

                await eventually(broken_restarted, 30, "three restarts of the broken feed")
                async with http.get(status_url) as response:
                    broken = (await response.json())["feeds"][BROKEN]
                assert "access denied" in broken["last_error"]["message"]
                assert daemon.task_health[BROKEN].restarts >= 3

                # Meanwhile the good feed works: its next segment is processed.
                await node.put(f"{GOOD}/hls/{epoch}/live001.ts", stream.segments[1])

                async def good_processed() -> bool:
                    return daemon.pipelines[GOOD].progress.segments >= 2

                await eventually(good_processed, 30, "the good feed's next segment")
                assert not run.done()

                # The fault is fixed: the broken feed recovers on its next restart.
                denied.clear()

                async def broken_recovered() -> bool:
                    return daemon.pipelines[BROKEN].progress.segments >= 1

                await eventually(broken_recovered, 30, "the broken feed to recover")
                await asyncio.sleep(0.5)  # a health tick samples the engine and output totals
                async with http.get(f"http://127.0.0.1:{daemon.http_port}/metrics") as response:
                    metrics = await response.text()
            values = {
                line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line and not line.startswith("#")
            }
            assert values[f'hydromon_windows_scored_total{{feed="{GOOD}"}}'] > 0
            # Each metric the running daemon must feed, not merely define:
            assert values[f'hydromon_segments_fetched_total{{feed="{GOOD}"}}'] >= 2
            assert values[f'hydromon_fetched_bytes_total{{feed="{GOOD}"}}'] > 0
            assert values[f'hydromon_decode_seconds_count{{feed="{GOOD}"}}'] >= 2
            assert values[f'hydromon_decode_seconds_sum{{feed="{GOOD}"}}'] > 0
            assert values["hydromon_batch_size_count"] >= 1
            assert values["hydromon_inference_seconds_count"] == values["hydromon_batch_size_count"]
            assert values["hydromon_inference_seconds_sum"] > 0
            assert values['hydromon_publish_failures_total{output="files"}'] == 0
            assert values["hydromon_websocket_clients"] == 0
            restarts = [
                line
                for line in metrics.splitlines()
                if line.startswith(f'hydromon_feed_restarts_total{{feed="{BROKEN}"}}')
            ]
            assert restarts and float(restarts[0].split()[-1]) >= 3
            # Totals other parts keep, read by the running daemon at each scrape.
            assert values['hydromon_s3_requests_total{op="get"}'] >= 2
            assert values[f'hydromon_task_runs_started_total{{task="{BROKEN}"}}'] >= 4
            assert values[f'hydromon_candidates_discarded_total{{feed="{GOOD}"}}'] >= 0
            assert f'hydromon_segments_cut_total{{feed="{GOOD}"}}' not in values  # none was cut
            stop.set()
            assert await asyncio.wait_for(run, 30) == 0
        finally:
            stop.set()
            if not run.done():
                await asyncio.wait_for(run, 30)
