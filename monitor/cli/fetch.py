"""``hydromon fetch``: write one feed's decoded audio over a UTC range to WAV/FLAC (+ .json).

The configuration is read as for ``run`` and ``replay`` (``--config``, ``HYDROMON_*``,
``--set``); ``--bucket``, ``--endpoint-url``, ``--region``, ``--channel-policy`` and
``--timing`` are shorthands for the settings they name. The work is ``monitor.audio.extract``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path

from monitor.audio.audiofile import AudioFileError
from monitor.audio.extract import FetchError, OutputNotWritable, fetch_range
from monitor.config.loader import (
    ConfigError,
    Override,
    add_config_arguments,
    config_from_args,
)
from monitor.config.sections import check_node
from monitor.health.logs import get_logger
from monitor.ingest.s3 import S3BucketMissing, S3Error
from monitor.ingest.timing import TimingSource
from monitor.timebase import parse_duration, parse_utc

log = get_logger(__name__)

# Flag → the setting it sets (applied over the file and environment, under --set).
SHORTHANDS: dict[str, str] = {
    "bucket": "s3.bucket",
    "endpoint_url": "s3.endpoint_url",
    "region": "s3.region",
    "channel_policy": "decoder.channel_policy",
    "timing": "follower.timing.precedence",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fetch", help="write a feed's decoded audio over a UTC range to WAV/FLAC (+ .json)"
    )
    add_config_arguments(parser)
    parser.add_argument("--feed", required=True, help="node name, e.g. rpi_orcasound_lab")
    parser.add_argument("--start", required=True, help="UTC start, e.g. 2024-06-07T12:00:00Z")
    length = parser.add_mutually_exclusive_group(required=True)
    length.add_argument("--duration", help="e.g. 5m, 90s, 1.5h")
    length.add_argument("--end", help="UTC end instead of a duration")
    parser.add_argument("-o", "--output", required=True, type=Path, help="x.flac or x.wav")
    parser.add_argument("--bucket", default=None, help="S3 bucket (s3.bucket)")
    parser.add_argument(
        "--endpoint-url",
        default=None,
        help="S3 endpoint (an emulator), or file:///DIR: a local mirror in the bucket's layout",
    )
    parser.add_argument("--region", default=None, help="S3 region (s3.region)")
    parser.add_argument(
        "--channel-policy",
        default=None,
        help="auto (skip a dead channel), mix, or an index (default: the feed's, else "
        "decoder.channel_policy)",
    )
    parser.add_argument(
        "--timing",
        choices=[s.value for s in TimingSource],
        default=None,
        help="segment start times from PROGRAM-DATE-TIME when present, or the number rule "
        "(follower.timing.precedence)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _shorthand_overrides(args: argparse.Namespace) -> list[Override]:
    overrides = []
    for dest, setting in SHORTHANDS.items():
        value = getattr(args, dest)
        if value is not None:
            flag = "--" + dest.replace("_", "-")
            overrides.append(Override(tuple(setting.split(".")), value, f"{flag} {value}"))
    return overrides


def run(args: argparse.Namespace) -> int:
    try:
        feed = check_node(args.feed, "--feed")
        start = parse_utc(args.start)
        end = parse_utc(args.end) if args.end else start + parse_duration(args.duration)
        # The shorthands sit under --set: appended to it, --set given later still wins.
        config = config_from_args(args, shorthands=_shorthand_overrides(args))
    except (ConfigError, ValueError) as error:
        print(f"hydromon fetch: {error}", file=sys.stderr)
        return 2
    # A feed the configuration does not list still fetches, with the decoder's channel.
    decoder = config.decoder_for(feed)
    if args.channel_policy is not None:
        decoder = dataclasses.replace(decoder, channel_policy=config.decoder.channel_policy)
    try:
        provenance = asyncio.run(
            fetch_range(
                feed,
                start,
                end,
                args.output,
                s3=config.s3,
                archive=config.follower.archive,
                decoder=decoder,
                progress=not args.no_progress,
            )
        )
    except (OutputNotWritable, S3BucketMissing) as error:  # configuration errors, like bad args
        print(f"hydromon fetch: {error}", file=sys.stderr)
        return 2
    except (FetchError, S3Error, AudioFileError) as error:
        log.error("fetch failed", error=str(error))
        return 1
    silent = sum(gap["duration_s"] for gap in provenance.gaps)
    log.info(
        "fetched",
        output=str(args.output),
        seconds=round(provenance.samples / provenance.sample_rate, 3),
        silent_s=round(silent, 3),
        segments=len(provenance.segments),
        gaps=len(provenance.gaps),
    )
    return 0
