"""The constant-shape baseline: one occupancy grid for every test scene.

It is the training set's mean occupancy thresholded at the level that maximises the training
set's class-agnostic IoU. Summed over N training scenes with ground truth g_n, a constant
prediction P has intersection I = N * sum_{v in P} m_v and union N * sum(m) + N |P| - I, with m
the mean occupancy, so the best P among the thresholds of m is found exactly from m alone by
sorting it. Semantic models' baseline labels each voxel of P with the class that occupies it
most often in training, so it stays a constant grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ConstantShape:
    occupancy: np.ndarray  # bool [R, R, R]
    classes: np.ndarray  # uint8 [R, R, R], most frequent training class per voxel (0 where none)
    threshold: float
    train_iou: float


class OccupancyStatistics:
    """Streams training label grids ([R, R, R], 0 void, 1..C classes) into per-class counts."""

    def __init__(self, resolution: int, num_labels: int):
        self.counts = np.zeros((num_labels, resolution**3), dtype=np.int64)
        self.scenes = 0
        self.shape = (resolution,) * 3

    def add(self, labels: np.ndarray) -> None:
        flat = np.asarray(labels).reshape(-1).astype(np.int64)
        for label in np.unique(flat[flat > 0]):
            self.counts[label] += flat == label
        self.scenes += 1

    def mean_occupancy(self) -> np.ndarray:
        return self.counts[1:].sum(0) / max(1, self.scenes)

    def best_constant(self) -> ConstantShape:
        if self.scenes == 0:
            raise ValueError("no training scenes to build the constant-shape baseline from")
        mean = self.mean_occupancy()
        threshold, iou = optimal_threshold(mean)
        occupancy = mean > threshold
        classes = np.where(occupancy, 1 + self.counts[1:].argmax(0), 0).astype(np.uint8)
        return ConstantShape(occupancy.reshape(self.shape), classes.reshape(self.shape), threshold, iou)


def optimal_threshold(mean: np.ndarray) -> tuple[float, float]:
    """(t, IoU): predicting every voxel with mean > t maximises the summed IoU; t is halfway
    between the last included and the first excluded mean value."""
    m = np.sort(np.asarray(mean, dtype=np.float64).reshape(-1))[::-1]
    if m[0] <= 0:
        return 1.0, 0.0
    cumulative = np.cumsum(m)
    k = np.arange(1, m.size + 1)
    iou = cumulative / (m.sum() + k - cumulative)
    # a threshold can only cut between distinct values: keep the ends of runs of equal values
    cut = np.append(m[:-1] > m[1:], True) & (m > 0)
    best = int(np.flatnonzero(cut)[np.argmax(iou[cut])])
    upper = m[best]
    lower = m[best + 1] if best + 1 < m.size else 0.0
    return float((upper + lower) / 2), float(iou[best])
