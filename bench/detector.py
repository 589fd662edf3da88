"""Detector generalisation benchmark: leave-one-call-type-out, event level, held-out background.

The cross-validation itself is training/detector_eval.py, run by training/default_model.py
(``make default-model``), which stores the table in the bundle's bundle.json metrics. This script
prints that table as markdown (for docs/benchmarks.md), from a bundle, or after running the
recipe into a fresh work folder (``--run``; settings as training.default_model's ``--set``).

    python bench/detector.py                       # the table of models/default
    python bench/detector.py --run --out runs/bench-detector --set train_classifier.epochs=8
    python bench/detector.py --run --cv-only --set 'default_model.folds=["chirp","buzz"]'
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from models.bundle import load_bundle  # noqa: E402


def table(cv: dict) -> str:
    rules = cv["rules"]
    lines = [
        f"Operating point chosen over the folds: threshold {rules['threshold']}, "
        f"{rules['min_positive_windows']} positive window(s), quiet {rules['quiet_s']} s "
        f"(window {cv['window_s']} s, hop {cv['hop_s']} s).",
        "",
        "| held-out call type | calls found | recall | false detections | background h | FP/h |",
        "|---|---|---|---|---|---|",
    ]
    for row in cv["per_type"]:
        lines.append(
            f"| {row['call_type']} | {row['found']}/{row['calls']} | {row['recall']:.2f} | "
            f"{row['false_detections']} | {row['background_hours']:.2f} | "
            f"{row['false_per_hour']:.1f} |"
        )
    lines += [
        f"| **all** | {cv['types_detected']}/{cv['types']} types (recall ≥ 0.5) | "
        f"{cv['recall']:.2f} | | {cv['background_hours']:.2f} | {cv['false_per_hour']:.1f} |",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--run", action="store_true", help="run the recipe first")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-detector")
    parser.add_argument(
        "--cv-only", action="store_true", help="with --run: the cross-validation only"
    )
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args()
    bundle_dir = args.bundle
    if args.run:
        from training.default_model import main as default_model

        argv = ["--config", str(ROOT / "config" / "training.toml"), "--out", str(args.out)]
        for item in args.set:
            argv += ["--set", item]
        if default_model(argv + ["--cv-only"] * args.cv_only) != 0:
            return 2
        bundle_dir = args.out / "export" / "bundle"
    if args.run and args.cv_only:
        metrics = json.loads((args.out / "evaluation" / "metrics.json").read_text("utf-8"))
        cv = metrics["models"]["detector"]["cross_validation"]
    else:
        cv = load_bundle(bundle_dir).metrics["cross_validation"]
    print(f"machine: {platform.machine()}, {platform.python_version()}; bundle {bundle_dir}")
    print(table(cv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
