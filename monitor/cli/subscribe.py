"""``hydromon subscribe``: print detections from the websocket server or the Redis stream.

A thin wrapper over ``monitor.client``: it reconnects with backoff and resumes after the last
message it printed (websocket ``since``, or the last Redis stream entry id). Ctrl-C / SIGTERM
end it cleanly with exit code 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from monitor.client.redis_stream import check_entry_id, check_redis_url, stream_messages
from monitor.client.websocket_client import (
    SubscriptionRefused,
    check_websocket_url,
    subscribe_messages,
)
from monitor.client.websocket_client import subscribe_request as client_request
from monitor.publish.subscription import Subscription


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
    """What ``follow_websocket`` asks the server for."""
    return client_request(local_filter(args), since)


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


async def follow_websocket(
    args: argparse.Namespace, emit: Callable[[dict], None], stop: asyncio.Event
) -> int:
    try:
        check_websocket_url(args.url)
    except ValueError as error:
        return fail(f"--url {error}")
    try:
        async for message in subscribe_messages(
            args.url, token=args.token, subscription=local_filter(args), since=args.since, stop=stop
        ):
            emit(message)
    except SubscriptionRefused as error:
        return fail(str(error))
    return 0


async def follow_redis(
    args: argparse.Namespace, emit: Callable[[dict], None], stop: asyncio.Event
) -> int:
    try:
        check_entry_id(args.since or "$")
    except ValueError as error:
        return fail(f"--since {error}")
    try:
        check_redis_url(args.redis)
    except ValueError as error:
        return fail(f"--redis {error}")
    try:
        messages = stream_messages(
            args.redis,
            stream=args.stream,
            since=args.since,
            subscription=local_filter(args),
            stop=stop,
        )
        async for _entry_id, message in messages:
            emit(message)
    except SubscriptionRefused as error:
        return fail(str(error))
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
