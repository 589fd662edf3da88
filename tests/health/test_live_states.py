"""Absent and Offline end to end: the live follower tells the health board what it sees of the
node (latest.txt, the playlist's S3 Last-Modified), the board's tick notices a playlist that
stopped changing, and every change goes out as a feed_status message (Redis and a websocket
subscriber) and shows in /status."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect

from monitor.config.loader import load_config
from monitor.detect.schema import schema_errors
from monitor.health.feed_state import HealthSettings
from monitor.ingest.live import FollowerSettings
from monitor.runtime.daemon import Daemon, DaemonSettings, LiveMode
from monitor.timebase import parse_utc, utc_now
from tests.support.classifier import save_tiny_ast
from tests.support.e2e import LABEL, build_stream, publish, redis_messages, write_config
from tests.support.synthetic_node import synthetic_node

NODE = "rpi_health_live"
OFFLINE_AFTER_S = 4.0  # test-shortened; the playlist's Last-Modified has 1 s resolution


async def listen(port: int, into: list[dict[str, Any]], ready: asyncio.Event) -> None:
    async with connect(f"ws://127.0.0.1:{port}") as ws:
        await ws.send(json.dumps({"type": "subscribe", "kinds": ["feed_status"]}))
        async for raw in ws:
            message = json.loads(raw)
            if message.get("kind") == "subscribed":
                ready.set()
            else:
                into.append(message)


@pytest.mark.slow
async def test_absent_then_up_then_offline_then_up_published_and_in_status(
    moto_server, bucket_name, redis_server, tmp_path: Path
) -> None:
    classifier = save_tiny_ast(
        tmp_path / "ast", max_length=100, id2label={0: LABEL, 1: "other"},
        label2id={LABEL: 0, "other": 1},
    )  # fmt: skip
    epoch = int(utc_now().timestamp()) - 15
    stream = build_stream(epoch, 30.0, [])
    stream_key = f"hydromon:health:{bucket_name}"
    path = write_config(
        tmp_path, moto_server.endpoint_url, bucket_name, NODE, classifier,
        redis_url=redis_server.url, redis_stream=stream_key,
    )  # fmt: skip
    config = dataclasses.replace(
        load_config(path, env={}),
        follower=FollowerSettings(poll_interval_s=0.1, quiet_after_arrival_s=0.0),
        health=HealthSettings(offline_after_s=OFFLINE_AFTER_S),
    )
    received: list[dict[str, Any]] = []
    async with synthetic_node(moto_server.endpoint_url, bucket_name, NODE) as node:
        stop = asyncio.Event()
        daemon = Daemon(config, LiveMode(), [NODE], settings=DaemonSettings(health_tick_s=0.2))
        run = asyncio.create_task(daemon.run(stop))
        listener: asyncio.Task[None] | None = None
        try:
            await asyncio.wait_for(daemon.started.wait(), 60)
            subscribed = asyncio.Event()
            listener = asyncio.create_task(listen(daemon.websocket_port, received, subscribed))
            await asyncio.wait_for(subscribed.wait(), 10)
            status_url = f"http://127.0.0.1:{daemon.http_port}/status"
            async with aiohttp.ClientSession() as http:

                async def feed() -> dict[str, Any]:
                    async with http.get(status_url) as response:
                        return (await response.json())["feeds"][NODE]

                async def reaches(state: str, limit_s: float) -> dict[str, Any]:
                    deadline = time.monotonic() + limit_s
                    while (current := await feed())["state"] != state:
                        assert time.monotonic() < deadline, f"never {state}: {current}"
                        await asyncio.sleep(0.1)
                    return current

                # No latest.txt: the node never started.
                absent = await reaches("absent", 10)
                assert "latest.txt" in absent["hint"]

                # The node starts: latest.txt, a segment, the playlist.
                await publish(node, stream, range(1))
                await node.set_latest(epoch)
                up = await reaches("up", 30)
                assert up["playlist_modified"] is not None

                # The node stops uploading: the playlist's Last-Modified stops advancing while
                # the follower waits for live001.ts; the board's tick turns that into Offline.
                offline = await reaches("offline", OFFLINE_AFTER_S + 10)
                assert offline["playlist_modified"] == up["playlist_modified"]

                # It uploads again: back to Up.
                await publish(node, stream, range(1, 2))
                back = await reaches("up", 30)
                assert back["playlist_modified"] > up["playlist_modified"]
            await asyncio.sleep(0.3)  # let the websocket frame go out
            stop.set()
            assert await asyncio.wait_for(run, 30) == 0
        finally:
            stop.set()
            if not run.done():
                await asyncio.wait_for(run, 30)
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await listener

    published = [
        m
        for m in await redis_messages(redis_server.url, stream_key)
        if m.get("kind") == "feed_status"
    ]
    for message in published:
        assert schema_errors(message) == [], message
        assert message["feed"]["node"] == NODE
    assert [m["state"] for m in published] == ["Absent", "Up", "Offline", "Up"]
    absent_message, _, offline_message, _ = published
    assert absent_message["details"]["reason"] == "latest.txt missing"
    assert offline_message["details"]["reason"] == "playlist not modified"
    # Offline exactly when the playlist's own Last-Modified became too old (not "now" of a poll)
    modified = parse_utc(offline_message["details"]["playlist_modified"])
    since = parse_utc(offline_message["since_utc"])
    assert since - modified > timedelta(seconds=OFFLINE_AFTER_S)
    assert since - modified < timedelta(seconds=OFFLINE_AFTER_S + 3)  # the tick is 0.2 s
    # The websocket subscriber (connected once the daemon ran) got the same messages.
    on_websocket = [m["message_id"] for m in received]
    assert on_websocket == [m["message_id"] for m in published][-len(on_websocket) :]
    assert [m["state"] for m in received][-3:] == ["Up", "Offline", "Up"]
