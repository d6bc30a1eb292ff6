"""Voxelization: the ground-truth occupancy every metric rests on (DESIGN.md, "Voxelization
semantics").

Input is a triangle soup float [T, 3, 3] already in voxel space: voxel (i, j, k) is the closed
box [i, i+1] x [j, j+1] x [k, k+1], x -> i (width W), y -> j (height H), z -> k (depth D). The
output is bool (D, H, W), indexed [k, j, i]. A voxel is occupied when a triangle overlaps its
box (separating-axis test, touching counts), or when it cannot be reached from outside the grid
(any of its six faces) through empty voxels with 6-connectivity. Triangles outside the grid
are clipped by testing only voxels inside it; degenerate triangles mark what they touch.

Backends: "cpu" (Numba, `cpu.py`) and "cuda" (CuPy RawKernels, `cuda.py`), bit-identical;
"auto" takes CUDA when CuPy imports and sees a device. Backend "cpu" never imports CuPy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stages.voxelization import cpu

BACKENDS = ("auto", "cpu", "cuda")


def grid_shape(resolution) -> tuple[int, int, int]:
    """(D, H, W) from an int (a cube) or a (D, H, W) triple; all positive."""
    if isinstance(resolution, (int, np.integer)):
        shape = (int(resolution),) * 3
    else:
        shape = tuple(int(r) for r in resolution)
        if len(shape) != 3:
            raise ValueError(f"resolution must be an int or (D, H, W), got {resolution!r}")
    if min(shape) <= 0:
        raise ValueError(f"resolution must be positive, got {resolution!r}")
    return shape


def resolve_backend(backend: str = "auto") -> str:
    """"cpu" or "cuda" for a requested backend; "cuda" without a usable GPU is an error."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "cpu":
        return "cpu"
    from stages.voxelization import cuda

    if cuda.cuda_available():
        return "cuda"
    if backend == "cuda":
        raise RuntimeError(
            "backend='cuda' was requested but no GPU is usable: CuPy is not installed or sees no CUDA device"
        )
    return "cpu"


def voxelize_triangles(triangles, resolution, backend: str = "auto") -> np.ndarray:
    """Occupancy bool (D, H, W) of a voxel-space triangle soup [T, 3, 3]."""
    shape = grid_shape(resolution)
    if resolve_backend(backend) == "cuda":
        from stages.voxelization.cuda import voxelize_batch_cuda

        return voxelize_batch_cuda([triangles], shape)[0]
    return cpu.voxelize_cpu(triangles, shape)


def voxelize_many(list_of_triangles: Sequence, resolution, backend: str = "auto") -> list[np.ndarray]:
    """Occupancy of each soup, as a list of bool (D, H, W); on CUDA one batch of launches."""
    shape = grid_shape(resolution)
    if resolve_backend(backend) == "cuda":
        from stages.voxelization.cuda import voxelize_batch_cuda

        return list(voxelize_batch_cuda(list(list_of_triangles), shape))
    return [cpu.voxelize_cpu(t, shape) for t in list_of_triangles]


def mesh_to_voxel_transform(vertices, resolution=None) -> tuple[np.ndarray, float]:
    """binvox's default bounding cube of a mesh: (translate = min corner of the vertices' AABB,
    scale = its largest extent, the cube's side). The cube does not depend on the resolution;
    the argument is accepted (and validated) so call sites read like binvox's command line."""
    if resolution is not None:
        grid_shape(resolution)
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    if len(v) == 0:
        raise ValueError("mesh has no vertices: no bounding cube")
    if not np.isfinite(v).all():
        raise ValueError("mesh has non-finite vertex coordinates")
    lo = v.min(axis=0)
    scale = float((v.max(axis=0) - lo).max())
    if scale <= 0.0:
        raise ValueError("mesh has zero extent: its bounding cube is a point")
    return lo, scale


def cube_to_voxel_space(triangles, translate, scale: float, resolution) -> np.ndarray:
    """Map a world-space soup [T, 3, 3] into voxel space for the cube (translate, scale): the
    cube's corner goes to 0 and its far corner to (W, H, D), as binvox's (i + 0.5) / d * scale
    + translate voxel centres imply."""
    D, H, W = grid_shape(resolution)
    if not float(scale) > 0.0:
        raise ValueError(f"cube scale must be positive, got {scale!r}")
    t = np.asarray(translate, dtype=np.float64).reshape(3)
    per_unit = np.array([W, H, D], dtype=np.float64) / float(scale)
    return (np.asarray(triangles, dtype=np.float64).reshape(-1, 3, 3) - t) * per_unit


__all__ = [
    "BACKENDS",
    "cube_to_voxel_space",
    "grid_shape",
    "mesh_to_voxel_transform",
    "resolve_backend",
    "voxelize_many",
    "voxelize_triangles",
]
