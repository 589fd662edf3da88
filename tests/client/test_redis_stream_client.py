"""The Redis stream reader and consumer-group workers against a real redis-server, fed by the
real Redis output."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from monitor.client import StreamWorkers, SubscriptionRefused, stream_messages
from monitor.client.events import DetectionEvent
from monitor.publish.redis import RedisOutput
from monitor.publish.subscription import Subscription
from tests.support.detections import detection_series, wire
from tests.support.outputs import settings_for


async def filled_stream(url: str, tmp_path: Path, count: int) -> tuple[str, list]:
    settings = settings_for(url, tmp_path)
    messages = detection_series(count)
    output = RedisOutput(settings)
    await output.start()
    try:
        for message in messages:
            await output.publish(message)
    finally:
        await output.close()
    return settings.stream_key, messages


async def take(iterator, count: int, timeout_s: float = 10.0) -> list:
    out = []
    async with asyncio.timeout(timeout_s):
        async for item in iterator:
            out.append(item)
            if len(out) == count:
                break
    return out


async def test_stream_messages_from_an_entry_id_with_filters(redis_server, tmp_path) -> None:
    stream, messages = await filled_stream(redis_server.url, tmp_path, 6)
    everything = await take(stream_messages(redis_server.url, stream=stream, since="0-0"), 6)
    assert [m for _entry, m in everything] == wire(messages)
    after_second = everything[1][0]
    closed = Subscription(statuses=frozenset({"closed"}))
    rest = await take(
        stream_messages(redis_server.url, stream=stream, since=after_second, subscription=closed),
        2,
    )
    assert [m["message_id"] for _e, m in rest] == [
        m.message_id for m in messages[2:] if m.status == "closed"
    ]


async def test_workers_share_the_stream_and_a_restarted_worker_gets_its_pending_first(
    redis_server, tmp_path
) -> None:
    stream, messages = await filled_stream(redis_server.url, tmp_path, 8)
    group = f"g{uuid.uuid4().hex[:6]}"
    common = {"group": group, "stream": stream, "start": "0", "count": 2, "block_ms": 200}
    seen: dict[str, list[str]] = {"a": [], "b": []}
    async with StreamWorkers(redis_server.url, consumer="a", **common) as a:
        # "a" takes two and dies before acking them.
        taken = await take(a, 2)
    async with (
        StreamWorkers(redis_server.url, consumer="b", **common) as b,
        StreamWorkers(redis_server.url, consumer="a", **common) as a_again,
    ):
        for entry in await take(a_again, 2):  # its own pending ones first
            seen["a"].append(entry.event.message_id)
            await a_again.ack(entry)
        assert seen["a"] == [t.event.message_id for t in taken]
        for entry in await take(b, 6):
            assert isinstance(entry.event, DetectionEvent)
            seen["b"].append(entry.event.message_id)
            await b.ack(entry)
    assert seen["a"] + seen["b"] == [m.message_id for m in messages]  # each once, in order
    admin = aioredis.Redis.from_url(redis_server.url)
    try:
        assert (await admin.xpending(stream, group))["pending"] == 0
    finally:
        await admin.aclose()


async def test_entries_of_a_worker_that_never_returns_are_claimed(redis_server, tmp_path) -> None:
    stream, messages = await filled_stream(redis_server.url, tmp_path, 3)
    group = f"g{uuid.uuid4().hex[:6]}"
    common = {"group": group, "stream": stream, "start": "0", "block_ms": 200}
    async with StreamWorkers(redis_server.url, consumer="gone", count=3, **common) as gone:
        await take(gone, 3)
    await asyncio.sleep(0.2)
    async with StreamWorkers(redis_server.url, consumer="heir", claim_idle_s=0.1, **common) as heir:
        claimed = await take(heir, 3)
        for entry in claimed:
            await heir.ack(entry)
    assert [e.event.message_id for e in claimed] == [m.message_id for m in messages]


async def test_mistakes_are_refused_not_retried(redis_server) -> None:
    admin = aioredis.Redis.from_url(redis_server.url)
    key = f"t{uuid.uuid4().hex[:8]}:plain"
    await admin.set(key, "x")
    try:
        with pytest.raises(SubscriptionRefused, match="WRONGTYPE"):
            await take(stream_messages(redis_server.url, stream=key, since="0-0"), 1, 5)
        with pytest.raises(SubscriptionRefused, match="WRONGTYPE"):
            async with StreamWorkers(redis_server.url, group="g", consumer="c", stream=key) as w:
                await take(w, 1, 5)
    finally:
        await admin.delete(key)
        await admin.aclose()
    with pytest.raises(ValueError, match="is not a Redis stream entry id"):
        StreamWorkers(redis_server.url, group="g", consumer="c", start="yesterday")
    with pytest.raises(ValueError, match="is not a Redis URL"):
        await anext(stream_messages("http://127.0.0.1:6379"))
