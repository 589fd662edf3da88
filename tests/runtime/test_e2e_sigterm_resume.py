"""End to end, as an operator runs it: ``hydromon run`` in its own process gets SIGTERM while a
humpback call is being detected; the open detection must be closed and delivered, the process
must exit 0, and a restart with the same state directory must carry on from the next window:
no window lost, none scored twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.candidates.settings import DetectorSettings
from monitor.runtime.resume import load_resume_point, state_path
from monitor.timebase import parse_utc, utc_now
from tests.support.e2e import HOP_S, build_stream, publish, redis_messages, write_config
from tests.support.synthetic_node import synthetic_node

NODE = "rpi_e2e_sigterm"
HYDROMON = Path(sys.executable).parent / "hydromon"
# The call spans segments 2 and 3: with segments 0..2 on S3 the detection opens, and it cannot
# close before segment 3 is there.
PLACED = [("DescMoan", 26.5)]
SEGMENTS = 6


async def wait_for(predicate, limit_s: float, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + limit_s
    while not await predicate():
        if process.poll() is not None:
            raise AssertionError(f"hydromon exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def start(config: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as handle:
        return subprocess.Popen(
            [str(HYDROMON), "--log-json", "run", "--config", str(config), *extra],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
        )


def log_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in path.read_text().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def only(lines: list[dict[str, Any]], event: str) -> dict[str, Any]:
    found = [line for line in lines if line.get("event") == event]
    assert len(found) == 1, (event, found)
    return found[0]


async def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    began = time.monotonic()
    code = await asyncio.to_thread(process.wait, 30)
    assert time.monotonic() - began < 20, "SIGTERM took longer than the shutdown timeout"
    return code


@pytest.mark.slow
async def test_sigterm_closes_the_open_detection_and_restart_continues(
    moto_server, bucket_name, redis_server, trained_classifier, tmp_path: Path
) -> None:
    folder_epoch = int(utc_now().timestamp()) - 120
    stream = build_stream(folder_epoch, SEGMENTS * 10.0, PLACED, rotate=3)
    key = f"hydromon:e2e:{bucket_name}"
    state_dir = tmp_path / "state"
    config = write_config(
        tmp_path, moto_server.endpoint_url, bucket_name, NODE, trained_classifier,
        redis_url=redis_server.url, redis_stream=key, state_dir=state_dir, quiet_s=15.0,
    )  # fmt: skip
    async with synthetic_node(moto_server.endpoint_url, bucket_name, NODE) as node:
        await node.set_latest(folder_epoch)
        # Stage 1 decides a box once it has read lookahead_s past it: one segment after the
        # call's; the long quiet time keeps the detection open at the live edge.
        await publish(node, stream, range(4))

        # Run 1: from the folder's start (backfill), until the detection is open.
        first_log = tmp_path / "run1.log"
        first = start(config, first_log, "--backfill", "5m")
        try:

            async def opened() -> bool:
                found = await redis_messages(redis_server.url, key)
                return any(m.get("status") == "opened" for m in found)

            await wait_for(opened, 90, "the detection to open", first)
            assert await stop(first) == 0
        finally:
            if first.poll() is None:
                first.kill()
        messages = await redis_messages(redis_server.url, key)
        found = [m for m in messages if m["kind"] == "detection"]
        assert [m["status"] for m in found] == ["opened", "closed"]
        closed = found[1]
        assert closed["close_reason"] == "shutdown"
        assert closed["id"] == found[0]["id"]
        call = stream.calls[0]
        assert parse_utc(closed["start_utc"]) <= call.start_utc + timedelta(seconds=HOP_S)
        saved = load_resume_point(state_path(state_dir, "live", NODE), NODE)
        assert saved is not None

        # Run 2: the rest of the stream is on S3 now; resume from the state directory.
        await publish(node, stream, range(4, SEGMENTS))
        second_log = tmp_path / "run2.log"
        second = start(config, second_log)
        stream_end = stream.start_utc + timedelta(seconds=SEGMENTS * 10)
        try:

            async def caught_up() -> bool:
                point = load_resume_point(state_path(state_dir, "live", NODE), NODE)
                # Windows wait for stage 1's look-ahead: the live edge is that far behind.
                behind = timedelta(seconds=DetectorSettings().lookahead_s + 3)
                return point is not None and point.next_window_utc >= stream_end - behind

            await wait_for(caught_up, 90, "the restart to catch up", second)
            assert await stop(second) == 0
        finally:
            if second.poll() is None:
                second.kill()

    run1, run2 = log_lines(first_log), log_lines(second_log)
    stopped1, stopped2 = only(run1, "feed stopped"), only(run2, "feed stopped")
    resumed = only(run2, "resuming feed")
    hop = timedelta(seconds=HOP_S)
    last1 = parse_utc(stopped1["last_window"])
    # No gap, no overlap: the restart's first window is the one after the last one scored.
    assert parse_utc(resumed["next_window"]) == last1 + hop
    assert parse_utc(stopped2["first_window"]) == last1 + hop
    for stopped in (stopped1, stopped2):  # and each run handled every window of its span
        span = parse_utc(stopped["last_window"]) - parse_utc(stopped["first_window"])
        handled = stopped["windows_scored"] + stopped["windows_unscored"]  # (the cascade)
        assert handled == round(span / hop) + 1

    detections = [
        m for m in await redis_messages(redis_server.url, key) if m["kind"] == "detection"
    ]
    ids = [m["message_id"] for m in detections]
    assert len(ids) == len(set(ids))
    # Whatever the restart detected starts after what the first run had scored.
    for message in detections[2:]:
        assert parse_utc(message["start_utc"]) > last1
    for message in detections:
        assert message["feed"]["node"] == NODE
    assert any(line.get("event") == "signal received: stopping" for line in run1)
    # Steady state at the default level (info): nothing per segment (that is debug), so no
    # event repeats as often as the segments did; detections are logged one line each.
    for run in (run1, run2):
        events = [line.get("event") for line in run if line.get("event") != "detection"]
        assert "segment processed" not in events
        assert max(events.count(event) for event in set(events)) < 3, sorted(events)
    assert [line for line in run1 if line.get("event") == "detection"]
