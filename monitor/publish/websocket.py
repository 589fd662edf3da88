"""Websocket server output: live messages to subscribed clients, with resume and back-pressure.

Protocol (see docs/detections.md): the client sends ``{"type": "subscribe", ...filters,
"since": <message_id>?}``; the server answers ``{"kind": "subscribed", ...}``, then any missed
messages after ``since`` (from the in-memory history, else the Redis stream and the Redis
output's spool when configured),
then live messages, plus ``{"kind": "heartbeat"}`` every ``heartbeat_s``. Each client has a
bounded queue; a client that falls ``client_queue`` messages behind is disconnected with close
code 4000 "too slow: N messages behind" and nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import socket
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from monitor.detect.records import Message
from monitor.detect.wire import encode
from monitor.health.logs import get_logger
from monitor.publish.redis import RedisHistory
from monitor.publish.subscription import Subscription
from monitor.timebase import format_utc, utc_now

log = get_logger(__name__)

TOO_SLOW = 4000
BAD_REQUEST = 1008


@dataclass(frozen=True)
class WebsocketSettings:
    host: str = "127.0.0.1"
    port: int = field(default=8765, metadata={"min": 0, "max": 65535})  # 0 = any free port
    token: str | None = None  # when set, clients need "Authorization: Bearer <token>"
    client_queue: int = field(default=256, metadata={"min": 1})
    history_size: int = field(default=1000, metadata={"min": 0})
    resume_limit: int = field(default=10_000, metadata={"min": 0})  # most replayed per "since"
    heartbeat_s: float = field(default=15.0, metadata={"gt": 0.0})
    ping_interval_s: float = field(default=20.0, metadata={"gt": 0.0})
    ping_timeout_s: float = field(default=20.0, metadata={"gt": 0.0})
    close_timeout_s: float = field(default=2.0, metadata={"min": 0.0})
    # Cap on each connection's kernel send buffer. Without it Linux grows the buffer to
    # megabytes and a stalled client hides there instead of showing up in its queue.
    send_buffer_bytes: int | None = 256 * 1024


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


@dataclass(eq=False)
class _Client:
    ws: ServerConnection
    queue: asyncio.Queue[str]
    subscription: Subscription | None = None
    # While a resume is being fetched, live messages wait here (bounded like the queue).
    held: list[tuple[str, str]] | None = None
    dropped: bool = False
    sender: asyncio.Task[None] | None = field(default=None, repr=False)


class WebsocketOutput:
    def __init__(
        self,
        settings: WebsocketSettings,
        history: RedisHistory | None = None,
        name: str = "websocket",
    ) -> None:
        self.name = name
        self.settings = settings
        self.redis_history = history
        self._history: deque[tuple[str, dict[str, Any], str]] = deque(maxlen=settings.history_size)
        self._clients: set[_Client] = set()
        self._server: Server | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        # Clients dropped for falling behind (a running total for the metrics).
        self.slow_disconnects = 0

    @property
    def client_count(self) -> int:
        return len(self._clients)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("websocket server not started")
        return int(next(iter(self._server.sockets)).getsockname()[1])

    async def start(self) -> None:
        settings = self.settings
        self._server = await serve(
            self._handle,
            settings.host,
            settings.port,
            process_request=self._check_token if settings.token else None,
            ping_interval=settings.ping_interval_s,
            ping_timeout=settings.ping_timeout_s,
            close_timeout=settings.close_timeout_s,
            max_size=64 * 1024,
        )
        self._heartbeat = asyncio.create_task(self._beat(), name=f"{self.name}-heartbeat")
        log.info("websocket server listening", host=settings.host, port=self.port)

    async def publish(self, record: Message) -> None:
        ident = record.message_id
        message = encode(record)
        text = _dumps(message)
        self._history.append((ident, message, text))
        for client in list(self._clients):
            subscription = client.subscription
            if subscription is None or client.dropped or not subscription.matches(message):
                continue
            if client.held is not None:
                if len(client.held) >= self.settings.client_queue:
                    self._drop_slow(client, len(client.held))
                else:
                    client.held.append((ident, text))
                continue
            self._offer(client, text)

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self._server is not None:
            self._server.close()  # closes every connection with 1001 (going away)
            await self._server.wait_closed()
            self._server = None
        if self.redis_history is not None:
            await self.redis_history.close()

    def _check_token(self, connection: ServerConnection, request: Request) -> Response | None:
        expected = f"Bearer {self.settings.token}"
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), expected.encode()):
            return None
        return connection.respond(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token\n")

    def _offer(self, client: _Client, text: str) -> None:
        try:
            client.queue.put_nowait(text)
        except asyncio.QueueFull:
            self._drop_slow(client, client.queue.qsize())

    def _drop_slow(self, client: _Client, behind: int) -> None:
        client.dropped = True
        self.slow_disconnects += 1
        log.warning(
            "websocket client too slow, disconnecting",
            remote=client.ws.remote_address,
            behind=behind,
        )
        if client.sender is not None:
            client.sender.cancel()
        task = asyncio.create_task(client.ws.close(TOO_SLOW, f"too slow: {behind} messages behind"))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            text = _dumps({"kind": "heartbeat", "utc": format_utc(utc_now())})
            for client in list(self._clients):
                if client.subscription is not None and client.held is None and not client.dropped:
                    self._offer(client, text)

    async def _send_loop(self, client: _Client) -> None:
        while True:
            text = await client.queue.get()
            await client.ws.send(text)

    async def _handle(self, ws: ServerConnection) -> None:
        sock = ws.transport.get_extra_info("socket")
        if self.settings.send_buffer_bytes is not None and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.settings.send_buffer_bytes)
        client = _Client(ws, asyncio.Queue(self.settings.client_queue))
        client.sender = asyncio.create_task(self._send_loop(client))
        self._clients.add(client)
        try:
            async for raw in ws:
                try:
                    subscription = Subscription.parse(json.loads(raw))
                except ValueError as error:  # JSONDecodeError is a ValueError
                    await ws.close(BAD_REQUEST, f"bad subscribe: {error}"[:120])
                    return
                except RecursionError:
                    await ws.close(BAD_REQUEST, "bad subscribe: JSON nested too deeply")
                    return
                await self._subscribe(client, subscription)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            if client.sender is not None:
                client.sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await client.sender

    async def _subscribe(self, client: _Client, subscription: Subscription) -> None:
        client.held = []
        client.subscription = subscription
        found, source, missed = False, None, []
        if subscription.since is not None:
            found, source, missed = await self._missed(subscription.since)
        missed = [m for m in missed if subscription.matches(m)]
        ack = {
            "kind": "subscribed",
            "filters": subscription.describe(),
            "since": subscription.since,
            "since_found": found,
            "history_source": source,
            "replayed": len(missed),
        }
        # Resume frames go through the queue at the client's own pace (await put); live ones
        # that arrive meanwhile are held and appended after, minus those already replayed.
        sent = set()
        for frame in [ack, *missed]:
            if not await self._put_paced(client, _dumps(frame)):
                return
            if "message_id" in frame:
                sent.add(frame["message_id"])
        while client.held:
            ident, text = client.held.pop(0)
            if ident not in sent and not await self._put_paced(client, text):
                return
        client.held = None

    @staticmethod
    async def _put_paced(client: _Client, text: str) -> bool:
        """Queue a resume frame, waiting for room; False once the client is gone."""
        while not client.dropped and client.sender is not None and not client.sender.done():
            try:
                client.queue.put_nowait(text)
                return True
            except asyncio.QueueFull:
                await asyncio.sleep(0.02)
        return False

    async def _missed(self, since: str) -> tuple[bool, str | None, list[dict[str, Any]]]:
        limit = self.settings.resume_limit
        idents = [ident for ident, _m, _t in self._history]
        if since in idents:
            after = list(self._history)[idents.index(since) + 1 :]
            return True, "memory", [message for _i, message, _t in after][-limit:]
        if self.redis_history is not None:
            try:
                found, messages = await self.redis_history.since(since, limit)
            except Exception as error:
                # Honest fallback: what memory holds, flagged since_found=false (a gap).
                log.warning("redis history unavailable for resume", error=repr(error))
            else:
                return found, "redis", self._add_unstored_tail(messages, limit)
        return False, "memory", [message for _i, message, _t in self._history][-limit:]

    def _add_unstored_tail(self, stored: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
        """``stored`` (from the Redis stream) plus what the stream does not hold yet.

        Every output receives the messages in one order, so what Redis lacks (messages its
        output refused, e.g. with a full spool) is the newest part of the memory history:
        everything after the last message the two share, or all of it when they share none.
        """
        if len(stored) >= limit:
            return stored  # truncated: the client resumes again from the last one it gets
        ids = {str(message.get("message_id")) for message in stored}
        history = list(self._history)
        shared = [i for i, (ident, _m, _t) in enumerate(history) if ident in ids]
        tail = history[shared[-1] + 1 :] if shared else history
        extra = [message for ident, message, _t in tail if ident not in ids]
        if extra:
            log.info("resume adds messages not yet in the redis stream", count=len(extra))
        return (stored + extra)[:limit]
