"""IOAR's 3-class inner / surface / outer labels from a stored TSDF (IOAR/data.py:241-404).

Input is the stored TSDF t of `stages.tsdf.fusion` (positive behind a surface, +1 where
unobserved, negative in observed free space), indexed [x, y, z] at the finest level (4 cm):

* class 0 "inner": t >= 0.999 (behind a surface, or never observed);
* class 1 "surface": |t| < 0.999;
* class 2 "outer": t <= -0.999 (observed free space).

The coarser levels (8 cm, then 16 cm) take every second voxel of the finer labels and force
class 1 wherever the finer surface mask, dilated by a 3x3x3 cube, is set; the 16 cm level
dilates the 8 cm mask (already dilated once and subsampled), as the original does.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

INNER, SURFACE, OUTER = 0, 1, 2
# IOAR/data.py: the thresholds of the 3-class rule.
LABEL_THRESHOLD = 0.999


def fine_labels(tsdf: np.ndarray) -> np.ndarray:
    """uint8 [nx, ny, nz] classes (INNER 0, SURFACE 1, OUTER 2) of a stored TSDF [nx, ny, nz].

    Raises ValueError for a TSDF that is not 3-D.
    """
    tsdf = np.asarray(tsdf)
    if tsdf.ndim != 3:
        raise ValueError(f"TSDF must be [nx, ny, nz], got shape {tsdf.shape}")
    labels = np.full(tsdf.shape, SURFACE, dtype=np.uint8)
    labels[tsdf >= LABEL_THRESHOLD] = INNER
    labels[tsdf <= -LABEL_THRESHOLD] = OUTER
    return labels


def _coarser(labels: np.ndarray, surface: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dilated = ndimage.binary_dilation(surface, structure=np.ones((3, 3, 3), dtype=bool))
    surface_half = dilated[::2, ::2, ::2]
    labels_half = labels[::2, ::2, ::2].copy()
    labels_half[surface_half] = SURFACE
    return labels_half, surface_half


def level_labels(tsdf: np.ndarray, levels: int = 3) -> list[np.ndarray]:
    """Labels per level, finest first: [4 cm [nx, ny, nz], 8 cm [ceil(nx/2), ...], 16 cm ...].

    Level l + 1 voxel (i, j, k) is level l voxel (2i, 2j, 2k) (the grids share their origin).
    """
    labels = fine_labels(tsdf)
    surface = labels == SURFACE
    out = [labels]
    for _ in range(levels - 1):
        labels, surface = _coarser(labels, surface)
        out.append(labels)
    return out


def fine_loss_mask(tsdf: np.ndarray) -> np.ndarray:
    """bool [nx, ny, nz]: the voxels the fine TSDF loss covers (IOAR/data.py:419-421).

    t < 0.999 (observed in front of, or near, a surface) plus every voxel of a z-column
    (fixed x, y) that holds no such voxel (t > 0.999 everywhere: behind walls or unobserved).
    """
    tsdf = np.asarray(tsdf)
    empty_column = np.all(tsdf > LABEL_THRESHOLD, axis=-1, keepdims=True)
    return (tsdf < LABEL_THRESHOLD) | empty_column
