"""``hydromon replay``: the live pipeline over an archived time range, as fast as it goes."""

from __future__ import annotations

import argparse
import asyncio
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
        "JSON lines + Raven tables under DIR. An interrupted replay resumes from its state file "
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
    from monitor.runtime.daemon import ArchiveRange, Daemon, serve_until_signalled
    from monitor.runtime.progress import ReplayProgress
    from monitor.runtime.resume import StateError, load_resume_point, state_path

    try:
        config = config_from_args(args)
        span = ArchiveRange(args.start, args.end)
    except (ConfigError, ValueError) as error:
        print(f"hydromon: {error}", file=sys.stderr)
        return 2
    level = args.log_level if args.log_level != "info" else config.logging.level
    configure_logging(json_lines=args.log_json, level=level)
    feeds = list(dict.fromkeys(args.feed))
    progress = ReplayProgress(feeds, span.start, span.end, enabled=args.progress)
    state_dir = config.state.dir
    try:
        for feed in feeds if state_dir is not None else ():
            point = load_resume_point(state_path(Path(state_dir), span.scope, feed), feed)
            if point is not None:
                progress.resumed(feed, point.next_window_utc)
    except StateError as error:
        progress.close()
        print(f"hydromon: {error}", file=sys.stderr)
        return 2
    outputs = wiring.make_outputs(config, websocket=False, files_dir=args.out)
    daemon = Daemon(
        config,
        span,
        feeds,
        settings=config.daemon,
        outputs=outputs,
        serve_http=False,
        on_progress=progress.update,
    )
    try:
        code = asyncio.run(serve_until_signalled(daemon))
    finally:
        progress.close()
    print(
        f"replayed {progress.total_done_s:.0f} s of audio from {len(feeds)} feed(s) "
        f"at {progress.speed():.1f}× real time",
        file=sys.stderr,
    )
    return code
