"""``hydromon replay``: the live pipeline over an archived time range, as fast as it goes."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path

from monitor.config.loader import ConfigError, add_config_arguments, config_from_args
from monitor.health.logs import configure_logging
from monitor.timebase import parse_utc


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="run the detector over an archived time range",
        description="Read [START, END) of each feed from S3 and run the same pipeline as "
        "`hydromon run` over it, all feeds sharing one engine, with a progress bar. Detections "
        "go to the configured outputs (not the websocket server), or with --out DIR only to "
        "JSON lines + Raven tables (and the detections' media) under DIR. An interrupted "
        "replay resumes from its state file "
        "(state.dir) when run again with the same range.",
    )
    add_config_arguments(parser, named=True)
    parser.add_argument(
        "--feed", action="append", required=True, metavar="NODE", help="node (repeatable)"
    )
    parser.add_argument("--start", required=True, type=parse_utc, help="UTC start (ISO 8601)")
    parser.add_argument("--end", required=True, type=parse_utc, help="UTC end (ISO 8601)")
    parser.add_argument("--out", type=Path, default=None, help="write only files, here")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show the progress bar (default: when stderr is a terminal)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `hydromon --help` and light commands do not load torch.
    from monitor.runtime import wiring
    from monitor.runtime.daemon import Daemon, ReplayMode, serve_until_signalled
    from monitor.runtime.progress import ReplayProgress

    try:
        config = config_from_args(args)
        mode = ReplayMode(args.start, args.end)
    except (ConfigError, ValueError) as error:
        print(f"hydromon: {error}", file=sys.stderr)
        return 2
    if args.out is not None and config.media.enabled:  # everything the replay writes, there
        media = dataclasses.replace(config.media, directory=args.out / "media")
        config = dataclasses.replace(config, media=media)
    feeds = list(dict.fromkeys(args.feed))
    known = [feed.node for feed in config.feeds]
    unknown = [feed for feed in feeds if feed not in known]
    if unknown:
        print(
            f"hydromon: unknown feed {', '.join(map(repr, unknown))}: the configuration has "
            f"{', '.join(known) or 'no feeds'}",
            file=sys.stderr,
        )
        return 2
    level = args.log_level if args.log_level != "info" else config.logging.level
    configure_logging(json_lines=args.log_json, level=level)
    progress = ReplayProgress(feeds, mode.start, mode.end, enabled=args.progress)
    outputs = wiring.make_outputs(config, websocket=False, files_dir=args.out)
    daemon = Daemon(
        config,
        mode,
        feeds,
        settings=config.daemon,
        outputs=outputs,
        serve_http=False,
        progress=progress,
    )
    try:
        code = asyncio.run(serve_until_signalled(daemon))
    finally:
        progress.close()
    if daemon.started.is_set():  # nothing was replayed when it could not start
        audio_s = sum(pipeline.progress.audio_s for pipeline in daemon.pipelines.values())
        print(progress.summary(audio_s), file=sys.stderr)
    return code
