"""Marching cubes on a fused TSDF: the level-0 surface of the observed voxels, in world metres.

skimage.measure.marching_cubes runs on the stored TSDF (positive behind surfaces); with
gradient_direction='ascent' the faces are wound so that their normals point into observed free
space, towards the cameras (tested). A marching-cubes vertex is interpolated from the voxel points around it; a vertex
that depends on an unobserved point (weight 0) is dropped with every face using it, which is what
VoRTX/IOAR get by setting unobserved voxels to NaN and removing NaN vertices (IOAR
scripts/evaluate.py + IOAR/utils.py:to_mesh). Vertex positions map to the world as
``origin + index * voxel_size`` (no half-voxel offset, like `stages.tsdf.fusion`).
"""

from __future__ import annotations

import numpy as np
import trimesh
from skimage import measure

from stages.tsdf.fusion import VolumeGrid


def observed_around(coords: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """bool [N]: every voxel point of the box [floor(c), ceil(c)] around each point is observed.

    coords: float [N, 3] in voxel index units ((world - origin) / voxel_size), axis order x, y, z;
    observed: bool [nx, ny, nz]. A point outside [0, n - 1] on any axis gives False. For a point
    inside a cell this is "all 8 corners observed", i.e. a trilinear interpolation of the
    observed mask equals 1 (TransformerFusion's visibility test, src/evaluation/eval.py).
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 3)
    top = np.array(observed.shape) - 1
    inside = np.all((coords >= 0) & (coords <= top), axis=1)
    lo = np.clip(np.floor(coords).astype(np.int64), 0, top)
    hi = np.clip(np.ceil(coords).astype(np.int64), 0, top)
    ok = inside.copy()
    for corner in range(8):
        pick = [(hi if corner >> axis & 1 else lo)[:, axis] for axis in range(3)]
        ok &= observed[pick[0], pick[1], pick[2]]
    return ok


def tsdf_to_mesh(tsdf: np.ndarray, weight: np.ndarray, grid: VolumeGrid, level: float = 0.0) -> trimesh.Trimesh:
    """The isosurface of a TSDF as a world-space mesh (vertices float64 [V, 3] metres).

    tsdf: [nx, ny, nz] stored TSDF; weight: [nx, ny, nz], > 0 where observed; grid: the volume's
    lattice. Returns an empty mesh when there is no surface. Raises ValueError when the shapes
    disagree with each other or with `grid.dims`.
    """
    tsdf = np.asarray(tsdf, dtype=np.float32)
    observed = np.asarray(weight) > 0
    if tsdf.shape != observed.shape or tsdf.shape != tuple(grid.dims):
        raise ValueError(f"TSDF {tsdf.shape}, weight {observed.shape}, grid {tuple(grid.dims)} differ")
    if min(tsdf.shape) < 2 or not observed.any():
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), process=False)
    values = np.where(observed, tsdf, np.float32(1.0))
    if not (values.min() <= level <= values.max()) or values.min() == values.max():
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), process=False)
    verts, faces, _, _ = measure.marching_cubes(values, level=level, gradient_direction="ascent")
    keep_vertex = observed_around(verts, observed)
    faces = faces[np.all(keep_vertex[faces], axis=1)]
    used = np.zeros(len(verts), dtype=bool)
    used[faces.reshape(-1)] = True
    remap = np.cumsum(used) - 1
    world = verts[used].astype(np.float64) * grid.voxel_size + np.asarray(grid.origin)
    return trimesh.Trimesh(world, remap[faces], process=False)
