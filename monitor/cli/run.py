"""``hydromon run``: follow the live streams and publish detections until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys

from monitor.cluster.shard import parse_shard
from monitor.config.loader import ConfigError, add_config_arguments, config_from_args
from monitor.health.logs import configure_logging
from monitor.timebase import parse_duration


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="follow the live streams and publish detections",
        description="Follow every enabled feed's live stream and publish detections. Each feed "
        "starts at the live edge, or --backfill earlier, or where it stopped last time when a "
        "state directory holds its resume point. SIGTERM/SIGINT stop it cleanly.",
    )
    add_config_arguments(parser, named=True)
    parser.add_argument(
        "--backfill",
        type=parse_duration,
        default=None,
        metavar="DURATION",
        help="start this far behind the live edge (e.g. 10m) when there is no resume point",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=parse_duration,
        default=None,
        metavar="DURATION",
        help="how long SIGTERM may take to drain the feeds (default: daemon.shutdown_timeout_s)",
    )
    parser.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="follow only the feeds of shard I of N (0-based; a stable hash of the node name), "
        "so N daemons share a feed list (default: cluster.shard, else every feed)",
    )
    parser.set_defaults(func=run, json_logs_default=True)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `hydromon --help` and light commands do not load torch.
    from monitor.runtime.daemon import Daemon, LiveMode, serve_until_signalled

    try:
        config = config_from_args(args)
    except ConfigError as error:
        print(f"hydromon: bad configuration: {error}", file=sys.stderr)
        return 2
    level = args.log_level if args.log_level != "info" else config.logging.level
    configure_logging(json_lines=args.log_json or config.logging.json, level=level)
    feeds = [feed.node for feed in config.enabled_feeds]
    if not feeds:
        print("hydromon: no feeds enabled in the configuration", file=sys.stderr)
        return 2
    shard_text = args.shard if args.shard is not None else config.cluster.shard
    if shard_text:
        try:
            shard = parse_shard(shard_text)
        except ValueError as error:
            print(f"hydromon: --shard: {error}", file=sys.stderr)
            return 2
        feeds = shard.select(feeds)
        if not feeds:
            print(f"hydromon: shard {shard} holds none of the enabled feeds", file=sys.stderr)
            return 2
    settings = config.daemon
    if args.shutdown_timeout is not None:
        seconds = args.shutdown_timeout.total_seconds()
        settings = dataclasses.replace(settings, shutdown_timeout_s=seconds)
    daemon = Daemon(config, LiveMode(args.backfill), feeds, settings=settings)
    return asyncio.run(serve_until_signalled(daemon))
