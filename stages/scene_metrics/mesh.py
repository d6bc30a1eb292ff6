"""Point-set metrics between a predicted and a ground-truth surface: accuracy, completeness,
precision, recall, F-score (VoRTX/IOAR eval_utils.py:60-100; TransformerFusion eval.py).

Directions, fixed here once: accuracy and precision measure prediction -> ground truth (how much
of what was predicted is right); completeness and recall measure ground truth -> prediction (how
much of the truth was recovered). Atlas's released code swapped precision and recall (Atlas
issue #19); tests/test_scene_metrics.py catches a swap.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

MESH_METRICS = ("acc", "comp", "chamfer", "prec", "recall", "fscore")


def voxel_downsample(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """float64 [M, 3]: the mean of the points in each occupied voxel, rows sorted by voxel.

    The rule of Open3D's PointCloud.voxel_down_sample (which VoRTX calls): voxels of
    `voxel_size` metres anchored at min(points) - voxel_size / 2; a point p falls in voxel
    floor((p - anchor) / voxel_size). points: [N, 3] metres.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(points) == 0:
        return points
    anchor = points.min(axis=0) - voxel_size / 2
    keys = np.floor((points - anchor) / voxel_size).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    sums = np.zeros((len(counts), 3))
    np.add.at(sums, inverse, points)
    return sums / counts[:, None]


def nearest_distances(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """float64 [len(source)]: Euclidean distance (metres) from each source point to the nearest
    target point (scipy cKDTree). Raises ValueError when target is empty."""
    target = np.asarray(target, dtype=np.float64).reshape(-1, 3)
    if len(target) == 0:
        raise ValueError("nearest_distances: no target points")
    distances, _ = cKDTree(target).query(np.asarray(source, dtype=np.float64).reshape(-1, 3), k=1)
    return distances


def point_metrics(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.05, inclusive: bool = False,
                  max_distance: float | None = None) -> dict[str, float]:
    """Metrics between point sets pred [N, 3] and gt [M, 3] (metres).

    acc = mean over pred of the distance to gt; comp = mean over gt of the distance to pred;
    chamfer = (acc + comp) / 2; prec = fraction of pred points within `threshold` of gt;
    recall = fraction of gt points within `threshold` of pred; fscore = 2 P R / (P + R) (0 when
    P + R = 0). "Within" is `<` (VoRTX) or `<=` with inclusive=True (TransformerFusion);
    max_distance caps each distance (TransformerFusion: 1 m). When either set is empty the
    distances are NaN and prec = recall = fscore = 0.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 3)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 3)
    if len(pred) == 0 or len(gt) == 0:
        nan = float("nan")
        return {"acc": nan, "comp": nan, "chamfer": nan, "prec": 0.0, "recall": 0.0, "fscore": 0.0}
    return distance_metrics(nearest_distances(pred, gt), nearest_distances(gt, pred), threshold,
                            inclusive, max_distance)


def distance_metrics(pred_to_gt: np.ndarray, gt_to_pred: np.ndarray, threshold: float = 0.05,
                     inclusive: bool = False, max_distance: float | None = None) -> dict[str, float]:
    """The metrics of `point_metrics` from nearest-neighbour distances (metres): pred_to_gt [N]
    from each predicted point, gt_to_pred [M] from each ground-truth point (both non-empty)."""
    if max_distance is not None:
        pred_to_gt = np.minimum(pred_to_gt, max_distance)
        gt_to_pred = np.minimum(gt_to_pred, max_distance)
    within = np.less_equal if inclusive else np.less
    precision = float(np.mean(within(pred_to_gt, threshold)))
    recall = float(np.mean(within(gt_to_pred, threshold)))
    acc, comp = float(pred_to_gt.mean()), float(gt_to_pred.mean())
    fscore = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"acc": acc, "comp": comp, "chamfer": (acc + comp) / 2, "prec": precision,
            "recall": recall, "fscore": fscore}
