"""``hydromon subscribe``: print detections from the websocket server or the Redis stream.

Reconnects with backoff and resumes after the last message it printed (websocket ``since``, or
the last Redis stream entry id). Ctrl-C / SIGTERM end it cleanly with exit code 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import re
import signal
import sys
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException
from websockets.uri import parse_uri

from monitor.backoff import backoff_delay
from monitor.health.logs import get_logger
from monitor.publish.subscription import Subscription

log = get_logger(__name__)

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
STREAM_ID = re.compile(r"\d+(-\d+)?")
POLICY_VIOLATION = 1008  # the server refused our subscribe message: retrying cannot help


def fail(text: str) -> int:
    print(f"hydromon subscribe: {text}", file=sys.stderr, flush=True)
    return 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "subscribe", help="print detections as they come (websocket or Redis stream)"
    )
    parser.add_argument("--url", default="ws://127.0.0.1:8765", help="websocket server")
    parser.add_argument("--token", help="bearer token, if the server wants one")
    parser.add_argument("--feed", action="append", help="only this feed node (repeatable)")
    parser.add_argument("--label", action="append", help="only this label (repeatable)")
    parser.add_argument("--min-score", type=float, default=0.0, help="minimum score.max")
    parser.add_argument("--closed-only", action="store_true", help="only closed detections")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of text")
    parser.add_argument("--since", help="resume after this message id (or Redis entry id)")
    parser.add_argument("--redis", metavar="URL", help="read the Redis stream instead")
    parser.add_argument("--stream", default="hydromon:detections", help="Redis stream key")
    parser.set_defaults(func=run)


def format_line(message: dict[str, Any]) -> str:
    kind = message.get("kind")
    if kind == "detection":
        score = message["score"]
        return (
            f"{message['start_utc']}  {message['status']:<6}  {message['feed']['node']}  "
            f"{message['label']}  {message['duration_s']:.1f} s  "
            f"max {score['max']:.2f} mean {score['mean']:.2f}  "
            f"{message['positive_window_count']}/{message['window_count']} windows  "
            f"{message['id']}"
        )
    if kind == "feed_status":
        return f"{message['since_utc']}  status  {message['feed']['node']}  {message['state']}"
    return json.dumps(message)


def local_filter(args: argparse.Namespace) -> Subscription:
    """The websocket server's filters, applied locally (the Redis stream has no server-side
    filtering)."""
    return Subscription(
        feeds=frozenset(args.feed) if args.feed else None,
        labels=frozenset(args.label) if args.label else None,
        min_score=args.min_score,
        statuses=frozenset({"closed"}) if args.closed_only else None,
        kinds=frozenset({"detection"}) if args.closed_only else None,
    )


def subscribe_request(args: argparse.Namespace, since: str | None) -> dict[str, Any]:
    request: dict[str, Any] = {"type": "subscribe", "min_score": args.min_score}
    if args.feed:
        request["feeds"] = args.feed
    if args.label:
        request["labels"] = args.label
    if args.closed_only:
        request["kinds"] = ["detection"]
        request["statuses"] = ["closed"]
    if since:
        request["since"] = since
    return request


class OutputClosed(Exception):
    """Our stdout has gone away."""


class Printer:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def __call__(self, message: dict[str, Any]) -> None:
        text = json.dumps(message, separators=(",", ":")) if self.as_json else format_line(message)
        try:
            print(text, flush=True)
        except BrokenPipeError as error:
            # Not an OSError to the followers, which would take it for a network failure.
            raise OutputClosed("stdout closed") from error


def _backoff() -> Callable[[], float]:
    attempts = itertools.count()
    rng = random.Random()
    # ±20 % jitter: many subscribers of one restarted server do not all return at once.
    return lambda: backoff_delay(
        next(attempts), base_s=BACKOFF_START_S, max_s=BACKOFF_MAX_S, rng=rng, jitter=0.2
    )


async def follow_websocket(
    args: argparse.Namespace, emit: Callable[[dict], None], stop: asyncio.Event
) -> int:
    since: str | None = args.since
    try:
        parse_uri(args.url)
    except InvalidURI:
        return fail(f"--url {args.url!r} is not a websocket URL (ws://host:port or wss://…)")
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
    next_delay = _backoff()
    while not stop.is_set():
        try:
            async with connect(args.url, additional_headers=headers, open_timeout=5) as ws:
                await ws.send(json.dumps(subscribe_request(args, since)))
                log.info("subscribed", url=args.url, since=since)
                next_delay = _backoff()
                async for raw in ws:
                    try:
                        frame = json.loads(raw)
                    except ValueError:
                        log.warning("ignoring a frame that is not JSON", frame=str(raw)[:80])
                        continue
                    kind = frame.get("kind")
                    if kind in ("detection", "feed_status"):
                        since = frame["message_id"]
                        emit(frame)
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
                return fail(f"{args.url} refused us ({status})")
            log.warning("server refused the connection, retrying", status=status)
        except ConnectionClosed as error:
            if error.rcvd is not None and error.rcvd.code == POLICY_VIOLATION:
                return fail(f"the server rejected the subscription: {error.rcvd.reason}")
            if stop.is_set():
                break
            log.warning("connection lost, reconnecting", error=str(error))
        except (OSError, WebSocketException, TimeoutError) as error:
            if stop.is_set():
                break
            log.warning("connection lost, reconnecting", error=str(error))
        await asyncio.sleep(next_delay())
    return 0


async def follow_redis(
    args: argparse.Namespace, emit: Callable[[dict], None], stop: asyncio.Event
) -> int:
    last = args.since or "$"
    if last != "$" and not STREAM_ID.fullmatch(last):
        return fail(f"--since {last!r} is not a Redis stream entry id (like 1717761600000-0)")
    subscription = local_filter(args)
    try:
        client = aioredis.Redis.from_url(args.redis, decode_responses=True, socket_timeout=10)
    except ValueError as error:
        return fail(f"--redis {args.redis!r} is not a Redis URL: {error}")
    next_delay = _backoff()
    try:
        while not stop.is_set():
            try:
                if last == "$":
                    # Resolve "$" once so a reconnect does not skip what came in between.
                    newest = await client.xrevrange(args.stream, count=1)
                    last = newest[0][0] if newest else "0-0"
                reply = await client.xread({args.stream: last}, block=1000, count=100)
                next_delay = _backoff()
            except (ResponseError, AuthenticationError) as error:
                # Redis answered: the key, the id or the credentials are wrong, not the network.
                return fail(f"redis refused the read of {args.stream!r}: {error}")
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
                    if subscription.matches(message):
                        emit(message)
    finally:
        await client.aclose()
    return 0


async def _main(args: argparse.Namespace) -> int:
    if not math.isfinite(args.min_score):
        return fail(f"--min-score must be a finite number, not {args.min_score}")
    emit = Printer(args.json)
    follower = follow_redis if args.redis else follow_websocket
    stop = asyncio.Event()
    task = asyncio.ensure_future(follower(args, emit, stop))

    def on_signal() -> None:
        # The flag as well as the cancel: a client library that turns a cancellation into
        # its own error (or finishes the call anyway) must still find the loop's way out.
        stop.set()
        task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        return await task
    except asyncio.CancelledError:
        return 0
    except OutputClosed:
        # Whoever read our output has gone (e.g. `| head`): stop quietly. Point stdout at
        # /dev/null so the interpreter's final flush does not fail on the broken pipe.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 0
