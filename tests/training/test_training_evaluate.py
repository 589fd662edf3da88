"""The evaluation's figures (labelled, via matplotlib's Agg canvas) and how a model's head is
read: a binary head is scored as call vs noise whatever its positive label is called."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.support.tiny_ast import save_tiny_ast
from training.audio import load_mono, save_mono
from training.evaluate import Candidate, EvaluateSettings, evaluate_candidate, run_evaluate
from training.figures import PRLine, confusion_figure, pr_figure, save_figure
from training.manifest import Clip, write_manifest

RATE = 16000


def test_confusion_figure_names_labels_and_counts(tmp_path: Path) -> None:
    matrix = np.array([[3, 1], [0, 4]])
    figure = confusion_figure(matrix, ["noise", "humpback"], "finetuned_raw")
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_xticklabels()] == ["noise", "humpback"]
    assert [t.get_text() for t in axes.get_yticklabels()] == ["noise", "humpback"]
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("predicted label", "true label")
    assert [t.get_text() for t in axes.texts] == ["3\n75%", "1\n25%", "0\n0%", "4\n100%"]
    save_figure(figure, tmp_path / "confusion.png")
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pr_figure_shows_average_precision_and_the_chosen_threshold() -> None:
    line = PRLine([0.5, 0.5, 1.0], [1.0, 0.667, 0.75], 0.875, 0.5, 1.0, 0.8)
    axes = pr_figure({"finetuned_raw": line}, "detector", 0.9).axes[0]
    legend = [t.get_text() for t in axes.get_legend().get_texts()]
    assert legend == ["finetuned_raw (AP 0.875)", "finetuned_raw at threshold 0.800"]
    assert (axes.get_xlabel(), axes.get_ylabel()) == ("recall", "precision")
    assert axes.get_xlim() == (0.0, 1.0)


def _test_split(data_dir: Path, folder: Path) -> Path:
    """Two real humpback calls and two real Orcasound noise segments, all in the test split."""
    sources = [
        (data_dir / "humpback-calls" / "AscMoan.wav", "Ascending_moan", 1),
        (data_dir / "humpback-calls" / "Chirp.wav", "Chirp", 1),
        (data_dir / "orcasound-hls" / "normal" / "live1184.ts", "noise", 0),
        (data_dir / "orcasound-hls" / "normal" / "live2008.ts", "noise", 0),
    ]
    clips = []
    for number, (source, label, binary) in enumerate(sources):
        samples = load_mono(source, RATE)[: 5 * RATE]
        path = folder / f"clip{number}.flac"
        save_mono(path, samples, RATE)
        clips.append(
            Clip(f"rec{number}/{label}", path, f"rec{number}", source.name, 0.0,
                 len(samples) / RATE, label, binary, "call" if binary else "noise", "test", RATE)
        )  # fmt: skip
    write_manifest(folder / "manifest.csv", clips)
    return folder / "manifest.csv"


def test_a_binary_head_is_scored_as_call_vs_noise_whatever_its_name(
    data_dir: Path, tmp_path: Path
) -> None:
    manifest = _test_split(data_dir, tmp_path / "clips")
    model = save_tiny_ast(tmp_path / "model", ["noise", "whale"], 512, multi_label=False)
    metrics = json.loads(
        run_evaluate(
            EvaluateSettings(baseline="", device="cpu"), tmp_path / "eval", manifest, model
        ).read_text()
    )
    result = metrics["models"]["finetuned_raw"]
    report = result["classification"]
    assert report["labels"] == ["noise", "whale"]
    assert np.array(report["confusion_matrix"]).sum() == 4  # calls count as "whale"
    assert [row["support"] for row in report["per_class"].values()] == [2, 2]
    assert set(result["thresholds"]) == {"whale"}
    assert metrics["figures"] == [
        "confusion_finetuned_raw.png", "pr_finetuned_raw.png", "pr_detectors.png",
    ]  # fmt: skip
    report_md = (tmp_path / "eval" / "report.md").read_text()
    assert "![PR curves](pr_detectors.png)" in report_md
    for name in metrics["figures"]:
        assert (tmp_path / "eval" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_call_type_head_keeps_the_clips_call_types(data_dir: Path, tmp_path: Path) -> None:
    from training.manifest import read_manifest

    clips = read_manifest(_test_split(data_dir, tmp_path / "clips"))
    model = save_tiny_ast(tmp_path / "model", ["noise", "Chirp"], 512, multi_label=False)
    result = evaluate_candidate(
        Candidate("finetuned_raw", str(model), "raw", clips),
        EvaluateSettings(baseline="", device="cpu"),
    )
    # The Ascending_moan clip has no label in this head: it is left out of the classification.
    assert np.array(result["classification"]["confusion_matrix"]).sum() == 3
