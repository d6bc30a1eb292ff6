"""A voxel model's output as a mesh: marching cubes (scikit-image) on an occupancy grid."""

from __future__ import annotations

import numpy as np

from .errors import StageError


def occupancy_to_mesh(probability: np.ndarray, level: float):
    """Marching cubes on a [D, H, W] ([z, y, x]) occupancy-probability grid at `level` -> a
    trimesh.Trimesh in the unit cube (voxel k's centre at (k + 0.5) / resolution, x, y, z
    order). Raises StageError when no voxel reaches `level`."""
    import trimesh
    from skimage.measure import marching_cubes

    grid = np.pad(np.asarray(probability, dtype=np.float32), 1)  # closed surfaces at the border
    if grid.max() < level:
        raise StageError(f"the model predicts no occupied voxel at level {level}")
    verts, faces, _, _ = marching_cubes(grid, level=level)
    resolution = np.array(probability.shape, dtype=np.float64)
    # marching_cubes returns (z, y, x) in padded voxel-centre units: voxel k's centre is k + 0.5
    zyx = (verts - 1 + 0.5) / resolution
    return trimesh.Trimesh(vertices=zyx[:, ::-1], faces=faces[:, ::-1], process=False)
