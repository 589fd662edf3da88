"""``hydromon export``: closed detections from the index as CSV, JSON lines, Raven tables or a
training dataset (``monitor/index/export.py``)."""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from monitor.config.loader import ConfigError, add_config_arguments, config_from_args
from monitor.timebase import parse_utc


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from monitor.index.export import FORMATS

    parser = subparsers.add_parser(
        "export",
        help="closed detections from the index (csv, jsonl, raven, training)",
        description="Closed detections from the detection index (index.path), one row each, "
        "with the reviewers' verdicts. csv and jsonl go to --out FILE (default: stdout); raven "
        "writes a table per feed and day into --out DIR; training writes the confirmed "
        "(positives) and rejected (hard negatives) detections' clips and Raven tables into --out "
        "DIR, which `hydromon train prepare --source DIR` reads as it is.",
    )
    add_config_arguments(parser)
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--since", type=parse_utc, default=None, help="start_utc ≥ this (UTC)")
    parser.add_argument("--until", type=parse_utc, default=None, help="start_utc < this (UTC)")
    parser.add_argument("--feed", action="append", default=None, metavar="NODE")
    parser.add_argument("--label", action="append", default=None)
    parser.add_argument("--out", type=Path, default=None, help="file (csv, jsonl) or folder")
    parser.set_defaults(func=run)


@contextlib.contextmanager
def _text_out(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    from models.fileio import atomic_path

    with atomic_path(path) as temporary, temporary.open("w", encoding="utf-8", newline="") as out:
        yield out


def run(args: argparse.Namespace) -> int:
    from monitor.index import export
    from monitor.index.store import DetectionIndex, DetectionQuery

    try:
        config = config_from_args(args)
    except ConfigError as error:
        print(f"hydromon export: bad configuration: {error}", file=sys.stderr)
        return 2
    path = Path(config.index.path)
    if not path.is_file():
        print(f"hydromon export: no index at {path} (index.path)", file=sys.stderr)
        return 2
    if args.format in ("raven", "training") and args.out is None:
        print(f"hydromon export: --format {args.format} needs --out DIR", file=sys.stderr)
        return 2
    query = DetectionQuery(
        feeds=None if not args.feed else frozenset(args.feed),
        labels=None if not args.label else frozenset(args.label),
        since=args.since,
        until=args.until,
    )
    index = DetectionIndex(config.index)
    band = (config.files.low_freq_hz, config.files.high_freq_hz)
    try:
        detections = export.closed(index, query)
        if args.format in ("csv", "jsonl"):
            with _text_out(args.out) as out:
                write = export.write_csv if args.format == "csv" else export.write_jsonl
                count = write(detections, out)
            skipped: dict[str, int] = {}
        elif args.format == "raven":
            result = export.write_raven(detections, args.out, band)
            count, skipped = result.written, result.skipped
        else:
            media_dir = Path(config.media.directory)
            result = export.write_training(detections, args.out, media_dir, band)
            count, skipped = result.written, result.skipped
    except (OSError, sqlite3.Error) as error:
        print(f"hydromon export: {error}", file=sys.stderr)
        return 1
    finally:
        index.close()
    left_out = ", ".join(f"{n} {why}" for why, n in sorted(skipped.items()))
    where = "stdout" if args.out is None else str(args.out)
    note = f" (left out: {left_out})" if left_out else ""
    print(f"exported {count} detection(s) to {where}{note}", file=sys.stderr)
    return 0
