"""``hydromon demo``: the whole daemon offline, on a node built from the repository's recordings.

The node (real Orcasound background, real humpback calls mixed in at known times) is written into
a local mirror under ``--dir`` one segment at a time, faster than real time, while the daemon
follows it live through the local store (``s3.endpoint_url = "file://…"``) with the configured
detector. The command prints where to look, then a summary of what was found against the calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.config.loader import ConfigError, add_config_arguments, config_from_args
from monitor.health.logs import configure_logging
from monitor.timebase import format_utc, parse_duration, parse_utc, utc_now

if TYPE_CHECKING:
    from monitor.ingest.demo_node import Stream
    from monitor.runtime.daemon import Daemon

DEMO_NODE = "rpi_orcasound_lab"  # a configured feed; its audio here is the repository's
DATA = Path(__file__).resolve().parents[2] / "tests" / "data"
SEGMENTS = 18
# (call, offset in seconds from the stream's start): one of each catalogue call type
PLACED = (
    ("AscMoan", 12.3),
    ("DescMoan", 36.7),
    ("Growl", 61.1),
    ("moan", 85.6),
    ("Chirp", 110.2),
    ("Creak", 134.4),
    ("Buzz", 158.8),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="offline demo: a real-audio node in a local mirror, followed live",
        description="Build a node from the repository's recordings (real Orcasound background, "
        "real humpback calls mixed in at known times), play it into a local mirror under --dir "
        "faster than real time, and run the daemon on it with the configured detector: "
        "detections on the websocket and in the files. No network, no services.",
    )
    add_config_arguments(parser, named=True)
    parser.add_argument(
        "--dir", type=Path, default=Path("var/demo"), help="demo directory (default var/demo)"
    )
    parser.add_argument(
        "--speed", type=float, default=6.0, help="times real time (default 6: a segment each 1.7 s)"
    )
    parser.add_argument(
        "--linger",
        type=parse_duration,
        default=None,
        metavar="DURATION",
        help="keep serving this long after the stream ends (e.g. 10m; Ctrl-C stops)",
    )
    parser.add_argument(
        "--data", type=Path, default=DATA, help="recordings: orcasound-hls/normal, humpback-calls"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.speed > 0:
        print("hydromon demo: --speed must be > 0", file=sys.stderr)
        return 2
    demo_dir: Path = args.dir.resolve()
    mirror = demo_dir / "mirror"
    args.feeds = args.feeds or DEMO_NODE
    if args.config_state_dir is None:
        args.config_state_dir = str(demo_dir / "state")
    # the demo's own settings first: the command line's --set still wins
    args.config_set = [
        f"s3.endpoint_url={mirror.as_uri()}",
        f"files.directory={demo_dir / 'detections'}",
        f"index.path={demo_dir / 'index.sqlite'}",
        f"media.directory={demo_dir / 'media'}",
        # the demo serves loopback only: anyone at the machine may mark detections on the page
        "api.allow_anonymous_review=true",
        "follower.poll_interval_s=0.2",
        "follower.quiet_after_arrival_s=0",
        *args.config_set,
    ]
    try:
        config = config_from_args(args)
    except ConfigError as error:
        print(f"hydromon demo: bad configuration: {error}", file=sys.stderr)
        return 2
    configure_logging(json_lines=args.log_json, level=args.log_level)
    node = args.feeds.split(",")[0]
    try:
        stream = _build(args.data, args.speed)
    except (OSError, ValueError) as error:
        print(f"hydromon demo: cannot build the demo node: {error}", file=sys.stderr)
        return 2
    for part in ("mirror", "detections", "state", "media"):  # each demo starts afresh
        shutil.rmtree(demo_dir / part, ignore_errors=True)
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm"):
        (demo_dir / name).unlink(missing_ok=True)
    mirror.mkdir(parents=True)
    calls_path = demo_dir / "calls.json"
    calls_path.write_text(json.dumps([_call_json(call) for call in stream.calls], indent=1))
    return asyncio.run(_demo(config, node, stream, args, demo_dir, calls_path))


def _build(data: Path, speed: float) -> Stream:
    from monitor.ingest import demo_node

    bed = demo_node.background(data / "orcasound-hls" / "normal")
    clips = demo_node.calls(data / "humpback-calls")
    seconds = SEGMENTS * demo_node.SEGMENT_S
    # Audio times in the past, ending 10 s before the last segment appears (like a live node).
    start = utc_now().timestamp() + seconds / speed - seconds - 10
    return demo_node.build_stream(int(start), seconds, PLACED, bed=bed, clips=clips)


def _call_json(call: Any) -> dict[str, str]:
    return {
        "call": call.name,
        "start_utc": format_utc(call.start_utc),
        "end_utc": format_utc(call.end_utc),
    }


async def _demo(
    config: Any, node: str, stream: Stream, args: argparse.Namespace, demo_dir: Path, calls: Path
) -> int:
    from monitor.ingest.demo_node import SEGMENT_S, play_live
    from monitor.runtime.daemon import Daemon, LiveMode

    # From the folder's first segment, however long the models take to load.
    backfill = utc_now() - stream.start_utc + timedelta(seconds=1)
    daemon = Daemon(config, LiveMode(backfill), [node])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):  # stop cleanly: open detections are closed
        loop.add_signal_handler(signum, stop.set)
    served = asyncio.create_task(daemon.run(stop))
    started = asyncio.create_task(daemon.started.wait())
    await asyncio.wait([served, started], return_when=asyncio.FIRST_COMPLETED)
    if served.done():
        started.cancel()
        return served.result()
    _print_where(config, daemon, node, demo_dir, calls, args.speed)
    player = asyncio.create_task(
        play_live(demo_dir / "mirror", node, stream, SEGMENT_S / args.speed)
    )
    finished = asyncio.create_task(_until_processed(daemon, node, stream, player))
    await asyncio.wait([served, finished], return_when=asyncio.FIRST_COMPLETED)
    if not served.done():
        if args.linger is not None:
            print(f"stream played; serving for {args.linger} more (Ctrl-C stops)", flush=True)
            await asyncio.wait([served], timeout=args.linger.total_seconds())
        stop.set()
    code = await served
    for task in (player, finished):
        task.cancel()
    _print_summary(Path(config.files.directory), stream)
    return code


async def _until_processed(
    daemon: Daemon, node: str, stream: Stream, player: asyncio.Task[None]
) -> None:
    await player
    pipeline = daemon.pipelines[node]
    windows = pipeline.windows
    last = stream.end_utc - timedelta(seconds=(windows.length_s or 0) + windows.hop_s)
    deadline = asyncio.get_running_loop().time() + 120
    while (pipeline.progress.processed_until or stream.start_utc) < last:
        if asyncio.get_running_loop().time() > deadline:
            print("hydromon demo: the daemon did not catch up within 120 s", file=sys.stderr)
            return
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.5)  # the last messages go out


def _print_where(
    config: Any, daemon: Daemon, node: str, demo_dir: Path, calls: Path, speed: float
) -> None:
    lines = [
        f"hydromon demo: node {node} from real recordings, played at {speed:g}x real time",
        f"  mirror (local store):  {demo_dir / 'mirror'}",
        f"  calls mixed in:        {calls}",
    ]
    if daemon.websocket_port is not None:
        ws = f"ws://{config.websocket.host}:{daemon.websocket_port}"
        lines.append(f"  websocket:             {ws}   (hydromon subscribe --url {ws})")
    if config.outputs.files:
        lines.append(f"  detection files:       {config.files.directory}")
    if daemon.http_port is not None:
        base = f"http://{config.http.host}:{daemon.http_port}"
        if config.api.enabled:
            lines.append(f"  page (listen, review): {base}/")
            lines.append(f"  API:                   {base}/api/v1/detections")
        lines.append(f"  status:                {base}/status")
    if config.media.enabled:
        lines.append(f"  clips, spectrograms:   {config.media.directory}")
    print("\n".join(lines), flush=True)


def _print_summary(directory: Path, stream: Stream) -> None:
    closed = [
        m
        for path in sorted((directory / "jsonl").glob("*.jsonl"))
        for m in map(json.loads, path.read_text().splitlines())
        if m.get("kind") == "detection" and m.get("status") == "closed"
    ]
    print(f"{len(closed)} detection(s) in {directory}:", flush=True)
    found: set[str] = set()
    for message in closed:
        start, end = parse_utc(message["start_utc"]), parse_utc(message["end_utc"])
        hits = [c.name for c in stream.calls if c.start_utc < end and start < c.end_utc]
        found.update(hits)
        what = f"call {', '.join(hits)}" if hits else "no mixed-in call"
        span = f"{format_utc(start)} .. {format_utc(end)}"
        print(f"  {message['label']} {span}: {what}", flush=True)
    print(f"{len(found)} of {len(stream.calls)} mixed-in calls detected", flush=True)
