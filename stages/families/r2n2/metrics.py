"""3D-R2N2's evaluation: voxel IoU per sample at fixed occupancy thresholds, averaged per class
and over all samples, for each number of input views.

IoU of a sample at threshold t: |{p >= t} & gt| / |{p >= t} | gt| (lib/voxel.py's
evaluate_voxel_prediction uses p >= t). When prediction and ground truth are both empty the
prediction is exact, so the IoU is 1 (the original would divide 0 by 0).

The table (`iou_by_views_table`) has one row per (views, threshold, class) with the mean IoU over
that class's samples, plus class `__mean__`: the mean over all samples (not over classes), the
figure the paper reports. The thresholds are the model file's `eval.thresholds`.

`per_class_table` lays the same records out as the PaddlePaddle port's test table (per class:
samples, a published baseline, IoU per threshold; an overall row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

MEAN_CLASS = "__mean__"
COLUMNS = ["views", "threshold", "class", "iou"]


def _numpy(array) -> np.ndarray:
    if hasattr(array, "detach"):  # a torch tensor, without importing torch here
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def threshold_iou(prob_fg, gt, thresholds: Sequence[float]) -> np.ndarray:
    """IoU per sample and threshold: float64 [N, len(thresholds)].

    prob_fg: occupancy probabilities [N, D, H, W] (numpy or torch); gt: 0/1 or bool, same shape.
    """
    prob = _numpy(prob_fg).astype(np.float64, copy=False)
    truth = _numpy(gt).astype(bool, copy=False)
    if prob.shape != truth.shape or prob.ndim < 2:
        raise ValueError(f"prob_fg {prob.shape} and gt {truth.shape} must both be [N, ...]")
    prob = prob.reshape(len(prob), -1)
    truth = truth.reshape(len(truth), -1)
    out = np.empty((len(prob), len(thresholds)))
    for column, t in enumerate(thresholds):
        predicted = prob >= t
        intersection = (predicted & truth).sum(axis=1)
        union = (predicted | truth).sum(axis=1)
        out[:, column] = np.where(union > 0, intersection / np.maximum(union, 1), 1.0)
    return out


@dataclass(frozen=True)
class IoURecord:
    """One sample's IoU at one threshold, evaluated with `views` input views."""

    views: int
    class_name: str
    model_id: str
    threshold: float
    iou: float


def iou_records(
    views: int,
    class_names: Sequence[str],
    model_ids: Sequence[str],
    ious: np.ndarray,
    thresholds: Sequence[float],
) -> list[IoURecord]:
    """Records of a batch: `ious` is threshold_iou's [N, T] for the batch's N samples."""
    ious = np.asarray(ious)
    if ious.shape != (len(class_names), len(thresholds)) or len(model_ids) != len(class_names):
        raise ValueError(f"ious {ious.shape} must be [{len(class_names)} samples, {len(thresholds)} thresholds]")
    return [
        IoURecord(int(views), c, m, float(t), float(ious[i, j]))
        for i, (c, m) in enumerate(zip(class_names, model_ids))
        for j, t in enumerate(thresholds)
    ]


def iou_by_views_table(records: Iterable[IoURecord | Mapping]) -> pd.DataFrame:
    """Mean IoU per (views, threshold, class) and over all samples (class `__mean__`):
    DataFrame[views, threshold, class, iou], sorted by views, threshold, then class with
    `__mean__` last. Records are IoURecords or mappings with the same keys."""
    rows = [r.__dict__ if isinstance(r, IoURecord) else dict(r) for r in records]
    frame = pd.DataFrame(rows, columns=["views", "class_name", "model_id", "threshold", "iou"])
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(COLUMNS, ["int64", "float64", "object", "float64"])})
    per_class = frame.groupby(["views", "threshold", "class_name"], as_index=False)["iou"].mean()
    overall = frame.groupby(["views", "threshold"], as_index=False)["iou"].mean().assign(class_name=MEAN_CLASS)
    table = pd.concat([per_class, overall], ignore_index=True).rename(columns={"class_name": "class"})
    table["last"] = table["class"] == MEAN_CLASS
    table = table.sort_values(["views", "threshold", "last", "class"]).drop(columns="last")
    table = table.astype({"views": "int64", "threshold": "float64", "iou": "float64"})
    return table[COLUMNS].reset_index(drop=True)


OVERALL = "overall"


def threshold_column(threshold: float) -> str:
    """per_class.csv's column of a threshold: "t=0.30" (the PaddlePaddle port's test table)."""
    return f"t={threshold:.2f}"


def per_class_table(records: Iterable[IoURecord | Mapping], views: int, baseline: Mapping[str, float]) -> pd.DataFrame:
    """The PaddlePaddle port's test table (its core/test.py printout, Pix2Vox's layout) for
    `views` input views: one row per class (sorted) with `samples` (test samples of the class),
    `baseline` (the published per-class IoU given in `baseline`, NaN where unknown) and the mean
    IoU at each threshold (columns `t=0.20`, ...); then a row `overall` with every sample, no
    baseline and the mean over all samples (not over classes), as the port's "Overall"."""
    rows = [r.__dict__ if isinstance(r, IoURecord) else dict(r) for r in records]
    frame = pd.DataFrame(rows, columns=["views", "class_name", "model_id", "threshold", "iou"])
    frame = frame[frame["views"] == views]
    thresholds = sorted(frame["threshold"].unique())
    columns = ["class", "samples", "baseline"] + [threshold_column(t) for t in thresholds]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="object" if c == "class" else "float64") for c in columns})
    means = frame.pivot_table(index="class_name", columns="threshold", values="iou", aggfunc="mean")
    samples = frame[frame["threshold"] == thresholds[0]].groupby("class_name").size()
    out = pd.DataFrame({
        "class": list(means.index),
        "samples": [int(samples[c]) for c in means.index],
        "baseline": [float(baseline.get(c, np.nan)) for c in means.index],
    })
    for t in thresholds:
        out[threshold_column(t)] = means[t].to_numpy()
    overall = {"class": OVERALL, "samples": int(samples.sum()), "baseline": np.nan}
    overall.update({threshold_column(t): float(frame.loc[frame["threshold"] == t, "iou"].mean()) for t in thresholds})
    out = pd.concat([out, pd.DataFrame([overall])], ignore_index=True)
    return out.astype({"samples": "int64", "baseline": "float64"})[columns]
