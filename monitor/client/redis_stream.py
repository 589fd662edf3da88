"""Read the Redis output's stream (``redis.stream_key``): follow it, or work it as a group.

``stream_messages`` follows the stream from an entry id (or its end), reconnecting with backoff
and resuming after the last entry yielded; filters are applied here (the stream has none).

``StreamWorkers`` is for workers that share the detections between them: a Redis consumer
group (``XREADGROUP``), each entry handed to one worker of the group, kept pending until the
worker ``ack``s it. A worker that comes back (same ``consumer`` name) first gets its own entries
still pending (those it had not acked when it stopped), then new ones; entries left pending by
a worker that never came back are claimed after ``claim_idle_s`` (``XAUTOCLAIM``). Delivery is
at least once: a worker that stops between its work and its ack sees that entry again, so the
work should be idempotent (the message id is the key).

A mistake retrying cannot fix (a wrong key type, a bad id, bad credentials) raises
``SubscriptionRefused``; a URL that is not a Redis URL, ``ValueError``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from monitor.client.events import Event, parse
from monitor.client.reconnect import Delays, reconnect_delays
from monitor.client.websocket_client import SubscriptionRefused
from monitor.health.logs import get_logger
from monitor.publish.subscription import Subscription

log = get_logger(__name__)

STREAM_ID = re.compile(r"\d+(-\d+)?")
DEFAULT_STREAM = "hydromon:detections"


def check_entry_id(entry_id: str) -> None:
    """``ValueError`` unless ``entry_id`` is a stream entry id (``1717761600000-0``) or ``$``."""
    if entry_id != "$" and not STREAM_ID.fullmatch(entry_id):
        raise ValueError(f"{entry_id!r} is not a Redis stream entry id (like 1717761600000-0)")


def check_redis_url(url: str) -> None:
    """``ValueError`` unless ``url`` is a Redis URL (nothing is connected)."""
    _client(url)


def _client(url: str) -> aioredis.Redis:
    try:
        return aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=10)
    except ValueError as error:
        raise ValueError(f"{url!r} is not a Redis URL: {error}") from None


def _refused(stream: str, error: RedisError) -> SubscriptionRefused:
    return SubscriptionRefused(f"redis refused the read of {stream!r}: {error}")


async def stream_messages(
    url: str,
    *,
    stream: str = DEFAULT_STREAM,
    since: str | None = None,
    subscription: Subscription | None = None,
    stop: asyncio.Event | None = None,
    delays: Callable[[], Delays] = reconnect_delays,
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """``(entry id, message)`` after ``since`` (an entry id; None: from now on)."""
    last = since or "$"
    check_entry_id(last)
    wanted = subscription or Subscription()
    stop = stop or asyncio.Event()
    client = _client(url)
    next_delay = delays()
    try:
        while not stop.is_set():
            try:
                if last == "$":
                    # Resolve "$" once so a reconnect does not skip what came in between.
                    newest = await client.xrevrange(stream, count=1)
                    last = newest[0][0] if newest else "0-0"
                reply = await client.xread({stream: last}, block=1000, count=100)
                next_delay = delays()
            except (ResponseError, AuthenticationError) as error:
                # Redis answered: the key, the id or the credentials are wrong, not the network.
                raise _refused(stream, error) from None
            except (RedisError, OSError) as error:
                if stop.is_set():
                    break
                log.warning("redis unavailable, retrying", error=str(error))
                await asyncio.sleep(next_delay())
                continue
            for _stream, entries in reply:
                for entry_id, fields in entries:
                    last = entry_id
                    message = json.loads(fields["message"])
                    if wanted.matches(message):
                        yield entry_id, message
    finally:
        await client.aclose()


@dataclass(frozen=True, slots=True)
class StreamEntry:
    entry_id: str  # what ``ack`` takes
    event: Event


class StreamWorkers:
    """One worker of a consumer group on the stream::

    async with StreamWorkers(url, group="archivers", consumer="worker-1") as worker:
        async for entry in worker:
            await archive(entry.event)
            await worker.ack(entry)
    """

    def __init__(
        self,
        url: str,
        *,
        group: str,
        consumer: str,
        stream: str = DEFAULT_STREAM,
        start: str = "$",  # where a new group starts: "$" new entries only, "0" the whole stream
        count: int = 100,
        block_ms: int = 1000,
        claim_idle_s: float | None = 300.0,  # None: never take over another worker's entries
        delays: Callable[[], Delays] = reconnect_delays,
    ) -> None:
        check_entry_id(start)
        self.stream, self.group, self.consumer = stream, group, consumer
        self.start, self.count, self.block_ms = start, count, block_ms
        self.claim_idle_s = claim_idle_s
        self._delays = delays
        self._client = _client(url)
        self._group_ready = False

    async def __aenter__(self) -> StreamWorkers:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.aclose()

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            await self._client.xgroup_create(self.stream, self.group, id=self.start, mkstream=True)
        except ResponseError as error:
            if not str(error).startswith("BUSYGROUP"):  # the group exists: join it
                raise
        self._group_ready = True

    async def ack(self, entry: StreamEntry | str) -> None:
        entry_id = entry.entry_id if isinstance(entry, StreamEntry) else entry
        await self._client.xack(self.stream, self.group, entry_id)

    async def _pending_own(self, after: str) -> list[tuple[str, dict[str, str]]]:
        """This consumer's entries after ``after`` delivered before but never acked (after a
        restart); their fields are empty when the stream has trimmed them meanwhile."""
        reply = await self._client.xreadgroup(
            self.group, self.consumer, {self.stream: after}, count=self.count
        )
        return [(i, f) for _s, entries in reply for i, f in entries]

    async def _claim_abandoned(self) -> list[tuple[str, dict[str, str]]]:
        if self.claim_idle_s is None:
            return []
        reply = await self._client.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=int(self.claim_idle_s * 1000),
            start_id="0-0",
            count=self.count,
        )
        return [(i, f) for i, f in reply[1] if f]

    async def _new(self) -> list[tuple[str, dict[str, str]]]:
        reply = await self._client.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=self.count,
            block=self.block_ms,
        )
        return [(i, f) for _s, entries in reply for i, f in entries]

    async def __aiter__(self) -> AsyncIterator[StreamEntry]:
        next_delay = self._delays()
        pending_after: str | None = "0"  # after (re)connecting: own pending entries first
        while True:
            try:
                await self._ensure_group()
                batch = [] if pending_after is None else await self._pending_own(pending_after)
                if batch:
                    pending_after = batch[-1][0]
                else:
                    pending_after = None
                    batch = await self._claim_abandoned() or await self._new()
                next_delay = self._delays()
            except (ResponseError, AuthenticationError) as error:
                raise _refused(self.stream, error) from None
            except (RedisError, OSError) as error:
                log.warning("redis unavailable, retrying", error=str(error))
                self._group_ready = False
                pending_after = "0"
                await asyncio.sleep(next_delay())
                continue
            for entry_id, fields in batch:
                if not fields:  # trimmed from the stream while pending: nothing left to do
                    await self.ack(entry_id)
                    continue
                yield StreamEntry(entry_id, parse(json.loads(fields["message"])))
