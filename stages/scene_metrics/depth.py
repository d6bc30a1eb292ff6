"""2D depth metrics of a predicted depth map against sensor depth (VoRTX/IOAR eval_utils.py:171-206)."""

from __future__ import annotations

import numpy as np

DEPTH_METRICS = ("abs_rel", "abs_diff", "sq_rel", "rmse", "log_rmse", "delta1", "delta2",
                 "delta3", "completeness")
MAX_GT_DEPTH = 10.0  # metres: VoRTX compares pixels with 0 < gt < 10


def depth_metrics(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Depth metrics of one frame. pred, gt: [H, W] metres; pred 0 = no prediction.

    Over the pixels with 0 < gt < 10 m and pred > 0: AbsRel mean(|p - g| / g), AbsDiff
    mean(|p - g|) (m), SqRel mean((p - g)^2 / g) (m), RMSE sqrt(mean((p - g)^2)) (m), LogRMSE
    sqrt(mean((ln p - ln g)^2)), delta_k the fraction with max(p / g, g / p) < 1.25^k. These are
    NaN when no pixel qualifies. completeness: the fraction of valid ground-truth pixels
    (0 < gt < 10) that have a prediction; VoRTX's "complete" is instead the fraction of all
    pixels with pred > 0 (it ignores gt). Raises ValueError when the shapes differ.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"predicted depth {pred.shape} and ground truth {gt.shape} differ")
    predicted = pred > 0
    valid_gt = (gt > 0) & (gt < MAX_GT_DEPTH)
    mask = valid_gt & predicted
    out = {"completeness": float(predicted[valid_gt].mean()) if valid_gt.any() else float("nan")}
    if not mask.any():
        out.update({k: float("nan") for k in DEPTH_METRICS if k != "completeness"})
        return {k: out[k] for k in DEPTH_METRICS}
    p, g = pred[mask], gt[mask]
    diff = np.abs(p - g)
    ratio = np.maximum(p / g, g / p)
    out.update(
        abs_rel=float(np.mean(diff / g)),
        abs_diff=float(np.mean(diff)),
        sq_rel=float(np.mean(diff**2 / g)),
        rmse=float(np.sqrt(np.mean(diff**2))),
        log_rmse=float(np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2))),
        delta1=float(np.mean(ratio < 1.25)),
        delta2=float(np.mean(ratio < 1.25**2)),
        delta3=float(np.mean(ratio < 1.25**3)),
    )
    return {k: out[k] for k in DEPTH_METRICS}


def mean_depth_metrics(per_frame: list[dict[str, float]]) -> dict[str, float]:
    """Per-scene means over frames, ignoring NaN (a frame without valid pixels), as VoRTX's
    np.nanmean. (VoRTX also drops the first frame by a list-initialisation quirk; we do not.)"""
    out = {}
    for key in DEPTH_METRICS:
        values = np.array([m[key] for m in per_frame], dtype=np.float64)
        out[key] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return out
