"""Follow the daemon's websocket server: reconnect with backoff, resume after the last message.

``subscribe_messages`` yields the decoded wire messages (dicts), ``subscribe`` the same as
typed records (``monitor/client/events.py``). After a lost connection the next subscribe
carries ``since`` = the last message id yielded, so nothing is missed or repeated while the
server still has it (its history, else the Redis stream). A refusal that retrying cannot fix
(a wrong token, a subscribe message the server rejects) raises ``SubscriptionRefused``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException
from websockets.uri import parse_uri

from monitor.client.events import Event, parse
from monitor.client.reconnect import Delays, reconnect_delays
from monitor.health.logs import get_logger
from monitor.publish.subscription import Subscription

log = get_logger(__name__)

POLICY_VIOLATION = 1008  # the server refused our subscribe message: retrying cannot help
MESSAGE_KINDS = ("detection", "feed_status")


class SubscriptionRefused(Exception):
    """The server (or Redis) refused for good: a wrong token, filter, key or id."""


def subscribe_request(subscription: Subscription, since: str | None) -> dict[str, Any]:
    """The ``subscribe`` message the server reads back as ``subscription``."""
    request: dict[str, Any] = {"type": "subscribe", "min_score": subscription.min_score}
    for key in ("feeds", "labels", "kinds", "statuses"):
        names = getattr(subscription, key)
        if names is not None:
            request[key] = sorted(names)
    if since:
        request["since"] = since
    return request


def check_websocket_url(url: str) -> None:
    try:
        parse_uri(url)
    except InvalidURI:
        raise ValueError(f"{url!r} is not a websocket URL (ws://host:port or wss://…)") from None


async def subscribe_messages(
    url: str,
    *,
    token: str | None = None,
    subscription: Subscription | None = None,
    since: str | None = None,
    stop: asyncio.Event | None = None,
    delays: Callable[[], Delays] = reconnect_delays,
) -> AsyncIterator[dict[str, Any]]:
    """Detection and feed-status messages as the server sends them, across reconnects, until
    ``stop`` is set (or the caller stops iterating)."""
    check_websocket_url(url)
    wanted = subscription or Subscription()
    stop = stop or asyncio.Event()
    headers = {"Authorization": f"Bearer {token}"} if token else None
    next_delay = delays()
    while not stop.is_set():
        try:
            async with connect(url, additional_headers=headers, open_timeout=5) as ws:
                await ws.send(json.dumps(subscribe_request(wanted, since)))
                log.info("subscribed", url=url, since=since)
                next_delay = delays()
                async for raw in ws:
                    try:
                        frame = json.loads(raw)
                    except ValueError:
                        log.warning("ignoring a frame that is not JSON", frame=str(raw)[:80])
                        continue
                    kind = frame.get("kind")
                    if kind in MESSAGE_KINDS:
                        since = frame["message_id"]
                        yield frame
                    elif (
                        kind == "subscribed" and frame.get("since") and not frame.get("since_found")
                    ):
                        log.warning(
                            "resume point not found on the server: messages may be missing",
                            since=frame["since"],
                            replayed=frame.get("replayed"),
                        )
        except InvalidStatus as error:
            status = error.response.status_code
            if status in (401, 403):
                raise SubscriptionRefused(f"{url} refused us ({status})") from None
            log.warning("server refused the connection, retrying", status=status)
        except ConnectionClosed as error:
            if error.rcvd is not None and error.rcvd.code == POLICY_VIOLATION:
                raise SubscriptionRefused(
                    f"the server rejected the subscription: {error.rcvd.reason}"
                ) from None
            if stop.is_set():
                break
            log.warning("connection lost, reconnecting", error=str(error))
        except (OSError, WebSocketException, TimeoutError) as error:
            if stop.is_set():
                break
            log.warning("connection lost, reconnecting", error=str(error))
        await asyncio.sleep(next_delay())


async def subscribe(
    url: str,
    *,
    token: str | None = None,
    feeds: Iterable[str] | None = None,
    labels: Iterable[str] | None = None,
    min_score: float = 0.0,
    statuses: Iterable[str] | None = None,
    kinds: Iterable[str] | None = None,
    since: str | None = None,
    stop: asyncio.Event | None = None,
) -> AsyncIterator[Event]:
    """``async for event in subscribe("ws://host:8765", token=…, labels=["humpback"])``:
    typed detections and feed status, filtered by the server, resumed across reconnects."""
    subscription = Subscription(
        feeds=None if feeds is None else frozenset(feeds),
        labels=None if labels is None else frozenset(labels),
        min_score=min_score,
        statuses=None if statuses is None else frozenset(statuses),
        kinds=None if kinds is None else frozenset(kinds),
    )
    # The server checks the filters; a bad one comes back as SubscriptionRefused.
    async for message in subscribe_messages(
        url, token=token, subscription=subscription, since=since, stop=stop
    ):
        yield parse(message)
