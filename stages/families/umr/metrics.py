"""UMR's evaluation measures (NVlabs/UMR test_iou.py, test_kp.py, utils/cub_kp_transfer.py),
in numpy on per-image predictions so that they can be checked by hand.

Coordinates: keypoints, texture flow and projections are image coordinates of the square crop
in [-1, 1] (x right, y down); a mask is [S, S] with pixel (r, c) centred at ((2c + 1 - S) / S,
(2r + 1 - S) / S).

* Mask IoU per image: soft sum(p g) / sum(p + g - p g) (p the soft silhouette, g the soft
  resized ground truth, test_iou.py) and hard, with p and g thresholded at 0.5.
* Keypoint transfer: an error is the distance in photo pixels (crop distance x crop side / 2)
  over the longer side of the tight bbox (cub_kp_transfer.py multiplies by (1 + 2 x 0.05) / 2,
  the same for its padded crop); correct when < alpha (strict). PCK = the mean over keypoints of
  correct / scored, a keypoint scored where visible in both images (per keypoint, not pooled).
"""

from __future__ import annotations

import numpy as np


def mask_iou(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(soft IoU, hard IoU at 0.5) of one silhouette [S, S] against one ground truth [S, S]
    (values in [0, 1]). Two empty masks give 1.0 (nothing to miss)."""
    p, g = np.asarray(pred, np.float64), np.asarray(truth, np.float64)
    union = (p + g - p * g).sum()
    soft = float((p * g).sum() / union) if union > 0 else 1.0
    ph, gh = p > 0.5, g > 0.5
    hard_union = (ph | gh).sum()
    hard = float((ph & gh).sum() / hard_union) if hard_union else 1.0
    return soft, hard


def transfer_pairs(count: int, n_images: int, seed: int) -> np.ndarray:
    """[count, 2] (source, target) image positions, drawn with replacement from
    numpy RandomState(seed) (test_kp.py), source != target. Needs n_images >= 2."""
    if n_images < 2:
        raise ValueError(f"keypoint transfer needs at least 2 test images, got {n_images}")
    rs = np.random.RandomState(seed)
    src = rs.randint(n_images, size=count)
    dst = rs.randint(n_images - 1, size=count)
    dst = dst + (dst >= src)
    return np.stack([src, dst], axis=1)


def transfer_errors(predicted: np.ndarray, target: np.ndarray, source_visible: np.ndarray, crop_side: float,
                    side: float) -> np.ndarray:
    """Normalised errors [K] of predicted keypoints [K, 2] against the target's keypoints [K, 3]
    (x, y, visible) in target crop coordinates; NaN where a keypoint is not visible in both."""
    err = np.linalg.norm(np.asarray(predicted, np.float64) - target[:, :2], axis=1) * crop_side / 2.0 / side
    scored = (np.asarray(source_visible) > 0) & (target[:, 2] > 0)
    return np.where(scored, err, np.nan)


def pck_by_keypoint(errors: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """errors [N, K] (NaN = not scored) -> (PCK per keypoint [K] (NaN where never scored), scored
    counts [K])."""
    scored = ~np.isnan(errors)
    counts = scored.sum(0)
    correct = (np.where(scored, errors, np.inf) < alpha).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pck = np.where(counts > 0, correct / np.maximum(counts, 1), np.nan)
    return pck, counts


def pck(errors: np.ndarray, alpha: float) -> float:
    """Mean over the scored keypoints of PCK per keypoint (test_kp.py), NaN if none is scored."""
    per, counts = pck_by_keypoint(errors, alpha)
    return float(np.mean(per[counts > 0])) if (counts > 0).any() else float("nan")


def flow_faces(flow: np.ndarray, keypoints: np.ndarray, sigma: float) -> np.ndarray:
    """Texture-flow transfer, source side (cub_kp_transfer.py): for each keypoint [K, 3] the face
    whose texture samples (flow [F, T*T, 2]) collect the most of a Gaussian heatmap of std
    `sigma` (crop coordinates) centred on it. Returns int [K] (-1 where not visible)."""
    faces = np.full(len(keypoints), -1, np.int64)
    for k, (x, y, vis) in enumerate(keypoints):
        if vis > 0:
            d2 = ((flow - np.array([x, y])) ** 2).sum(-1)
            faces[k] = int(np.exp(-d2 / (2.0 * sigma**2)).sum(1).argmax())
    return faces


def flow_answers(face_centres: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Texture-flow transfer, target side: the mean flow position [F, 2] of each chosen face
    (faces [K], -1 -> NaN). Returns [K, 2]."""
    out = np.full((len(faces), 2), np.nan)
    ok = faces >= 0
    out[ok] = face_centres[faces[ok]]
    return out


def nearest_vertices(projected: np.ndarray, front: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Camera transfer, source side: per keypoint [K, 3] the template vertex whose projection
    (projected [V, 2]) is nearest among the front-facing ones (front [V] bool; all when none
    is). Returns int [K] (-1 where not visible)."""
    candidates = np.flatnonzero(front) if front.any() else np.arange(len(projected))
    out = np.full(len(keypoints), -1, np.int64)
    for k, (x, y, vis) in enumerate(keypoints):
        if vis > 0:
            d2 = ((projected[candidates] - np.array([x, y])) ** 2).sum(1)
            out[k] = int(candidates[d2.argmin()])
    return out


def snap_to_mask(points: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Points [K, 2] (NaN allowed) moved to the nearest pixel centre of a boolean mask [S, S]
    when they do not fall on it (cub_kp_transfer.py's snap to the predicted mask); unchanged
    when the mask is empty."""
    points = np.array(points, np.float64)
    size = mask.shape[0]
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return points
    centres = np.stack([(2 * cols + 1 - size) / size, (2 * rows + 1 - size) / size], axis=1)
    for k, (x, y) in enumerate(points):
        if np.isnan(x):
            continue
        c = int(np.clip(np.floor((x + 1) * size / 2), 0, size - 1))
        r = int(np.clip(np.floor((y + 1) * size / 2), 0, size - 1))
        inside = -1 <= x <= 1 and -1 <= y <= 1 and mask[r, c]
        if not inside:
            points[k] = centres[((centres - points[k]) ** 2).sum(1).argmin()]
    return points
