"""End to end: an emulated node gets segments at 10× speed while the daemon follows it; the
detections must cover each mixed-in humpback call at its UTC time, on Redis and on a websocket
subscriber alike, with nothing on the plain background; a replay over the same bucket must give
the same detections."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from monitor.config.loader import load_config
from monitor.detect.schema import schema_errors
from monitor.publish.files import FileOutput, FileSettings
from monitor.runtime.daemon import Daemon, DaemonSettings, LiveMode, ReplayMode
from monitor.timebase import from_epoch, parse_utc, utc_now
from tests.support.candidates import call_extent
from tests.support.e2e import (
    HOP_S,
    WINDOW_S,
    Stream,
    build_stream,
    playlist,
    publish,
    redis_messages,
    write_config,
)
from tests.support.outputs import detection_summary
from tests.support.synthetic_node import synthetic_node

NODE = "rpi_e2e_live"
PACE_S = 1.0  # one 10 s segment a second: 10× real time
SEGMENTS = 8
PLACED = [("AscMoan", 13.3), ("DescMoan", 31.7), ("Growl", 58.6), ("moan", 66.2)]


def detections(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m.get("kind") == "detection"]


async def listen(port: int, into: list[tuple[float, dict[str, Any]]], ready: asyncio.Event):
    async with connect(f"ws://127.0.0.1:{port}") as ws:
        await ws.send(json.dumps({"type": "subscribe", "kinds": ["detection"]}))
        async for raw in ws:
            message = json.loads(raw)
            if message.get("kind") == "subscribed":
                ready.set()
            into.append((time.monotonic(), message))


def check_covers_each_call(stream: Stream, closed: list[dict[str, Any]]) -> None:
    """One closed detection per call, starting no later than one hop after the call's onset (its
    extent: stage 1's boxes follow the call, and Growl's clip fades in for 0.6 s) and
    ending no earlier than a second before it ends (the cascade's box ends where a clip's tail
    fades below the background), and no more than a window + hop away."""
    assert len(closed) == len(stream.calls), [(m["start_utc"], m["end_utc"]) for m in closed]
    hop, window = timedelta(seconds=HOP_S), timedelta(seconds=WINDOW_S)
    for call, message in zip(
        stream.calls, sorted(closed, key=lambda m: m["start_utc"]), strict=True
    ):
        start, end = parse_utc(message["start_utc"]), parse_utc(message["end_utc"])
        onset = call.start_utc + timedelta(seconds=call_extent(call.name)[0])
        assert call.start_utc - window - hop <= start <= onset + hop, call.name
        assert call.end_utc - 2 * window <= end <= call.end_utc + window + hop, call.name
        assert message["label"] == "humpback"
        assert message["feed"]["node"] == NODE


@pytest.mark.slow
async def test_live_detections_cover_each_call_and_replay_agrees(
    moto_server, bucket_name, redis_server, trained_classifier, tmp_path: Path
) -> None:
    folder_epoch = int(utc_now().timestamp()) - 120
    stream = build_stream(folder_epoch, SEGMENTS * 10.0, PLACED)
    stream_key = f"hydromon:e2e:{bucket_name}"
    path = write_config(
        tmp_path, moto_server.endpoint_url, bucket_name, NODE, trained_classifier,
        redis_url=redis_server.url, redis_stream=stream_key,
    )  # fmt: skip
    config = load_config(path, env={})  # the file sets the follower's test pace
    assert config.follower.poll_interval_s == 0.1 and config.follower.quiet_after_arrival_s == 0

    received: list[tuple[float, dict[str, Any]]] = []
    uploaded: dict[int, float] = {}
    async with synthetic_node(moto_server.endpoint_url, bucket_name, NODE) as node:
        await node.set_latest(folder_epoch)
        await publish(node, stream, range(1))
        uploaded[0] = time.monotonic()

        stop = asyncio.Event()
        daemon = Daemon(config, LiveMode(), [NODE], settings=DaemonSettings())
        run = asyncio.create_task(daemon.run(stop))
        await asyncio.wait_for(daemon.started.wait(), 60)
        subscribed = asyncio.Event()
        listener = asyncio.create_task(listen(daemon.websocket_port, received, subscribed))
        await asyncio.wait_for(subscribed.wait(), 10)

        for number in range(1, SEGMENTS):
            await asyncio.sleep(PACE_S)
            await node.put(node.key(folder_epoch, f"live{number:03d}.ts"), stream.segments[number])
            uploaded[number] = time.monotonic()
            await node.put(node.key(folder_epoch, "live.m3u8"), playlist(range(number + 1)))

        pipeline = daemon.pipelines[NODE]
        last_end = stream.start_utc + timedelta(seconds=SEGMENTS * 10 - 1)
        deadline = time.monotonic() + 60
        while (pipeline.progress.processed_until or stream.start_utc) < last_end:
            assert time.monotonic() < deadline, "the daemon did not catch up"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # let the websocket frames go out
        stop.set()
        assert await asyncio.wait_for(run, 30) == 0
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener

        assert daemon.task_health[NODE].restarts == 0
        everything = await redis_messages(redis_server.url, stream_key)
        for message in everything:  # detections and feed-status changes, as published
            assert schema_errors(message) == [], message
        on_redis = detections(everything)
        on_websocket = [m for _t, m in received if m.get("kind") == "detection"]
        # The same messages, in the same order, on both outputs.
        assert [m["message_id"] for m in on_redis] == [m["message_id"] for m in on_websocket]
        closed = [m for m in on_redis if m["status"] == "closed"]
        opened = [m for m in on_redis if m["status"] == "opened"]
        assert sorted(m["id"] for m in opened) == sorted(m["id"] for m in closed)
        check_covers_each_call(stream, closed)
        assert all(m["close_reason"] == "quiet" for m in closed)

        # Latency: segment upload → "opened" on the websocket, for the segment that held the
        # audio that opened it (emitted − latency_ms is that audio's end).
        latencies = []
        for at, message in received:
            if message.get("kind") != "detection" or message["status"] != "opened":
                continue
            emitted = parse_utc(message["emitted_utc"])
            audio_end = emitted - timedelta(milliseconds=message["latency_ms"])
            number = stream.segment_of(audio_end - timedelta(microseconds=1))
            latencies.append(at - uploaded[number])
        assert len(latencies) == len(stream.calls)
        assert max(latencies) < 5.0, latencies

        # Replay over the same bucket: the same detections.
        replay_out = tmp_path / "replay"
        span = ReplayMode(stream.start_utc, stream.start_utc + timedelta(seconds=SEGMENTS * 10))
        replay = Daemon(
            config,
            span,
            [NODE],
            outputs=[FileOutput(FileSettings(directory=replay_out))],
            serve_http=False,
        )
        assert await asyncio.wait_for(replay.run(asyncio.Event()), 60) == 0
    lines = []
    for jsonl in sorted((replay_out / "jsonl").glob("*.jsonl")):
        lines += [json.loads(line) for line in jsonl.read_text().splitlines()]
    replayed = detections(lines)
    assert [detection_summary(m) for m in replayed] == [detection_summary(m) for m in on_redis]
    # Scores agree up to the engine's batching (batches differ live and in replay; with bf16
    # autocast a batch's composition moves scores in the third or fourth decimal).
    for again, live in zip(replayed, on_redis, strict=True):
        assert abs(again["score"]["max"] - live["score"]["max"]) < 5e-3
    assert from_epoch(folder_epoch) < stream.start_utc
