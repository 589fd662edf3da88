"""Metrics on hand-made cases whose answers were worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from training.scoring import (
    average_precision,
    classification_report,
    confusion_matrix,
    pr_curve,
    threshold_for_precision,
)

LABELS = ["noise", "moan", "whup"]
TRUTH = ["noise", "noise", "noise", "moan", "moan", "whup"]
GUESS = ["noise", "noise", "moan", "moan", "whup", "whup"]


def test_confusion_matrix_counts_rows_true_columns_predicted() -> None:
    matrix = confusion_matrix(TRUTH, GUESS, LABELS)
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_per_class_and_averages() -> None:
    report = classification_report(TRUTH, GUESS, LABELS)
    noise, moan, whup = (report["per_class"][k] for k in LABELS)
    # noise: tp 2, predicted 2, true 3 → P 1, R 2/3, F1 0.8
    assert (noise["precision"], noise["recall"], noise["f1"]) == pytest.approx((1.0, 2 / 3, 0.8))
    # moan: tp 1, predicted 2, true 2 → P 0.5, R 0.5, F1 0.5
    assert (moan["precision"], moan["recall"], moan["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    # whup: tp 1, predicted 2, true 1 → P 0.5, R 1, F1 2/3
    assert (whup["precision"], whup["recall"], whup["f1"]) == pytest.approx((0.5, 1.0, 2 / 3))
    assert report["macro"]["f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert report["weighted"]["f1"] == pytest.approx((0.8 * 3 + 0.5 * 2 + 2 / 3 * 1) / 6)
    assert report["weighted"]["recall"] == pytest.approx(4 / 6)  # weighted recall = accuracy
    assert report["accuracy"] == pytest.approx(4 / 6)


def test_undefined_precision_is_zero() -> None:
    report = classification_report(["a", "a"], ["a", "a"], ["a", "b"])
    assert report["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_pr_curve_average_precision_and_threshold() -> None:
    # scores descending: 0.9 (+), 0.8 (−), 0.7 (+), 0.6 (+), 0.2 (−)
    truth = [1, 0, 1, 1, 0]
    scores = [0.9, 0.8, 0.7, 0.6, 0.2]
    curve = pr_curve(truth, scores)
    assert curve.thresholds.tolist() == [0.9, 0.8, 0.7, 0.6, 0.2]
    assert curve.precision.tolist() == pytest.approx([1.0, 0.5, 2 / 3, 0.75, 0.6])
    assert curve.recall.tolist() == pytest.approx([1 / 3, 1 / 3, 2 / 3, 1.0, 1.0])
    # AP = 1/3·1 + 0·0.5 + 1/3·2/3 + 1/3·3/4 + 0·0.6
    assert average_precision(curve) == pytest.approx((1 + 2 / 3 + 0.75) / 3)
    best = threshold_for_precision(curve, 0.7)
    assert best == {"threshold": 0.6, "precision": 0.75, "recall": 1.0, "met": True}
    unreachable = threshold_for_precision(curve, 1.01)
    assert unreachable["threshold"] == 0.9 and unreachable["met"] is False


def test_pr_curve_ties_share_one_point() -> None:
    curve = pr_curve(np.array([1, 0, 1]), np.array([0.5, 0.5, 0.1]))
    assert curve.thresholds.tolist() == [0.5, 0.1]
    assert curve.precision.tolist() == pytest.approx([0.5, 2 / 3])
    assert average_precision(curve) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)


def test_pr_curve_without_positives_is_an_error() -> None:
    with pytest.raises(ValueError, match="positive"):
        pr_curve([0, 0], [0.1, 0.2])
