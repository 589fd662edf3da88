"""``hydromon replay``: the live pipeline over an archived time range, as fast as it goes."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path
from typing import Any

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
        "replay resumes from its state file (state.dir) when run again with the same range. "
        "With --cluster the range is split into work units (feed × cluster.unit_s) run on a "
        "Ray cluster, with the same detections (docs/scaling.md; needs the extra: "
        "pip install 'hydromon[cluster]').",
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
    parser.add_argument(
        "--cluster",
        default=None,
        metavar="ADDRESS",
        help="run on Ray: local (a cluster on this machine), auto (the one this machine "
        "belongs to) or ray://HOST:PORT",
    )
    parser.add_argument(
        "--status-file",
        type=Path,
        default=None,
        help="with --cluster: where to keep the JSON status (default: in state.dir)",
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
    if args.cluster is not None:
        try:
            return run_cluster(args, config, mode, feeds, outputs, progress)
        finally:
            progress.close()
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


def run_cluster(
    args: argparse.Namespace,
    config: Any,
    mode: Any,
    feeds: list[str],
    outputs: list[Any],
    progress: Any,
) -> int:
    """``--cluster``: the driver of a cluster replay (monitor/cluster/driver.py)."""
    try:
        from monitor.cluster import driver
    except ImportError as error:
        if (error.name or "").split(".")[0] != "ray":
            raise
        print("hydromon: --cluster needs Ray: pip install 'hydromon[cluster]'", file=sys.stderr)
        return 2
    from monitor.cluster.units import ReplayRange
    from monitor.runtime.daemon import serve_until_signalled
    from monitor.runtime.locks import LockBusy, lock_state_dir

    state_dir = None if config.state.dir is None else Path(config.state.dir)
    try:
        lock = None if state_dir is None else lock_state_dir(state_dir)
    except (LockBusy, OSError) as error:
        print(f"hydromon: {error}", file=sys.stderr)
        return 2
    try:
        driver.connect(args.cluster, config.cluster.local_cpus)
        replay = driver.ClusterReplay(
            config,
            ReplayRange(tuple(feeds), mode.start, mode.end),
            outputs,
            state_dir=state_dir,
            status_path=args.status_file,
            progress=progress,
        )
        code = asyncio.run(serve_until_signalled(replay))
    except (driver.ClusterError, ConnectionError) as error:
        print(f"hydromon: {error}", file=sys.stderr)
        return 2
    finally:
        driver.shutdown()
        if lock is not None:
            lock.release()
    audio_s = sum(result.audio_s for result in replay.results)
    print(progress.summary(audio_s), file=sys.stderr)
    return code
