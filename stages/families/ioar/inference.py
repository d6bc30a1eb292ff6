"""Whole-scan inference: the scan's volume cut into tiles (the original's 64 x 64 x 48 fine
voxels with 60 views, scripts/inference.py), each reconstructed from the keyframes that see it,
the fine TSDFs pasted into one volume, then marching cubes (`stages.tsdf.meshing`)."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from ...tsdf.fusion import VolumeGrid
from ...tsdf.meshing import tsdf_to_mesh
from .data import ScanFrames, tile_views, views_example
from .task import to_device

VIEW_TEST_POINTS = 512  # coarse voxel points of a tile projected to choose its views


def tile_corners(dims, tile) -> list[tuple[int, int, int]]:
    """Fine-voxel corners of the tiles covering a volume of `dims`, x fastest last."""
    return list(itertools.product(*[range(0, int(n), int(t)) for n, t in zip(dims, tile)]))


@torch.no_grad()
def reconstruct(model, network, frames: ScanFrames, grid: VolumeGrid, tile, views: int, device,
                scene: str = "scan") -> tuple[np.ndarray, np.ndarray]:
    """(tsdf float32 [nx, ny, nz], active bool [nx, ny, nz]) on `grid` (the model's fine
    lattice; its origin on the coarse lattice, its dims from the fused volume). A voxel the
    network leaves inactive (not below a coarse/medium surface voxel) or a tile no keyframe
    sees stays tsdf 1, inactive. Deterministic: tiles in order, views evenly spaced."""
    model.eval()
    dims = np.array(grid.dims)
    tile = np.array(tile)
    tsdf = np.ones(tuple(dims), np.float32)
    active = np.zeros(tuple(dims), bool)
    coarse_step = 4
    for corner in tile_corners(dims, tile):
        corner = np.array(corner)
        origin = np.asarray(grid.origin) + corner * grid.voxel_size
        extent = np.minimum(tile, dims - corner)
        idx = np.stack(np.meshgrid(*[np.arange(0, e, coarse_step) for e in extent], indexing="ij"), -1).reshape(-1, 3)
        if len(idx) > VIEW_TEST_POINTS:
            idx = idx[np.round(np.linspace(0, len(idx) - 1, VIEW_TEST_POINTS)).astype(np.int64)]
        chosen = tile_views(frames, origin + idx * grid.voxel_size, views)
        if len(chosen) == 0:
            continue
        example = views_example(frames, chosen, network.image_size, len(chosen), scene)
        batch = {k: v[None] for k, v in example.items()}
        batch["origin"] = torch.tensor(origin, dtype=torch.float32)[None]
        batch["dims"] = tuple(int(t) for t in tile)
        out = model(to_device(batch, device))
        region = tuple(slice(c, c + e) for c, e in zip(corner, extent))
        inner = tuple(slice(0, e) for e in extent)
        tsdf[region] = out["tsdf"][0, 0].float().cpu().numpy()[inner]
        active[region] = out["masks"][2][0, 0].cpu().numpy()[inner]
    tsdf[~active] = 1.0
    return tsdf, active


def reconstruct_mesh(model, network, frames: ScanFrames, grid: VolumeGrid, tile, views: int, device,
                     scene: str = "scan"):
    """The marching-cubes mesh (world metres) of `reconstruct`'s TSDF over its active voxels."""
    tsdf, active = reconstruct(model, network, frames, grid, tile, views, device, scene)
    return tsdf_to_mesh(tsdf, active.astype(np.uint8), grid)
