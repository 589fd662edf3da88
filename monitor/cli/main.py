"""The ``hydromon`` command. Each subcommand lives in ``monitor/cli/<name>.py`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (returns an exit code)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from monitor import __version__
from monitor.health.logs import configure_logging

COMMANDS = ("run", "replay", "fetch", "subscribe", "config", "train", "demo", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hydromon", description="Streaming hydrophone monitor for the Orcasound live streams."
    )
    parser.add_argument("--version", action="version", version=f"hydromon {__version__}")
    parser.add_argument("--log-level", default="info", help="debug, info, warning, error")
    parser.add_argument(
        "--log-json", action="store_true", help="JSON-lines logs (the daemon's default)"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"monitor.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    json_lines = args.log_json or getattr(args, "json_logs_default", False)
    configure_logging(json_lines=json_lines, level=args.log_level)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
