"""``hydromon config show``: print the effective configuration (file < environment < flags)."""

from __future__ import annotations

import argparse
import sys

from monitor.config.loader import (
    ConfigError,
    add_config_arguments,
    config_from_args,
    config_toml,
    masked,
)
from monitor.config.render import to_json


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("config", help="inspect the configuration")
    actions = parser.add_subparsers(dest="config_action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show",
        help="print the effective configuration; exit 2 with the error if it is bad",
        description="Print the effective configuration after the file, HYDROMON_* environment "
        "variables and --set overrides; exits 2 and names the setting if it is bad.",
    )
    add_config_arguments(show, named=True)
    show.add_argument("--format", choices=("toml", "json"), default="toml")
    show.set_defaults(func=show_config)


def show_config(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"hydromon: bad configuration: {exc}", file=sys.stderr)
        return 2
    shown = masked(config)  # tokens and URL passwords never reach a terminal or a log
    sys.stdout.write(to_json(shown) + "\n" if args.format == "json" else config_toml(shown))
    return 0
