"""Plain pictures without a plotting library: a PNG encoder (zlib) and two raster figures — a
confusion-matrix heat map and a precision-recall curve. No text: the report's tables carry the
numbers."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from training.files import atomic_path


def encode_png(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 → PNG bytes (8-bit truecolour, no filtering)."""
    height, width, _ = rgb.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), rgb.reshape(height, width * 3)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes()))
        + chunk(b"IEND", b"")
    )


def write_png(path: Path, rgb: np.ndarray) -> None:
    with atomic_path(path) as temporary:
        temporary.write_bytes(encode_png(rgb))


def confusion_image(matrix: np.ndarray, cell: int = 32) -> np.ndarray:
    """Each cell shaded by its share of its true-label row: white 0 → dark blue 1."""
    rows = matrix.sum(axis=1, keepdims=True).clip(min=1)
    share = matrix / rows
    colour = np.array([255, 255, 255]) - share[..., None] * np.array([225, 175, 75])
    image = np.kron(colour, np.ones((cell, cell, 1))).astype(np.uint8)
    image[::cell, :] = image[:, ::cell] = 128  # grid lines
    return image


def pr_image(recall: np.ndarray, precision: np.ndarray, size: int = 256) -> np.ndarray:
    """Recall on x (0→1, left→right), precision on y (0→1, bottom→top), grey frame and a
    line through the curve's points."""
    image = np.full((size, size, 3), 255, np.uint8)
    image[[0, -1], :] = image[:, [0, -1]] = 160
    xs = np.r_[0.0, recall]
    ys = np.r_[precision[0] if len(precision) else 1.0, precision]
    for (x0, y0), (x1, y1) in zip(
        zip(xs[:-1], ys[:-1], strict=True), zip(xs[1:], ys[1:], strict=True), strict=True
    ):
        for t in np.linspace(0.0, 1.0, size):
            col = round((x0 + (x1 - x0) * t) * (size - 1))
            row = round((1.0 - (y0 + (y1 - y0) * t)) * (size - 1))
            image[max(0, row - 1) : row + 2, max(0, col - 1) : col + 2] = (200, 40, 40)
    return image
