"""Redis output: stream + pub/sub + feed-status hash, idempotent, with a disk spool.

One Lua script does everything for a message atomically: if the dedupe key
``<dedupe_prefix><message_id>`` exists the message was already delivered and nothing happens;
otherwise ``XADD <stream> MAXLEN ~ N`` (fields ``message_id``, ``kind``, ``message``), ``SET`` the
dedupe key to the new stream entry id with a TTL, ``HSET`` the feed-status hash for
``feed_status`` messages, and ``PUBLISH`` on the channel. A retry after a lost reply is therefore
harmless (exactly once), and the dedupe key doubles as the index that turns a websocket client's
``since`` message id into a stream position. A Lua script is atomic but not transactional (a
command that fails leaves the earlier ones done), so the script checks its arguments and does
everything that can fail before ``XADD``: once the entry is added, ``SET`` cannot fail.

An error reply from Redis (``ResponseError``, e.g. a key of the wrong type) is a permanent
error of that message, not an outage: it is logged and counted (``rejected``) and the message is
not retried. Out-of-memory, read-only replica and busy replies are outages like a lost
connection.

When Redis is down or too slow (``timeout_s``) messages go to the spool and are delivered from
it, oldest first, once Redis answers again (``monitor/publish/spooled.py``: the same mechanism
as the MQTT and webhook outputs; retried every ``retry_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import OutOfMemoryError, ReadOnlyError, RedisError, ResponseError

from monitor.detect.records import Message
from monitor.detect.wire import encode, message_key
from monitor.health.logs import get_logger
from monitor.publish.spool import read_spool
from monitor.publish.spooled import (
    DeliveryRejected,
    DeliveryUnavailable,
    SpooledDelivery,
    SpoolStats,
)

log = get_logger(__name__)

# Everything that can fail runs before XADD, so a failure never leaves a stream entry behind
# without its dedupe key (a retry would add it again).
_DELIVER = """
local ttl = tonumber(ARGV[4])
if not ttl or ttl < 1 or ttl ~= math.floor(ttl) then
    return redis.error_reply('ERR dedupe TTL must be a whole number of seconds >= 1')
end
local maxlen = tonumber(ARGV[3])
if not maxlen or maxlen < 1 then
    return redis.error_reply('ERR stream MAXLEN must be >= 1')
end
local seen = redis.call('GET', KEYS[2])
if seen then return {0, seen} end
if ARGV[6] == 'feed_status' then redis.call('HSET', KEYS[3], ARGV[7], ARGV[1]) end
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*',
    'message_id', ARGV[2], 'kind', ARGV[6], 'message', ARGV[1])
redis.call('SET', KEYS[2], entry, 'EX', ttl)
redis.call('PUBLISH', ARGV[5], ARGV[1])
return {1, entry}
"""

# Error replies that mean "Redis cannot take writes right now", not "this message is bad".
_OUTAGE_REPLIES = ("BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN")


@dataclass(frozen=True)
class RedisSettings:
    url: str = "redis://127.0.0.1:6379/0"
    stream_key: str = "hydromon:detections"
    stream_maxlen: int = field(default=100_000, metadata={"min": 1})  # approximate (MAXLEN ~)
    channel: str = "hydromon:detections"
    status_hash: str = "hydromon:feed_status"  # field = feed node, value = latest message
    dedupe_prefix: str = "hydromon:seen:"
    dedupe_ttl_s: int = field(default=7 * 86_400, metadata={"min": 1})
    timeout_s: float = field(default=1.0, metadata={"gt": 0.0})  # per command; slower: down
    # spool delivery retry interval while Redis is down
    retry_s: float = field(default=1.0, metadata={"gt": 0.0})
    spool_path: Path = Path("var/spool/redis.sqlite3")
    spool_max_messages: int = field(default=100_000, metadata={"min": 1})


class RedisUnavailable(DeliveryUnavailable):
    pass


class RedisRejected(DeliveryRejected):
    """Redis answered this message with an error: retrying it would fail the same way."""


def connect(settings: RedisSettings) -> aioredis.Redis:
    # No hidden retries: an outage must surface quickly so messages go to the spool.
    return aioredis.Redis.from_url(
        settings.url,
        socket_timeout=settings.timeout_s,
        socket_connect_timeout=settings.timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


@dataclass
class RedisStats(SpoolStats):
    delivered: int = 0
    duplicates: int = 0
    errors: int = 0  # failed deliveries (outages and rejections)
    rejected: int = 0  # Redis answered with an error: the message is given up (logged)


class RedisOutput:
    def __init__(self, settings: RedisSettings, name: str = "redis") -> None:
        self.name = name
        self.settings = settings
        self.stats = RedisStats()
        self._client = connect(settings)
        self._script = self._client.register_script(_DELIVER)
        self.delivery = SpooledDelivery(
            name,
            self._deliver,
            settings.spool_path,
            settings.spool_max_messages,
            retry_delay=lambda _failures: settings.retry_s,
            stats=self.stats,
        )

    @property
    def spool_depth(self) -> int:
        """Messages waiting for Redis: in the spool, and in memory when its disk is full."""
        return self.delivery.depth

    async def start(self) -> None:
        await self.delivery.start()

    async def publish(self, record: Message) -> None:
        await self.delivery.submit(encode(record))

    async def wait_drained(self) -> None:
        await self.delivery.wait_drained()

    async def close(self) -> None:
        await self.delivery.close()
        with contextlib.suppress(RedisError, OSError):
            await self._client.aclose()

    async def _deliver(self, message: dict[str, Any]) -> None:
        settings = self.settings
        ident = message_key(message)
        feed = message.get("feed") or {}
        try:
            async with asyncio.timeout(settings.timeout_s * 2):
                keys = [settings.stream_key, settings.dedupe_prefix + ident, settings.status_hash]
                created, _entry = await self._script(
                    keys=keys,
                    args=[
                        json.dumps(message, separators=(",", ":")),
                        ident,
                        settings.stream_maxlen,
                        settings.dedupe_ttl_s,
                        settings.channel,
                        message.get("kind", ""),
                        feed.get("node", ""),
                    ],
                )
        except ResponseError as error:
            self.stats.errors += 1
            if _is_outage(error):
                raise RedisUnavailable(f"{type(error).__name__}: {error}") from error
            self.stats.rejected += 1
            log.error("redis rejected the message: not retried", message_id=ident, error=str(error))
            raise RedisRejected(str(error)) from error
        except (RedisError, OSError, TimeoutError) as error:
            self.stats.errors += 1
            raise RedisUnavailable(f"{type(error).__name__}: {error}") from error
        if int(created):
            self.stats.delivered += 1
        else:
            self.stats.duplicates += 1


def _is_outage(error: ResponseError) -> bool:
    if isinstance(error, OutOfMemoryError | ReadOnlyError):
        return True
    return str(error).startswith(_OUTAGE_REPLIES)


def _entry_order(entry: str) -> tuple[int, int]:
    millis, _, seq = entry.partition("-")
    return int(millis), int(seq or 0)


class RedisHistory:
    """Reads back what the Redis output wrote: resume after a message id.

    The history is the stream followed by the output's spool (same ``spool_path``): messages
    waiting there while Redis is down or catching up are found too, in order, each once.
    """

    def __init__(self, settings: RedisSettings) -> None:
        self.settings = settings
        self._client = connect(settings)

    async def since(self, message_id: str, limit: int) -> tuple[bool, list[dict[str, Any]]]:
        """Messages after ``message_id`` (oldest first, at most ``limit``). When the id is unknown
        (never seen or expired) returns ``(False, the newest `limit` messages)``. When its entry
        has been trimmed from the stream (``MAXLEN``) the messages after it are returned with
        ``False``: some of those that followed it may have been trimmed too. An id still in the
        spool is answered from it alone, even while Redis is down; otherwise a Redis error is
        raised."""
        spool = self.settings.spool_path
        # In the spool: everything after it is there too (the spool is the newest part).
        in_spool, spooled = await asyncio.to_thread(read_spool, spool, message_id, limit)
        if in_spool:
            return True, spooled
        # The spool before the stream: a message the output moves from one to the other in
        # between is then seen twice (and de-duplicated below), never missed.
        _all, waiting = await asyncio.to_thread(read_spool, spool, None, limit)
        place, stored = await self._from_stream(message_id, limit)  # raises if Redis is down
        if len(stored) >= limit and place != "unknown":
            return place == "found", stored
        ids = {message_key(message) for message in stored}
        merged = stored + [m for m in waiting if message_key(m) not in ids]
        if place == "unknown":
            return False, merged[-limit:]
        return place == "found", merged[:limit]

    async def _from_stream(self, message_id: str, limit: int) -> tuple[str, list[dict[str, Any]]]:
        """``("found" | "trimmed" | "unknown", messages)`` from the stream alone."""
        key = self.settings.stream_key
        entry = await self._client.get(self.settings.dedupe_prefix + message_id)
        if entry is None:
            rows = await self._client.xrevrange(key, count=limit)
            return "unknown", [json.loads(fields["message"]) for _id, fields in reversed(rows)]
        oldest = await self._client.xrange(key, count=1)
        if not oldest or _entry_order(oldest[0][0]) > _entry_order(entry):
            rows = await self._client.xrange(key, count=limit)
            return "trimmed", [json.loads(fields["message"]) for _id, fields in rows]
        rows = await self._client.xrange(key, min=f"({entry}", max="+", count=limit)
        return "found", [json.loads(fields["message"]) for _id, fields in rows]

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._client.aclose()
