"""``hydromon train <step> --config F --out DIR ...``: the offline training steps, in order
fetch → prepare → noise-refine → train-denoiser → denoise → train-classifier → evaluate → export.
A step's module (and torch) is imported only when that step runs."""

from __future__ import annotations

import argparse
import importlib

from training.cli_support import add_step_arguments, execute
from training.steps import STEPS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="offline training: fetch, prepare, noise-refine, train-denoiser, denoise, "
        "train-classifier, evaluate, export",
    )
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    for spec in STEPS.values():
        step = steps.add_parser(spec.name, help=spec.help, description=spec.help)
        add_step_arguments(step, spec)
        step.set_defaults(func=run_step, step_module=spec.module)


def run_step(args: argparse.Namespace) -> int:
    command = importlib.import_module(args.step_module).COMMAND
    return execute(command, args)
