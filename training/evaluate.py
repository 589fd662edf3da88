"""Step 7: evaluate on the held-out split and compare, on the same clips: the zero-shot AudioSet
baseline (when reachable), the fine-tuned model on raw audio, the fine-tuned model on denoised
audio, and (optionally) a model fine-tuned on denoised clips. Per-class precision/recall/F1,
macro and weighted averages, confusion matrix; for the detector (call vs noise) the PR curve,
average precision and the threshold that reaches ``target_precision``; per-label thresholds.
Writes ``metrics.json``, ``report.md``, per-model score tables and PNG figures (matplotlib: a
labelled confusion matrix and PR curve per model, and all detectors' PR curves in one figure).
One model is one unit of work."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from models.classifier.ast import ClassifierLoadError, load_classifier
from models.device import select_device
from training.audio import load_mono_fixed
from training.cli_support import step_command
from training.figures import (
    INSTALL_HINT,
    PRLine,
    confusion_figure,
    figures_available,
    pr_figure,
    save_figure,
)
from training.manifest import NOISE, Clip, read_manifest
from training.result_files import atomic_path, atomic_write_json, atomic_write_text
from training.scoring import (
    average_precision,
    classification_report,
    pr_curve,
    threshold_for_precision,
)
from training.steprun import StepRun


@dataclass(frozen=True)
class EvaluateSettings:
    split: str = "test"
    kinds: tuple[str, ...] = ("call", "noise")
    positive_label: str = "humpback"
    baseline: str = "MIT/ast-finetuned-audioset-10-10-0.4593"  # "" to leave the baseline out
    baseline_label: str = "Whale vocalization"
    baseline_threshold: float = 0.5
    target_precision: float = 0.9
    batch_size: int = 16
    figures: bool = True
    device: str = "auto"


@dataclass(frozen=True)
class Candidate:
    name: str
    checkpoint: str
    audio: str  # raw | denoised
    clips: list[Clip]
    zero_shot: bool = False


def clip_scores(
    checkpoint: str, clips: list[Clip], settings: EvaluateSettings, zero_shot: bool
) -> tuple[list[str], np.ndarray]:
    """(labels, (N, labels) scores) — softmax or sigmoid as the checkpoint's config says."""
    targets = [settings.baseline_label] if zero_shot else None
    classifier = load_classifier(checkpoint, select_device(settings.device), target_labels=targets)
    length = classifier.window_samples
    rows = []
    for start in range(0, len(clips), settings.batch_size):
        waves = [
            load_mono_fixed(clip.path, classifier.sample_rate, length)
            for clip in clips[start : start + settings.batch_size]
        ]
        rows.append(classifier.score(torch.from_numpy(np.stack(waves))).numpy())
    return list(classifier.target_labels), np.concatenate(rows)


def evaluate_candidate(candidate: Candidate, settings: EvaluateSettings) -> dict[str, Any]:
    labels, scores = clip_scores(
        candidate.checkpoint, candidate.clips, settings, candidate.zero_shot
    )
    is_call = np.array([c.binary for c in candidate.clips])
    if candidate.zero_shot:
        detector = scores[:, 0]
        class_labels = [NOISE, settings.positive_label]
        truth = [settings.positive_label if b else NOISE for b in is_call]
        guess = [
            settings.positive_label if s >= settings.baseline_threshold else NOISE for s in detector
        ]
        per_label = {}
    else:
        if NOISE not in labels:
            raise ValueError(
                f"{candidate.checkpoint} has no {NOISE!r} label; "
                "was it trained by train_classifier?"
            )
        detector = 1.0 - scores[:, labels.index(NOISE)]
        # A binary head's one positive label is not a call type (whatever it was named); a
        # call-type head's labels are the clips' own.
        call_types = {c.label for c in candidate.clips if c.binary}
        binary = len(labels) == 2 and labels[0] == NOISE and labels[1] not in call_types
        truth_all = [
            NOISE if not c.binary else (labels[1] if binary else c.label) for c in candidate.clips
        ]
        keep = [i for i, t in enumerate(truth_all) if t in labels]
        class_labels = labels
        truth = [truth_all[i] for i in keep]
        guess = [labels[int(scores[i].argmax())] for i in keep]
        per_label = {}
        for j, label in enumerate(labels):
            positives = np.array([t == label for t in truth_all], dtype=int)
            if label != NOISE and positives.sum():
                curve = pr_curve(positives, scores[:, j])
                per_label[label] = threshold_for_precision(curve, settings.target_precision)
    result: dict[str, Any] = {
        "checkpoint": candidate.checkpoint,
        "audio": candidate.audio,
        "clips": len(candidate.clips),
        "classification": classification_report(truth, guess, class_labels),
        "thresholds": per_label,
        "scores": {c.clip_id: float(s) for c, s in zip(candidate.clips, detector, strict=True)},
    }
    if is_call.sum():
        curve = pr_curve(is_call, detector)
        result["detector"] = {
            "average_precision": average_precision(curve),
            "threshold": threshold_for_precision(curve, settings.target_precision),
            "pr_curve": {
                "threshold": curve.thresholds.tolist(),
                "precision": curve.precision.tolist(),
                "recall": curve.recall.tolist(),
            },
        }
    return result


def draw_figures(out: Path, results: dict[str, Any], settings: EvaluateSettings) -> list[str]:
    """``confusion_<model>.png`` and ``pr_<model>.png`` per model, ``pr_detectors.png`` with
    every model's detector curve; returns the file names written."""
    written = []
    lines = {}
    for name, result in results.items():
        report = result["classification"]
        save_figure(
            confusion_figure(
                np.array(report["confusion_matrix"]),
                report["labels"],
                f"{name} ({result['audio']} audio), {settings.split} split",
            ),
            out / f"confusion_{name}.png",
        )
        written.append(f"confusion_{name}.png")
        if "detector" not in result:
            continue
        detector = result["detector"]
        chosen = detector["threshold"]
        lines[name] = PRLine(
            recall=detector["pr_curve"]["recall"],
            precision=detector["pr_curve"]["precision"],
            average_precision=detector["average_precision"],
            point_recall=chosen["recall"],
            point_precision=chosen["precision"],
            point_threshold=chosen["threshold"],
        )
        save_figure(
            pr_figure(
                {name: lines[name]},
                f"{name}: call vs noise, {settings.split} split",
                settings.target_precision,
            ),
            out / f"pr_{name}.png",
        )
        written.append(f"pr_{name}.png")
    if lines:
        save_figure(
            pr_figure(
                lines, f"Detectors compared, {settings.split} split", settings.target_precision
            ),
            out / "pr_detectors.png",
        )
        written.append("pr_detectors.png")
    return written


def markdown(
    results: dict[str, Any],
    settings: EvaluateSettings,
    skipped: dict[str, str],
    figures: list[str] | None = None,
    figures_note: str = "",
) -> str:
    drawn = set(figures or [])
    lines = [f"# Evaluation on the {settings.split} split", ""]
    lines += [
        "| model | audio | clips | detector AP | macro F1 | weighted F1 | accuracy | "
        f"threshold @P≥{settings.target_precision} (recall) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in results.items():
        detector = r.get("detector", {})
        threshold = detector.get("threshold", {})
        nan = float("nan")
        report = r["classification"]
        met = "" if threshold.get("met", True) else ", target not met"
        lines.append(
            f"| {name} | {r['audio']} | {r['clips']} | "
            f"{detector.get('average_precision', nan):.3f} | "
            f"{report['macro']['f1']:.3f} | {report['weighted']['f1']:.3f} | "
            f"{report['accuracy']:.3f} | "
            f"{threshold.get('threshold', nan):.3f} ({threshold.get('recall', nan):.2f}{met}) |"
        )
    for name, r in results.items():
        report = r["classification"]
        lines += [
            "",
            f"## {name}",
            "",
            "| label | precision | recall | F1 | support |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, m in report["per_class"].items():
            lines.append(
                f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} "
                f"| {m['support']} |"
            )
        lines += [
            "",
            "Confusion matrix (rows true, columns predicted): " + ", ".join(report["labels"]),
            "",
        ]
        lines += ["    " + " ".join(f"{v:5d}" for v in row) for row in report["confusion_matrix"]]
        pictures = [
            f"![{kind}]({file})"
            for kind, file in (
                ("confusion", f"confusion_{name}.png"),
                ("PR curve", f"pr_{name}.png"),
            )
            if file in drawn
        ]
        if pictures:
            lines += ["", " ".join(pictures)]
    if "pr_detectors.png" in drawn:
        lines += ["", "## Detectors compared", "", "![PR curves](pr_detectors.png)"]
    if figures_note:
        lines += ["", f"- figures: {figures_note}"]
    for name, why in skipped.items():
        lines += ["", f"- {name} skipped: {why}"]
    return "\n".join(lines) + "\n"


def run_evaluate(
    settings: EvaluateSettings,
    out: Path,
    manifest: Path,
    classifier: Path,
    *,
    denoised: Path | None = None,
    denoised_classifier: Path | None = None,
    max_units: int | None = None,
) -> Path:
    inputs = {"manifest": manifest, "classifier": classifier}
    if denoised is not None:
        inputs["denoised"] = denoised
    if denoised_classifier is not None:
        inputs["denoised_classifier"] = denoised_classifier
    run = StepRun("evaluate", out, settings, inputs=inputs, max_units=max_units)
    raw = [
        c for c in read_manifest(manifest) if c.split == settings.split and c.kind in settings.kinds
    ]
    if not raw:
        raise ValueError(f"{manifest}: no {settings.kinds} clips in the {settings.split!r} split")
    candidates = []
    skipped: dict[str, str] = {}
    if settings.baseline:
        candidates.append(
            Candidate("baseline_zero_shot", settings.baseline, "raw", raw, zero_shot=True)
        )
    candidates.append(Candidate("finetuned_raw", str(classifier), "raw", raw))
    if denoised is not None:
        twin = {c.clip_id: c for c in read_manifest(denoised)}
        missing = [c.clip_id for c in raw if c.clip_id not in twin]
        if missing:
            raise ValueError(f"{denoised} lacks {len(missing)} test clips, e.g. {missing[:3]}")
        clean = [twin[c.clip_id] for c in raw]
        candidates.append(
            Candidate("finetuned_on_denoised_audio", str(classifier), "denoised", clean)
        )
        if denoised_classifier is not None:
            candidates.append(
                Candidate("trained_on_denoised", str(denoised_classifier), "denoised", clean)
            )
    for candidate in tqdm(candidates, desc="evaluate", unit="model"):
        if run.progress.done(candidate.name):
            continue
        try:
            result = evaluate_candidate(candidate, settings)
        except ClassifierLoadError as error:
            if not candidate.zero_shot:
                raise ValueError(str(error)) from error
            run.log("baseline_unreachable", checkpoint=candidate.checkpoint, error=str(error))
            run.unit_done(candidate.name, skipped=str(error).splitlines()[0])
            continue
        run.unit_done(candidate.name, result=result)
    results = {}
    for candidate in candidates:
        record = run.progress.records[candidate.name]
        if "skipped" in record:
            skipped[candidate.name] = record["skipped"]
        else:
            results[candidate.name] = record["result"]
    for name, result in results.items():
        with (
            atomic_path(out / f"scores_{name}.csv") as temporary,
            temporary.open("w", newline="") as handle,
        ):
            writer = csv.writer(handle)
            writer.writerow(["clip_id", "detector_score"])
            writer.writerows([[k, f"{v:.6f}"] for k, v in result.pop("scores").items()])
    figures: list[str] = []
    figures_note = ""
    if settings.figures and figures_available():
        figures = draw_figures(out, results, settings)
    elif settings.figures:
        figures_note = INSTALL_HINT
        run.log("figures_skipped", reason=INSTALL_HINT)
    atomic_write_json(
        out / "metrics.json",
        {"split": settings.split, "models": results, "skipped": skipped, "figures": figures},
    )
    atomic_write_text(
        out / "report.md", markdown(results, settings, skipped, figures, figures_note)
    )
    run.finish(models=list(results), skipped=list(skipped))
    return out / "metrics.json"


COMMAND = step_command("evaluate", EvaluateSettings, run_evaluate)
main = COMMAND.main


if __name__ == "__main__":
    raise SystemExit(main())
