"""CoReNet's voxel metrics: one confusion matrix over all voxels of all test scenes.

Rows of the matrix are ground truth, columns predictions; label 0 is void. Per class:
IoU = tp / (tp + fp + fn), precision = tp / (tp + fp), recall = tp / (tp + fn), NaN for a class
with no true positive. `__global__` is the class-agnostic foreground/background figure (every
non-void label counts as foreground). Mean IoU averages the object classes (not void, not
global), skipping NaNs, as CoReNet's evaluation does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

VOID = "__void__"
GLOBAL = "__global__"


def binary_iou(predicted, truth) -> float:
    """IoU of two boolean occupancy arrays of one shape (numpy arrays or torch tensors, any
    number of axes, a whole batch counted as one): |p & t| / |p | t|, 1.0 when both are empty
    (the prediction is exact)."""
    union = int((predicted | truth).sum())
    return int((predicted & truth).sum()) / union if union else 1.0


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    truth = np.asarray(truth).reshape(-1).astype(np.int64)
    predicted = np.asarray(predicted).reshape(-1).astype(np.int64)
    if truth.shape != predicted.shape:
        raise ValueError(f"truth and prediction differ in size: {truth.shape} vs {predicted.shape}")
    if truth.size and (max(truth.max(), predicted.max()) >= num_classes or min(truth.min(), predicted.min()) < 0):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    return np.bincount(truth * num_classes + predicted, minlength=num_classes**2).reshape(num_classes, num_classes)


def _ratios(tp, fp, fn) -> dict[str, np.ndarray]:
    tp, fp, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "iou": np.where(tp > 0, tp / (tp + fp + fn), np.nan),
            "precision": np.where(tp > 0, tp / (tp + fp), np.nan),
            "recall": np.where(tp > 0, tp / (tp + fn), np.nan),
        }


def voxel_metrics(matrix: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """The voxel_metrics.csv table: rows iou/precision/recall, columns __void__, classes, __global__."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (len(class_names) + 1,) * 2:
        raise ValueError(f"matrix {matrix.shape} does not fit {len(class_names)} classes + void")
    tp = np.diag(matrix)
    per_class = _ratios(tp, matrix.sum(0) - tp, matrix.sum(1) - tp)
    fg = _ratios(matrix[1:, 1:].sum(), matrix[0, 1:].sum(), matrix[1:, 0].sum())
    columns = [VOID, *class_names, GLOBAL]
    rows = {name: [*per_class[name], float(fg[name])] for name in ("iou", "precision", "recall")}
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns)


def mean_iou(metrics: pd.DataFrame) -> float:
    classes = [c for c in metrics.columns if c not in (VOID, GLOBAL)]
    values = metrics.loc["iou", classes].astype(float)
    return float(values.mean()) if values.notna().any() else float("nan")
