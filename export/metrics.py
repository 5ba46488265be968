"""Segmentation metrics from an int64 confusion matrix (rows: ground truth, columns: prediction)."""
from __future__ import annotations

import numpy as np

from export.voc import IGNORE


class ConfusionMatrix:
    """Accumulates an n×n int64 confusion matrix over label maps; ground-truth IGNORE (255) pixels are skipped."""

    def __init__(self, n_classes: int) -> None:
        if n_classes < 1:
            raise ValueError(f"n_classes must be positive, got {n_classes}")
        self.n = n_classes
        self.matrix = np.zeros((n_classes, n_classes), np.int64)

    def update(self, truth: np.ndarray, pred: np.ndarray) -> None:
        """Add one label map pair (same shape, integer labels)."""
        truth = np.asarray(truth)
        pred = np.asarray(pred)
        if truth.shape != pred.shape:
            raise ValueError(f"ground truth {truth.shape} and prediction {pred.shape} differ in shape")
        valid = truth != IGNORE
        t = truth[valid].astype(np.int64)
        p = pred[valid].astype(np.int64)
        if t.size and (t.min() < 0 or t.max() >= self.n):
            bad = int(t[(t < 0) | (t >= self.n)][0])
            raise ValueError(f"ground-truth label {bad} is outside 0..{self.n - 1} (and is not {IGNORE} = ignore)")
        if p.size and (p.min() < 0 or p.max() >= self.n):
            raise ValueError(f"predicted labels must be in 0..{self.n - 1}")
        self.matrix += np.bincount(t * self.n + p, minlength=self.n * self.n).reshape(self.n, self.n)

    def iou(self) -> np.ndarray:
        """Per-class intersection over union; NaN for a class absent from both truth and prediction."""
        return iou(self.matrix)

    def miou(self) -> float:
        return miou(self.matrix)

    def pixel_accuracy(self) -> float:
        return pixel_accuracy(self.matrix)


def iou(matrix: np.ndarray) -> np.ndarray:
    """Per-class IoU = TP / (TP + FP + FN); NaN where the class never occurs in truth or prediction."""
    m = np.asarray(matrix, np.int64)
    tp = np.diag(m).astype(np.float64)
    union = m.sum(0) + m.sum(1) - np.diag(m)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def miou(matrix: np.ndarray) -> float:
    """Mean IoU over the classes that occur (in truth or prediction)."""
    values = iou(matrix)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def pixel_accuracy(matrix: np.ndarray) -> float:
    """Correct pixels / labelled pixels."""
    m = np.asarray(matrix, np.int64)
    total = m.sum()
    return float(np.trace(m) / total) if total else float("nan")
