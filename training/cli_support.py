"""One command-line shape for every step: ``--config F --out DIR`` plus the step's inputs.

Used both by ``hydromon train <step>`` and by ``python -m training.<step>``."""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.steps import STEPS, StepSpec

EXIT_FAILED = 2
EXIT_INTERRUPTED = 3


@dataclass(frozen=True)
class StepCommand:
    spec: StepSpec
    settings: type
    run: Callable[[Any, Path, dict[str, Path], int | None], Any]

    def main(self, argv: list[str] | None = None) -> int:
        """``python -m training.<step>``: parse ``argv``, run the step, return the exit code."""
        return run_step_command(self, argv)


def step_command(name: str, settings: type, function: Callable[..., Any]) -> StepCommand:
    """The command of step ``name`` that calls ``function(settings, out, *required, **optional,
    max_units=...)``: the spec's required inputs positionally in the spec's order, its optional
    inputs by name (``None`` when not given)."""
    spec = STEPS[name]
    required = [input_name for input_name in spec.inputs if input_name not in spec.optional]

    def run(values: Any, out: Path, inputs: dict[str, Path], max_units: int | None) -> Any:
        optional = {input_name: inputs.get(input_name) for input_name in spec.optional}
        positional = [inputs[input_name] for input_name in required]
        return function(values, out, *positional, **optional, max_units=max_units)

    return StepCommand(spec=spec, settings=settings, run=run)


def add_step_arguments(parser: argparse.ArgumentParser, spec: StepSpec) -> None:
    parser.add_argument("--config", type=Path, help="training TOML (default: built-in defaults)")
    parser.add_argument(
        "--out", type=Path, required=True, help="output folder (resumes if it exists)"
    )
    for name, text in spec.inputs.items():
        optional = name in spec.optional
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=Path,
            required=not optional,
            help=text + (" (optional)" if optional else ""),
        )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override one [{spec.section}] setting (VALUE is a TOML value)",
    )
    parser.add_argument(
        "--max-units", type=int, help="stop after this many units of work (resume later)"
    )


def parse_overrides(items: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r}: use KEY=VALUE")
        try:
            overrides[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            overrides[key.strip()] = value  # a bare word is a string
    return overrides


def execute(command: StepCommand, args: argparse.Namespace) -> int:
    from training.step_settings import load_settings, read_config
    from training.steprun import StepInterrupted

    spec = command.spec
    try:
        config = read_config(args.config)
        settings = load_settings(command.settings, config, spec.section, parse_overrides(args.set))
        inputs = {
            name: getattr(args, name) for name in spec.inputs if getattr(args, name) is not None
        }
        for name, path in inputs.items():
            if not path.exists():
                raise ValueError(f"--{name.replace('_', '-')} {path} does not exist")
        command.run(settings, args.out, inputs, args.max_units)
    except StepInterrupted as stop:
        print(str(stop), file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, OSError) as error:
        print(f"hydromon train {spec.name}: {error}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def run_step_command(command: StepCommand, argv: list[str] | None = None) -> int:
    from monitor.health.logs import configure_logging

    parser = argparse.ArgumentParser(
        prog=f"python -m {command.spec.module}", description=command.spec.help
    )
    add_step_arguments(parser, command.spec)
    args = parser.parse_args(argv)
    configure_logging(json_lines=False)
    return execute(command, args)
