from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from monitor.detect.records import FeedInfo
from monitor.publish.redis import RedisHistory, RedisOutput
from monitor.publish.spool import SpoolFull
from tests.support.detections import T0, checked, detection_series, feed_status, wire
from tests.support.outputs import settings_for
from tests.support.services import RedisServer


async def stream_ids(client: aioredis.Redis, key: str) -> list[str]:
    return [fields["message_id"] for _entry, fields in await client.xrange(key)]


async def test_delivers_to_stream_channel_and_status_hash_once(redis_server, tmp_path) -> None:
    settings = settings_for(redis_server.url, tmp_path)
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    pubsub = client.pubsub()
    await pubsub.subscribe(settings.channel)
    feed = FeedInfo("rpi_orcasound_lab", "Orcasound Lab", 48.5583, -123.1735)
    status = feed_status("up", T0, feed=feed, emitted=T0 + timedelta(seconds=1))
    messages = checked([*detection_series(4), status])
    sent = wire(messages)
    output = RedisOutput(settings)
    await output.start()
    try:
        for message in messages + messages:  # the second round must change nothing
            await output.publish(message)
        assert output.stats.delivered == 5 and output.stats.duplicates == 5
        assert await stream_ids(client, settings.stream_key) == [m.message_id for m in messages]
        entries = await client.xrange(settings.stream_key)
        assert json.loads(entries[0][1]["message"]) == sent[0]
        assert entries[-1][1]["kind"] == "feed_status"
        published = []
        deadline = asyncio.get_running_loop().time() + 2.0
        while len(published) < 5 and asyncio.get_running_loop().time() < deadline:
            got = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if got is not None:  # None: nothing yet, or the subscribe confirmation
                published.append(json.loads(got["data"]))
        assert published == sent
        stored = await client.hget(settings.status_hash, "rpi_orcasound_lab")
        assert json.loads(stored)["state"] == "Up"
        ttl = await client.ttl(settings.dedupe_prefix + messages[0].message_id)
        assert 0 < ttl <= settings.dedupe_ttl_s
    finally:
        await output.close()
        await pubsub.aclose()
        await client.aclose()


async def test_outage_mid_stream_loses_nothing_and_duplicates_nothing(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    settings = settings_for(own_redis.url, tmp_path)
    client = aioredis.Redis.from_url(own_redis.url, decode_responses=True)
    messages = detection_series(10)
    output = RedisOutput(settings)
    await output.start()
    try:
        for message in messages[:4]:
            await output.publish(message)
        assert output.spool_depth == 0
        # Save to disk on the way down so the restarted server still holds the first four.
        await client.shutdown(save=True)
        own_redis.stop()
        for message in messages[4:8]:
            await output.publish(message)
        assert output.spool_depth == 4 and output.stats.spooled == 4
        own_redis.start()
        for message in messages[8:]:
            await output.publish(message)
        await asyncio.wait_for(output.wait_drained(), 10)
        assert output.spool_depth == 0
        assert await stream_ids(client, settings.stream_key) == [m.message_id for m in messages]
    finally:
        await output.close()
        await client.aclose()


async def test_slow_redis_times_out_to_spool_and_delivers_exactly_once(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = settings_for(redis_server.url, tmp_path, timeout_s=0.15)
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    messages = detection_series(4)
    output = RedisOutput(settings)
    await output.start()
    try:
        await output.publish(messages[0])
        # Writes stall for 0.8 s: the script may still run after our timeout gave up on it.
        await client.execute_command("CLIENT", "PAUSE", "800", "WRITE")
        for message in messages[1:]:
            await output.publish(message)
        assert output.stats.errors >= 1
        assert output.spool_depth >= 1
        await asyncio.wait_for(output.wait_drained(), 10)
        assert await stream_ids(client, settings.stream_key) == [m.message_id for m in messages]
    finally:
        await client.execute_command("CLIENT", "UNPAUSE")
        await output.close()
        await client.aclose()


async def test_spool_survives_a_publisher_restart(own_redis: RedisServer, tmp_path: Path) -> None:
    settings = settings_for(own_redis.url, tmp_path)
    messages = detection_series(3)
    own_redis.stop()
    first = RedisOutput(settings)
    await first.start()
    for message in messages:
        await first.publish(message)
    assert first.spool_depth == 3
    await first.close()  # the daemon stops with Redis still down

    own_redis.start()
    second = RedisOutput(settings)
    await second.start()
    client = aioredis.Redis.from_url(own_redis.url, decode_responses=True)
    try:
        assert second.spool_depth in (1, 2, 3)  # delivery resumes in the background
        await asyncio.wait_for(second.wait_drained(), 10)
        assert await stream_ids(client, settings.stream_key) == [m.message_id for m in messages]
    finally:
        await second.close()
        await client.aclose()


async def test_full_spool_refuses_and_counts(own_redis: RedisServer, tmp_path: Path) -> None:
    settings = settings_for(own_redis.url, tmp_path, spool_max_messages=2)
    own_redis.stop()
    output = RedisOutput(settings)
    await output.start()
    messages = detection_series(3)
    try:
        await output.publish(messages[0])
        await output.publish(messages[1])
        with pytest.raises(SpoolFull, match="its limit"):
            await output.publish(messages[2])
        assert output.stats.refused == 1 and output.spool_depth == 2
    finally:
        await output.close()


async def test_history_reads_back_after_a_message_id(redis_server, tmp_path) -> None:
    settings = settings_for(redis_server.url, tmp_path)
    messages = detection_series(6)
    sent = wire(messages)
    output = RedisOutput(settings)
    await output.start()
    history = RedisHistory(settings)
    try:
        for message in messages:
            await output.publish(message)
        found, after = await history.since(messages[1].message_id, limit=100)
        assert found and after == sent[2:]
        found, after = await history.since(messages[1].message_id, limit=2)
        assert after == sent[2:4]
        found, newest = await history.since("no-such-id", limit=2)
        assert not found and newest == sent[-2:]
        # Trimmed by MAXLEN: what is left after it comes back, flagged as a possible gap.
        admin = aioredis.Redis.from_url(redis_server.url)
        try:
            await admin.xtrim(settings.stream_key, maxlen=3, approximate=False)
        finally:
            await admin.aclose()
        found, after = await history.since(messages[1].message_id, limit=100)
        assert not found and after == sent[3:]
        found, after = await history.since(messages[3].message_id, limit=100)
        assert found and after == sent[4:]
    finally:
        await history.close()
        await output.close()


async def test_a_corrupt_spool_file_is_a_clear_error(redis_server, tmp_path: Path) -> None:
    settings = settings_for(redis_server.url, tmp_path)
    settings.spool_path.parent.mkdir(parents=True)
    settings.spool_path.write_bytes(b"this is not an sqlite database" * 100)
    output = RedisOutput(settings)
    with pytest.raises(RuntimeError, match="cannot be opened"):
        await output.start()
    await output.close()
    assert settings.spool_path.read_bytes().startswith(b"this is not")  # left for a human


async def test_a_bad_dedupe_ttl_is_refused_before_anything_is_written(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # Built directly, past the loader's bound: the script itself must not XADD and then fail
    # on SET … EX 0 (each retry from the spool used to add another copy).
    settings = settings_for(redis_server.url, tmp_path, dedupe_ttl_s=0)
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    output = RedisOutput(settings)
    await output.start()
    try:
        for message in detection_series(2):
            await output.publish(message)
        await asyncio.sleep(0.3)  # a spool retry (retry_s = 0.05) would have run by now
        assert await client.xlen(settings.stream_key) == 0
        assert output.stats.rejected == 2 and output.stats.delivered == 0
        assert output.spool_depth == 0 and output.stats.spooled == 0
    finally:
        await output.close()
        await client.aclose()


async def test_an_error_reply_rejects_that_message_only(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """WRONGTYPE on the status hash is that message's problem, not an outage: it is counted,
    never retried or duplicated, and the detections after it are delivered at once."""
    settings = settings_for(redis_server.url, tmp_path)
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    await client.set(settings.status_hash, "not a hash")
    status = feed_status("up", T0)
    detections = detection_series(2)
    output = RedisOutput(settings)
    await output.start()
    try:
        await output.publish(status)
        for message in detections:
            await output.publish(message)
        await asyncio.sleep(0.3)
        assert output.stats.rejected == 1 and output.stats.errors == 1
        assert output.spool_depth == 0
        assert await stream_ids(client, settings.stream_key) == [m.message_id for m in detections]
        assert await client.get(settings.dedupe_prefix + status.message_id) is None
    finally:
        await output.close()
        await client.aclose()


async def test_a_full_spool_disk_keeps_messages_in_memory_until_it_has_room(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    """A full disk, made real for sqlite by ``PRAGMA max_page_count`` (the spool database may not
    grow: sqlite answers SQLITE_FULL, "database or disk is full", as on a full disk)."""
    settings = settings_for(own_redis.url, tmp_path)
    messages = detection_series(10)
    own_redis.stop()
    output = RedisOutput(settings)
    await output.start()
    try:
        spool = output.delivery.spool
        assert spool is not None
        (pages,) = spool._db.execute("PRAGMA page_count").fetchone()
        spool._db.execute(f"PRAGMA max_page_count = {pages}")
        for message in messages:
            await output.publish(message)  # none is lost, none raises
        assert output.spool_depth == 10
        assert spool.depth < 10  # some never reached the disk
        spool._db.execute("PRAGMA max_page_count = 1073741823")  # space again
        own_redis.start()
        await asyncio.wait_for(output.wait_drained(), 10)
        client = aioredis.Redis.from_url(own_redis.url, decode_responses=True)
        try:
            assert await stream_ids(client, settings.stream_key) == [m.message_id for m in messages]
        finally:
            await client.aclose()
    finally:
        await output.close()
