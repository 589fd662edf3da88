"""The leave-one-call-type-out evaluation in cascade mode runs the daemon's stage 1 and window
selection: only windows centred on boxes are scored, detections take the boxes' span, and a
stream without boxes has no detections even where every window would fire."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.classifier.ast import load_classifier
from tests.support.tiny_ast import save_tiny_ast
from training.detector_eval import (
    RULE_GRID,
    FoldScores,
    Rules,
    cascade_selection,
    compare_modes,
    detections,
    fold_result,
    separation,
    window_scores,
)

RATE = 16000
TONE = (12.0, 13.5)  # seconds


def _streams() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    quiet = (0.01 * rng.standard_normal(30 * RATE)).astype(np.float32)
    call = quiet.copy()
    t = np.arange(round((TONE[1] - TONE[0]) * RATE)) / RATE
    at = round(TONE[0] * RATE)
    call[at : at + len(t)] += (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    return call, (0.01 * rng.standard_normal(30 * RATE)).astype(np.float32)


def test_cascade_mode_scores_only_the_windows_on_stage_one_boxes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    folder = save_tiny_ast(tmp_path / "tiny", ["humpback", "other"], 200, multi_label=True)
    classifier = load_classifier(folder, "cpu", target_labels=["humpback"])
    window_s, hop_s = classifier.window_seconds, 1.0
    call, quiet = _streams()

    on_call = cascade_selection(call, RATE, window_s, hop_s)
    on_quiet = cascade_selection(quiet, RATE, window_s, hop_s)
    assert len(on_call.box_spans) == 1
    start, end = on_call.box_spans[0]
    assert abs(start - TONE[0]) < 0.2 and abs(end - TONE[1]) < 0.2
    assert 0 < len(on_call.boxes) <= 2 and on_call.scored_fraction < 0.1
    centre = (start + end) / 2
    for index in on_call.boxes:  # the window centred on the box
        assert abs(index * hop_s + window_s / 2 - centre) <= hop_s
    assert on_quiet.boxes == {} and on_quiet.scored_fraction == 0.0

    call_scores = window_scores(classifier, call, hop_s, only=list(on_call.boxes))
    assert np.isfinite(call_scores[list(on_call.boxes)]).all()
    assert np.isnan(np.delete(call_scores, list(on_call.boxes))).all()

    everything = Rules(threshold=0.0, min_positive_windows=1, quiet_s=3.0)
    spans = detections(call_scores, hop_s, window_s, everything, RATE, on_call)
    assert spans == [(start, end)]  # the box's span, not the windows'

    fold = FoldScores(
        call_type="tone",
        call_scores=window_scores(classifier, call, hop_s),
        calls=[TONE],
        background_scores=window_scores(classifier, quiet, hop_s),
        background_s=len(quiet) / RATE,
        call_selection=on_call,
        background_selection=on_quiet,
    )
    cascade = fold_result(fold, everything, hop_s, window_s, "cascade")
    every = fold_result(fold, everything, hop_s, window_s, "every-window")
    assert (cascade["found"], cascade["false_detections"]) == (1, 0)
    assert cascade["box_recall"] == 1.0 and cascade["background_scored_fraction"] == 0.0
    assert every["false_detections"] == 1  # every window is positive at threshold 0
    assert "box_recall" not in every

    both = compare_modes([fold], hop_s, window_s, ["every-window", "cascade"])
    assert [cv["mode"] for cv in both.values()] == ["every-window", "cascade"]
    assert both["cascade"]["per_type"][0]["box_recall"] == 1.0
    assert len(both["cascade"]["sweep"]) == len(RULE_GRID["threshold"])


def test_separation_ranks_the_windows_holding_each_call_against_the_background() -> None:
    # Windows of 2 s on a 1 s grid; calls in the middle of windows 4 and 10.
    calls = np.array([0.1, 0.1, 0.1, 0.9, 0.95, 0.1, 0.1, 0.1, 0.1, 0.2, 0.6, 0.3], np.float32)
    background = np.array([0.1, 0.2, 0.3, 0.7, 0.5, np.nan], np.float32)
    fold = FoldScores("t", calls, [(4.5, 5.5), (10.5, 11.5)], background, 6.0)
    figures = separation(fold, hop_s=1.0, window_s=2.0)
    assert figures["call_peak_max"] == np.float32(0.95)
    # The second call's best holding window is 0.6 (the 0.3 beside it does not count).
    assert figures["call_peak_min"] == np.float32(0.6)
    assert figures["background_max"] == np.float32(0.7)
    assert figures["calls_above_background"] == 0.5
    assert figures["auc"] == (5 + 4) / 10  # 0.95 above all 5; 0.6 above all but 0.7
