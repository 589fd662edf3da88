"""Step 8: export a model bundle the daemon can load (``hydromon run --model-bundle DIR``):
``<out>/bundle/`` with ``classifier/`` (HF format), ``denoiser.pk`` when the chosen model was
evaluated on denoised audio, and ``bundle.json`` (format version, labels, thresholds from the
evaluation, window/hop, the event rules an event-level evaluation chose, sample rates, metrics,
provenance, sha256 of every file). The bundle is built in a staging folder, renamed into place,
then verified with ``models.bundle.load_bundle``."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import ASTConfig, ASTFeatureExtractor

from models.bundle import (
    BUNDLE_FORMAT,
    CLASSIFIER_DIR,
    DENOISER_FILE,
    MANIFEST,
    bundle_files,
    load_bundle,
)
from models.classifier.features import FeatureParams
from models.denoiser import read_checkpoint
from monitor.timebase import format_utc, utc_now
from training.cli_support import step_command
from training.manifest import NOISE
from training.result_files import atomic_write_json, checksum
from training.steprun import StepRun, code_version

BUNDLE_DIR = "bundle"


@dataclass(frozen=True)
class ExportSettings:
    model: str = "finetuned_raw"  # which evaluated model's metrics and thresholds to ship
    target_labels: tuple[str, ...] = ()  # empty: every label but noise
    hop_s: float = 1.0


def _params(folder: Path) -> dict[str, Any]:
    path = folder / "params.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def run_export(
    settings: ExportSettings,
    out: Path,
    classifier: Path,
    evaluation: Path,
    *,
    denoiser: Path | None = None,
    max_units: int | None = None,
) -> Path:
    inputs = {"classifier": classifier, "evaluation": evaluation}
    if denoiser is not None:
        inputs["denoiser"] = denoiser
    run = StepRun("export", out, settings, inputs=inputs, max_units=max_units)
    metrics_path = evaluation / "metrics.json" if evaluation.is_dir() else evaluation
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    chosen = metrics.get("models", {}).get(settings.model)
    if chosen is None:
        raise ValueError(
            f"{metrics_path} has no model {settings.model!r}; "
            f"it has {sorted(metrics.get('models', {}))}"
        )
    if chosen["audio"] == "denoised" and denoiser is None:
        raise ValueError(f"{settings.model} was evaluated on denoised audio: pass --denoiser")
    if chosen["audio"] == "raw" and denoiser is not None:
        raise ValueError(
            f"{settings.model} was evaluated on raw audio: "
            "its thresholds do not hold after a denoiser"
        )
    config = ASTConfig.from_pretrained(classifier)
    labels = [config.id2label[i] for i in range(config.num_labels)]
    targets = list(settings.target_labels) or [label for label in labels if label != NOISE]
    missing = [label for label in targets if label not in chosen["thresholds"]]
    if missing:
        raise ValueError(f"the evaluation of {settings.model} has no threshold for {missing}")
    params = FeatureParams.from_extractor(ASTFeatureExtractor.from_pretrained(classifier))
    staging = out / f".{BUNDLE_DIR}.staging"
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(classifier, staging / CLASSIFIER_DIR)
    rates = {"classifier": params.sampling_rate}
    if denoiser is not None:
        rates["denoiser"] = read_checkpoint(denoiser).options.sr
        shutil.copyfile(denoiser, staging / DENOISER_FILE)
    manifest = {
        "format_version": BUNDLE_FORMAT,
        "labels": labels,
        "target_labels": targets,
        "thresholds": {label: chosen["thresholds"][label]["threshold"] for label in targets},
        "threshold_basis": {label: chosen["thresholds"][label] for label in targets},
        "window_s": params.window_seconds,
        "hop_s": float(chosen.get("hop_s", settings.hop_s)),
        "events": dict(chosen.get("events", {})),
        "sample_rates": rates,
        "metrics": {k: v for k, v in chosen.items() if k not in ("scores",)}
        | {"model": settings.model},
        "provenance": {
            "created_utc": format_utc(utc_now()),
            "code_version": code_version(),
            "classifier_training": _params(classifier.parent),
            "denoiser_training": _params(denoiser.parent) if denoiser is not None else None,
            "evaluation": _params(metrics_path.parent),
            "evaluation_sha256": checksum(metrics_path),
        },
        "files": bundle_files(staging),
    }
    atomic_write_json(staging / MANIFEST, manifest)
    target = out / BUNDLE_DIR
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    bundle = load_bundle(target)
    run.unit_done("bundle", files=len(bundle.files))
    run.finish(bundle=str(target), labels=targets, thresholds=bundle.thresholds)
    return target


COMMAND = step_command("export", ExportSettings, run_export)
main = COMMAND.main


if __name__ == "__main__":
    raise SystemExit(main())
