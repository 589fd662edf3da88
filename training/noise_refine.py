"""Step 3: find "noise" clips that actually hold calls, and drop or relabel them.

A small call-vs-noise CNN on log-mel features is trained with folds by recording, so every noise
clip is scored by a model that never saw its recording. Noise clips scoring at or above
``flag_threshold`` are flagged; ``action`` says whether they are dropped or relabelled as calls.
One fold is one unit of work. Writes the refined manifest, ``scores.csv`` and a JSON + Markdown
report of what changed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from models.device import select_device
from training.cli_support import step_command
from training.logmel import log_mel_batch, predict_call_probability, train_call_noise
from training.manifest import Clip, manifest_file, read_manifest, write_manifest
from training.result_files import atomic_path, atomic_write_json, atomic_write_text
from training.steprun import StepRun


@dataclass(frozen=True)
class NoiseRefineSettings:
    folds: int = 3  # folds by recording (at most one per recording)
    sample_rate: int = 16000
    n_mels: int = 32
    clip_seconds: float = 5.0
    epochs: int = 8
    batch_size: int = 16
    lr: float = 1e-3
    width: int = 16
    flag_threshold: float = 0.9
    action: str = "drop"  # drop | relabel
    relabel_as: str = "other_call"
    device: str = "auto"  # auto | cpu | cuda
    seed: int = 1234


def folds_by_recording(clips: list[Clip], folds: int) -> list[list[str]]:
    recordings = sorted({clip.recording for clip in clips})
    count = max(1, min(folds, len(recordings)))
    return [recordings[index::count] for index in range(count)]


def score_fold(
    clips: list[Clip],
    held_out: list[str],
    features: dict[str, torch.Tensor],
    settings: NoiseRefineSettings,
    seed: int,
) -> dict[str, float]:
    """Train on the other recordings (all of them when there is a single fold) and score the
    held-out recordings' noise clips."""
    train = [c for c in clips if c.recording not in held_out] or clips
    scored = [c for c in clips if c.recording in held_out and c.binary == 0]
    if not scored:
        return {}
    if len({c.binary for c in train}) < 2:
        raise ValueError(f"fold without {held_out} has only one class; use fewer folds")
    model = train_call_noise(
        torch.stack([features[c.clip_id] for c in train]),
        torch.tensor([c.binary for c in train]),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        width=settings.width,
        seed=seed,
        device=select_device(settings.device),
    )
    probabilities = predict_call_probability(
        model, torch.stack([features[c.clip_id] for c in scored])
    )
    return {clip.clip_id: float(p) for clip, p in zip(scored, probabilities, strict=True)}


def refined(clips: list[Clip], flagged: set[str], settings: NoiseRefineSettings) -> list[Clip]:
    kept = []
    for clip in clips:
        if clip.clip_id not in flagged:
            kept.append(clip)
        elif settings.action == "relabel":
            kept.append(replace(clip, label=settings.relabel_as, binary=1))
    return kept


def markdown_report(report: dict[str, Any]) -> str:
    lines = [
        "# Noise refinement",
        "",
        f"- noise clips scored: {report['scored']}",
        f"- flagged (call probability ≥ {report['flag_threshold']}): {len(report['flagged'])}",
        f"- action: {report['action']}",
        f"- clips before / after: {report['clips_before']} / {report['clips_after']}",
        "",
        "| clip | recording | start (s) | call probability |",
        "|---|---|---:|---:|",
    ]
    lines += [
        f"| {item['clip_id']} | {item['recording']} | {item['start_s']:.2f} | {item['score']:.3f} |"
        for item in report["flagged"]
    ]
    return "\n".join(lines) + "\n"


def run_noise_refine(
    settings: NoiseRefineSettings, out: Path, manifest: Path, *, max_units: int | None = None
) -> Path:
    if settings.action not in ("drop", "relabel"):
        raise ValueError(f"[noise_refine] action must be drop or relabel, not {settings.action!r}")
    manifest_path = manifest_file(manifest)
    run = StepRun(
        "noise_refine", out, settings, inputs={"manifest": manifest_path}, max_units=max_units
    )
    clips = read_manifest(manifest_path)
    folds = folds_by_recording(clips, settings.folds)
    todo = [index for index in range(len(folds)) if not run.progress.done(f"fold{index}")]
    features: dict[str, torch.Tensor] = {}
    if todo:
        batch = log_mel_batch(
            [c.path for c in clips], settings.sample_rate, settings.n_mels, settings.clip_seconds
        )
        features = {clip.clip_id: batch[i] for i, clip in enumerate(clips)}
    for index in tqdm(todo, desc="noise-refine", unit="fold"):
        scores = score_fold(clips, folds[index], features, settings, settings.seed + index)
        run.log("fold_done", fold=index, held_out=folds[index], scored=len(scores))
        run.unit_done(f"fold{index}", scores=scores)
    scores = {
        k: v
        for i in range(len(folds))
        for k, v in run.progress.records[f"fold{i}"]["scores"].items()
    }
    by_id = {clip.clip_id: clip for clip in clips}
    flagged = {clip_id for clip_id, score in scores.items() if score >= settings.flag_threshold}
    result = refined(clips, flagged, settings)
    write_manifest(out / "manifest.csv", result)
    with atomic_path(out / "scores.csv") as temporary, temporary.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip_id", "recording", "start_s", "call_probability", "flagged"])
        for clip_id, score in sorted(scores.items()):
            clip = by_id[clip_id]
            writer.writerow(
                [
                    clip_id,
                    clip.recording,
                    f"{clip.start_s:.3f}",
                    f"{score:.6f}",
                    int(clip_id in flagged),
                ]
            )
    report = {
        "scored": len(scores),
        "flag_threshold": settings.flag_threshold,
        "action": settings.action,
        "clips_before": len(clips),
        "clips_after": len(result),
        "folds": folds,
        "flagged": [
            {
                "clip_id": i,
                "recording": by_id[i].recording,
                "start_s": by_id[i].start_s,
                "score": scores[i],
            }
            for i in sorted(flagged, key=lambda i: -scores[i])
        ],
    }
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", markdown_report(report))
    run.finish(flagged=len(flagged), clips=len(result))
    return out / "manifest.csv"


COMMAND = step_command("noise-refine", NoiseRefineSettings, run_noise_refine)
main = COMMAND.main


if __name__ == "__main__":
    raise SystemExit(main())
