"""The evaluation's figures, drawn with matplotlib's Agg canvas (no display, no pyplot state):
a labelled confusion matrix and precision-recall curves. matplotlib is the optional ``train``
extra (``pip install 'hydromon[train]'``); ``figures_available`` says whether it is there."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from training.result_files import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INSTALL_HINT = "figures need matplotlib: pip install 'hydromon[train]' (or set figures = false)"


def figures_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


@dataclass(frozen=True)
class PRLine:
    """One model's detector PR curve and the operating point chosen on it."""

    recall: Sequence[float]
    precision: Sequence[float]
    average_precision: float
    point_recall: float | None = None  # the threshold chosen for the target precision
    point_precision: float | None = None
    point_threshold: float | None = None


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def confusion_figure(matrix: np.ndarray, labels: Sequence[str], title: str) -> Figure:
    """Rows true, columns predicted; each cell shaded by its share of the true label's clips and
    annotated with its count and that share."""
    matrix = np.asarray(matrix, dtype=np.int64)
    share = matrix / matrix.sum(axis=1, keepdims=True).clip(min=1)
    size = 2.5 + 0.55 * len(labels)
    figure = _figure(size + 1.2, size)
    axes = figure.add_subplot()
    image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, label="share of the true label's clips")
    positions = np.arange(len(labels))
    axes.set_xticks(positions, labels=list(labels), rotation=45, ha="right")
    axes.set_yticks(positions, labels=list(labels))
    axes.set_xlabel("predicted label")
    axes.set_ylabel("true label")
    axes.set_title(title)
    for row in range(len(labels)):
        for column in range(len(labels)):
            axes.text(
                column,
                row,
                f"{matrix[row, column]}\n{share[row, column]:.0%}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if share[row, column] > 0.5 else "black",
            )
    return figure


def pr_figure(lines: Mapping[str, PRLine], title: str, target_precision: float) -> Figure:
    """Step-wise PR curves (precision at each threshold, as average precision sums them), AP in
    the legend, the target precision as a dashed line and each chosen threshold as a dot."""
    figure = _figure(6.0, 4.8)
    axes = figure.add_subplot()
    for name, line in lines.items():
        recall = np.r_[0.0, np.asarray(line.recall, dtype=float)]
        precision = np.asarray(line.precision, dtype=float)
        precision = np.r_[precision[:1] if len(precision) else [1.0], precision]
        (drawn,) = axes.step(
            recall, precision, where="pre", label=f"{name} (AP {line.average_precision:.3f})"
        )
        if line.point_recall is not None and line.point_precision is not None:
            axes.plot(
                [line.point_recall],
                [line.point_precision],
                "o",
                color=drawn.get_color(),
                label=f"{name} at threshold {line.point_threshold:.3f}",
            )
    axes.axhline(target_precision, linestyle="--", color="grey", linewidth=1)
    axes.annotate(
        f"target precision {target_precision:g}",
        (0.01, target_precision),
        textcoords="offset points",
        xytext=(0, 3),
        fontsize=8,
        color="grey",
    )
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.05)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=8)
    return figure


def save_figure(figure: Figure, path: Path) -> None:
    """Write a PNG atomically: the file is complete or absent."""
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
