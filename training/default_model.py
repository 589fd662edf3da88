"""``make default-model``: the embedded default detector, from the repository's own open audio.

1. Leave-one-call-type-out cross-validation (training.detector_eval) with the
   ``[train_classifier]`` recipe: one model per held-out humpback call type, trained without it
   and without the held-out background; the event rules (threshold, minimum positive windows,
   quiet time) are chosen on the folds' held-out streams.
2. The same recipe trained on all the open audio (fixed seeds).
3. Exported with the export step (``training.export``), the cross-validation table and the chosen
   event rules in ``bundle.json``; with ``--install DIR`` the bundle, with the licence and
   provenance of its training audio, is written to DIR (``models/default``).

``python -m training.default_model --config config/training.toml --out runs/default-model
--install models/default [--cv-only] [--set section.key=VALUE ...]``. Each model is a resumable
step run under ``--out``: a rerun with the same settings skips the finished ones. ``--cv-only``
stops after step 1 (a variant's figure, in ``--out``/evaluation/metrics.json)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.bundle import MANIFEST, bundle_files, load_bundle
from training.cli_support import parse_overrides
from training.detector_eval import (
    MAX_FALSE_PER_HOUR,
    FoldScores,
    StreamSettings,
    choose_rules,
    cross_validate,
)
from training.export import ExportSettings, run_export
from training.manifest import Clip, write_manifest
from training.open_audio import DATA, open_audio_clips
from training.result_files import atomic_write_json, atomic_write_text
from training.step_settings import load_settings, read_config
from training.train_classifier import TrainClassifierSettings, run_train_classifier

MODEL_NAME = "detector"
TARGET = "humpback"


@dataclass(frozen=True)
class DefaultModelSettings:
    folds: tuple[str, ...] = ()  # held-out call types to cross-validate; empty: all of them
    hop_s: float = 1.0
    background_hours: float = 0.5  # held-out background per fold
    snrs_db: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 20.0)
    repeats: int = 2
    threads: int = 1  # torch threads (the machine is shared)


def stream_settings(settings: DefaultModelSettings) -> StreamSettings:
    return StreamSettings(
        hop_s=settings.hop_s,
        snrs_db=settings.snrs_db,
        repeats=settings.repeats,
        background_hours=settings.background_hours,
    )


def _train(settings: TrainClassifierSettings, clips: list[Clip], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.csv"
    write_manifest(manifest, clips)
    return run_train_classifier(settings, folder / "classifier", manifest)


def evaluation_metrics(cv: dict[str, Any], hop_s: float) -> dict[str, Any]:
    """The evaluation in the shape the export step reads (``models.<name>``)."""
    rules = cv["rules"]
    return {
        "models": {
            MODEL_NAME: {
                "audio": "raw",
                "hop_s": hop_s,
                "thresholds": {
                    TARGET: {
                        "threshold": rules["threshold"],
                        "basis": "leave-one-call-type-out, event level "
                        f"(≤ {cv['max_false_per_hour']} false detections/h)",
                    }
                },
                "events": {
                    "min_positive_windows": rules["min_positive_windows"],
                    "quiet_s": rules["quiet_s"],
                },
                "cross_validation": cv,
            }
        }
    }


LICENCE_FILES = {
    "LICENSE-training-audio.txt": DATA / "LICENSE-orcasound.txt",
}


def install(bundle: Path, target: Path, provenance: str) -> Path:
    """Copy the bundle to ``target`` with the training audio's licence and provenance, and
    list the added files' checksums in its manifest (then verify it)."""
    staging = target.with_name(f".{target.name}.staging")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(bundle, staging)
    for name, source in LICENCE_FILES.items():
        shutil.copyfile(source, staging / name)
    atomic_write_text(staging / "PROVENANCE.md", provenance)
    manifest = json.loads((staging / MANIFEST).read_text(encoding="utf-8"))
    manifest["files"] = bundle_files(staging)
    atomic_write_json(staging / MANIFEST, manifest)
    load_bundle(staging)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return target


def provenance_text(clips: list[Clip], cv: dict[str, Any]) -> str:
    lines = [
        "# The embedded default detector: training audio and how it was made",
        "",
        "Made by `make default-model` (`python -m training.default_model`) from the repository's",
        "own open audio, all of it from public Orcasound repositories under the MIT License",
        "(LICENSE-training-audio.txt; details in tests/data/README.md and",
        "tests/data/orca-calls/README.md):",
        "",
    ]
    for clip in clips:
        role = "humpback call" if clip.binary else f"negative ({clip.label})"
        lines.append(f"- `{clip.clip_id}`: {role}")
    lines += [
        "",
        "Leave-one-call-type-out figures (held-out call type and held-out background; see",
        'docs/benchmarks.md, "Detector generalisation"): '
        f"{cv['types_detected']}/{cv['types']} call types detected, recall {cv['recall']:.2f}, "
        f"{cv['false_per_hour']:.2f} false detections/h over {cv['background_hours']:.1f} h.",
        "",
    ]
    return "\n".join(lines)


def save_scores(folds: list[FoldScores], path: Path) -> None:
    """Every fold's window scores on its two streams and its call spans, for diagnosis."""
    arrays: dict[str, np.ndarray] = {}
    for fold in folds:
        arrays[f"{fold.call_type}.calls"] = fold.call_scores
        arrays[f"{fold.call_type}.call_spans"] = np.asarray(fold.calls, dtype=np.float64)
        arrays[f"{fold.call_type}.background"] = fold.background_scores
    np.savez(path, **arrays)


def run_default_model(
    recipe: TrainClassifierSettings,
    settings: DefaultModelSettings,
    out: Path,
    install_to: Path | None = None,
    *,
    cv_only: bool = False,
) -> Path:
    torch.set_num_threads(settings.threads)
    clips = open_audio_clips()
    streams = stream_settings(settings)
    folds, window_s = cross_validate(
        clips,
        lambda kept, name: _train(recipe, kept, out / "folds" / name),
        streams,
        types=settings.folds or None,
    )
    cv = choose_rules(folds, settings.hop_s, window_s)
    cv |= {"max_false_per_hour": MAX_FALSE_PER_HOUR, "window_s": window_s, "hop_s": settings.hop_s}
    evaluation = out / "evaluation"
    evaluation.mkdir(parents=True, exist_ok=True)
    atomic_write_json(evaluation / "metrics.json", evaluation_metrics(cv, settings.hop_s))
    save_scores(folds, evaluation / "window_scores.npz")
    if cv_only:
        return evaluation
    all_clips = open_audio_clips(all_train=True)
    classifier = _train(recipe, all_clips, out / "full")
    export = out / "export"
    if export.exists():
        shutil.rmtree(export)  # cheap, and its params must follow the new evaluation
    bundle = run_export(
        ExportSettings(model=MODEL_NAME, target_labels=(TARGET,), hop_s=settings.hop_s),
        export,
        classifier,
        evaluation,
    )
    if install_to is not None:
        return install(bundle, install_to, provenance_text(all_clips, cv))
    return bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.default_model", description=__doc__)
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "config" / "training.toml",
        help="training TOML ([train_classifier] recipe; default: the repo's config/training.toml)",
    )
    parser.add_argument("--out", type=Path, required=True, help="work folder (resumes)")
    parser.add_argument("--install", type=Path, help="write the finished bundle here")
    parser.add_argument(
        "--cv-only",
        action="store_true",
        help="stop after the cross-validation (no full model, no export): a variant's figure",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a [train_classifier] or [default_model] setting",
    )
    args = parser.parse_args(argv)
    from monitor.health.logs import configure_logging

    configure_logging(json_lines=False)
    try:
        config = read_config(args.config)
        overrides: dict[str, dict[str, Any]] = {"train_classifier": {}, "default_model": {}}
        for key, value in parse_overrides(args.set).items():
            section, _, name = key.partition(".")
            if section not in overrides or not name:
                raise ValueError(f"--set {key}: use train_classifier.KEY or default_model.KEY")
            overrides[section][name] = value
        recipe = load_settings(
            TrainClassifierSettings, config, "train_classifier", overrides["train_classifier"]
        )
        settings = load_settings(
            DefaultModelSettings, config, "default_model", overrides["default_model"]
        )
        bundle = run_default_model(
            replace(recipe), settings, args.out, args.install, cv_only=args.cv_only
        )
    except (ValueError, OSError) as error:
        print(f"default-model: {error}", file=sys.stderr)
        return 2
    print(bundle)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
