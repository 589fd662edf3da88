"""Live messages for ``GET /api/v1/events`` (Server-Sent Events), as a fan-out output.

Each connected client has a bounded queue of ready-made SSE frames; a client that falls
``client_queue`` frames behind is dropped (its stream ends with an ``event: error`` frame, the
browser's EventSource reconnects) and nobody else waits for it. Filters are the websocket's
(``monitor.publish.subscription.Subscription``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from monitor.detect.records import Message
from monitor.detect.wire import encode
from monitor.health.logs import get_logger
from monitor.publish.subscription import Subscription

log = get_logger(__name__)

_GONE = "gone"


@dataclass(frozen=True, slots=True)
class SseSettings:
    client_queue: int = field(default=256, metadata={"min": 1})
    heartbeat_s: float = field(default=15.0, metadata={"gt": 0.0})
    max_clients: int = field(default=100, metadata={"min": 1})


def sse_frame(event: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


def as_api_detection(message: dict[str, Any]) -> dict[str, Any]:
    """A wire detection in the API's DETECTION shape (media and review always present)."""
    return {**message, "media": message.get("media"), "review": None}


@dataclass(eq=False)
class EventClient:
    subscription: Subscription
    queue: asyncio.Queue[bytes | str]
    dropped: bool = False


class EventHub:
    """The fan-out output behind the SSE endpoint."""

    def __init__(self, settings: SseSettings | None = None, name: str = "events") -> None:
        self.name = name
        self.settings = settings or SseSettings()
        self.clients: set[EventClient] = set()
        self.slow_disconnects = 0

    async def start(self) -> None:
        return None

    async def publish(self, message: Message) -> None:
        if not self.clients:
            return
        wire = encode(message)
        kind = wire["kind"]
        data = as_api_detection(wire) if kind == "detection" else wire
        frame = sse_frame(kind, data, wire["message_id"])
        for client in list(self.clients):
            if client.dropped or not client.subscription.matches(wire):
                continue
            try:
                client.queue.put_nowait(frame)
            except asyncio.QueueFull:
                self._drop(client)

    def _drop(self, client: EventClient) -> None:
        self.slow_disconnects += 1
        log.warning("SSE client too slow, disconnecting", behind=client.queue.qsize())
        _end(client)

    def connect(self, subscription: Subscription) -> EventClient | None:
        """A new client, or None when ``max_clients`` are connected already."""
        if len(self.clients) >= self.settings.max_clients:
            return None
        client = EventClient(subscription, asyncio.Queue(self.settings.client_queue))
        self.clients.add(client)
        return client

    def disconnect(self, client: EventClient) -> None:
        self.clients.discard(client)

    async def next_frame(self, client: EventClient) -> bytes | None:
        """The client's next frame, a heartbeat comment after ``heartbeat_s`` of quiet, or None
        when the client was dropped."""
        try:
            item = await asyncio.wait_for(client.queue.get(), self.settings.heartbeat_s)
        except TimeoutError:
            return b": heartbeat\n\n"
        if item == _GONE:
            return None
        assert isinstance(item, bytes)
        return item

    async def close(self) -> None:
        for client in list(self.clients):
            _end(client)
        self.clients.clear()


def _end(client: EventClient) -> None:
    """Whatever the client still waits for is discarded; its stream ends."""
    client.dropped = True
    while not client.queue.empty():
        client.queue.get_nowait()
    client.queue.put_nowait(_GONE)
