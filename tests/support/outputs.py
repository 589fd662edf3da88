"""Helpers for the output tests: Redis settings with fresh keys, websocket subscribe/receive,
the detections a files output wrote."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection

from monitor.publish.redis import RedisSettings


def settings_for(url: str, tmp_path: Path, **overrides: object) -> RedisSettings:
    prefix = f"t{uuid.uuid4().hex[:10]}:"
    values: dict[str, object] = {
        "url": url,
        "stream_key": prefix + "messages",
        "channel": prefix + "messages",
        "status_hash": prefix + "status",
        "dedupe_prefix": prefix + "seen:",
        "timeout_s": 0.3,
        "retry_s": 0.05,
        "spool_path": tmp_path / "spool" / "redis.sqlite3",
    }
    values.update(overrides)
    return RedisSettings(**values)  # type: ignore[arg-type]


async def subscribe(ws: ClientConnection, **request: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "subscribe", **request}))
    ack = json.loads(await asyncio.wait_for(ws.recv(), 2))
    assert ack["kind"] == "subscribed"
    return ack


async def receive(ws: ClientConnection, count: int, wait_s: float = 2.0) -> list[dict[str, Any]]:
    """``count`` data messages (heartbeats skipped), then make sure nothing else is pending."""
    out: list[dict[str, Any]] = []
    while len(out) < count:
        frame = json.loads(await asyncio.wait_for(ws.recv(), wait_s))
        if frame["kind"] != "heartbeat":
            out.append(frame)
    return out


def jsonl_detections(directory: Path) -> list[dict[str, Any]]:
    """The detection messages in a files output's JSON lines under ``directory``, by day."""
    found = []
    for path in sorted((directory / "jsonl").glob("*.jsonl")):
        found += [json.loads(line) for line in path.read_text().splitlines()]
    return [m for m in found if m.get("kind") == "detection"]


def detection_summary(message: dict[str, Any]) -> tuple[Any, ...]:
    """What two runs over the same audio must agree on (not the wall-clock times or scores,
    which move with the engine's batching)."""
    return (
        message["id"],
        message["status"],
        message["start_utc"],
        message["end_utc"],
        message["close_reason"],
        message["window_count"],
        message["positive_window_count"],
        message["previous_id"],
    )
