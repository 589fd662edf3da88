"""Classification and detection metrics, small and exact (tested on hand-made cases)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def confusion_matrix(truth: list[str], predicted: list[str], labels: list[str]) -> np.ndarray:
    """rows = true label, columns = predicted label, in ``labels`` order."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for t, p in zip(truth, predicted, strict=True):
        matrix[index[t], index[p]] += 1
    return matrix


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def per_class(matrix: np.ndarray, labels: list[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per label (0 where undefined, as scikit-learn does)."""
    result = {}
    for i, label in enumerate(labels):
        tp = float(matrix[i, i])
        precision = _ratio(tp, matrix[:, i].sum())
        recall = _ratio(tp, matrix[i, :].sum())
        f1 = _ratio(2 * precision * recall, precision + recall)
        result[label] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": int(matrix[i, :].sum()),
        }
    return result


def averages(classes: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Macro (plain mean over labels) and weighted (by support) precision/recall/F1."""
    names = ("precision", "recall", "f1")
    total = sum(c["support"] for c in classes.values())
    macro = {n: float(np.mean([c[n] for c in classes.values()])) if classes else 0.0 for n in names}
    weighted = {n: _ratio(sum(c[n] * c["support"] for c in classes.values()), total) for n in names}
    return {"macro": macro, "weighted": weighted}


@dataclass(frozen=True)
class PRCurve:
    thresholds: np.ndarray  # descending distinct scores
    precision: np.ndarray
    recall: np.ndarray


def pr_curve(is_positive: list[int] | np.ndarray, scores: list[float] | np.ndarray) -> PRCurve:
    """One point per distinct score: predicting positive when score ≥ threshold."""
    y = np.asarray(is_positive, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if y.sum() == 0:
        raise ValueError("a PR curve needs at least one positive example")
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct score
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    return PRCurve(thresholds=s[last], precision=tp / (tp + fp), recall=tp / y.sum())


def average_precision(curve: PRCurve) -> float:
    """Σ (R_n − R_{n−1}) · P_n — the step-wise area, no interpolation."""
    recall = np.r_[0.0, curve.recall]
    return float(np.sum(np.diff(recall) * curve.precision))


def threshold_for_precision(curve: PRCurve, target: float) -> dict[str, float | bool]:
    """The lowest threshold (highest recall) whose precision reaches ``target``; when none does,
    the threshold of the best precision, with ``met`` false."""
    reaching = np.nonzero(curve.precision >= target)[0]
    if len(reaching):
        i = int(reaching[np.argmax(curve.recall[reaching])])
        met = True
    else:
        i = int(np.argmax(curve.precision))
        met = False
    return {
        "threshold": float(curve.thresholds[i]),
        "precision": float(curve.precision[i]),
        "recall": float(curve.recall[i]),
        "met": met,
    }


def classification_report(
    truth: list[str], predicted: list[str], labels: list[str]
) -> dict[str, Any]:
    matrix = confusion_matrix(truth, predicted, labels)
    classes = per_class(matrix, labels)
    return {
        "labels": labels,
        "confusion_matrix": matrix.tolist(),
        "per_class": classes,
        **averages(classes),
        "accuracy": _ratio(float(np.trace(matrix)), float(matrix.sum())),
    }
