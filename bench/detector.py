"""Detector generalisation benchmark: leave-one-call-type-out, event level, held-out background.

The cross-validation itself is training/detector_eval.py, run by training/default_model.py
(``make default-model``), which stores the table in the bundle's bundle.json metrics. This script
prints that table as markdown (for docs/benchmarks.md), from a bundle, or after running the
recipe into a fresh work folder (``--run``; settings as training.default_model's ``--set``).

    python bench/detector.py                       # the table of models/default
    python bench/detector.py --run --out runs/bench-detector --set train_classifier.epochs=8
    python bench/detector.py --run --cv-only --set 'default_model.folds=["chirp","buzz"]'
    python bench/detector.py --rescore runs/s5 --mode both --out runs/s5-modes

``--rescore RUN`` re-scores the fold models a ``--run`` left in RUN/folds (nothing is retrained)
with the daemon's window selection of ``--mode`` (``cascade``: stage 1 + the windows centred on
its boxes; ``every-window``; ``both``, side by side), streams from ``[default_model]`` and
``--set default_model.KEY=VALUE``; the figures go to ``--out``/evaluation/modes.json.
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
    cascade = cv.get("mode") == "cascade"
    counted = "positive candidate(s)" if cascade else "positive window(s)"
    extra = " stage-1 box recall | background windows scored |" if cascade else ""
    lines = [
        f"{cv.get('mode', 'every-window')}: operating point chosen over the folds: threshold "
        f"{rules['threshold']}, {rules['min_positive_windows']} {counted}, quiet "
        f"{rules['quiet_s']} s (window {cv['window_s']} s, hop {cv['hop_s']} s).",
        "",
        "| held-out call type | calls found | recall | false detections | background h | FP/h |"
        + extra,
        "|---|---|---|---|---|---|" + "---|---|" * cascade,
    ]
    for row in cv["per_type"]:
        cells = (
            f" {row['box_recall']:.2f} | {row['background_scored_fraction']:.3f} |"
            if cascade
            else ""
        )
        lines.append(
            f"| {row['call_type']} | {row['found']}/{row['calls']} | {row['recall']:.2f} | "
            f"{row['false_detections']} | {row['background_hours']:.2f} | "
            f"{row['false_per_hour']:.1f} |" + cells
        )
    lines += [
        f"| **all** | {cv['types_detected']}/{cv['types']} types (recall ≥ 0.5) | "
        f"{cv['recall']:.2f} | | {cv['background_hours']:.2f} | {cv['false_per_hour']:.1f} |"
        + " |  |"
        * cascade,
    ]
    return "\n".join(lines)


def sweep_table(results: dict[str, dict]) -> str:
    """Recall, types found and FP/h of each mode per threshold, side by side."""
    modes = list(results)
    lines = [
        "Per threshold (1 positive window or candidate, quiet 3 s), all folds:",
        "",
        "| threshold | " + " | ".join(f"{m} recall | {m} types | {m} FP/h" for m in modes) + " |",
        "|---|" + "---|---|---|" * len(modes),
    ]
    rows = zip(*(results[m]["sweep"] for m in modes), strict=True)
    for points in rows:
        cells = " | ".join(
            f"{p['recall']:.2f} | {p['types_detected']} | {p['false_per_hour']:.1f}" for p in points
        )
        lines.append(f"| {points[0]['rules']['threshold']} | {cells} |")
    return "\n".join(lines)


def rescore(run: Path, out: Path, modes: list[str], overrides: list[str]) -> dict:
    """The fold models of ``run`` re-scored in ``modes`` (no training)."""
    import torch

    from training.cli_support import parse_overrides
    from training.default_model import DefaultModelSettings, stream_settings
    from training.detector_eval import compare_modes, cross_validate, fold_models
    from training.open_audio import open_audio_clips
    from training.result_files import atomic_write_json
    from training.step_settings import load_settings, read_config

    values = {}
    for key, value in parse_overrides(overrides).items():
        section, _, name = key.partition(".")
        if section != "default_model" or not name:
            raise ValueError(f"--set {key}: a rescore takes default_model.KEY only")
        values[name] = value
    config = read_config(ROOT / "config" / "training.toml")
    settings = load_settings(DefaultModelSettings, config, "default_model", values)
    torch.set_num_threads(settings.threads)
    streams = stream_settings(settings)
    folds, window_s = cross_validate(
        open_audio_clips(), fold_models(run), streams, types=settings.folds or None, modes=modes
    )
    results = compare_modes(folds, settings.hop_s, window_s, modes)
    (out / "evaluation").mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "evaluation" / "modes.json", {"run": str(run), "modes": results})
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--run", action="store_true", help="run the recipe first")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-detector")
    parser.add_argument(
        "--cv-only", action="store_true", help="with --run: the cross-validation only"
    )
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--rescore", type=Path, metavar="RUN", help="re-score RUN's fold models")
    parser.add_argument("--mode", choices=("cascade", "every-window", "both"), default="both")
    args = parser.parse_args()
    if args.rescore is not None:
        modes = ["every-window", "cascade"] if args.mode == "both" else [args.mode]
        try:
            results = rescore(args.rescore, args.out, modes, args.set)
        except (ValueError, OSError) as error:
            print(f"detector benchmark: {error}", file=sys.stderr)
            return 2
        print(f"machine: {platform.machine()}, {platform.python_version()}; folds {args.rescore}")
        print("\n\n".join([table(cv) for cv in results.values()] + [sweep_table(results)]))
        return 0
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
