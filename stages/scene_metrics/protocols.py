"""The two scene-evaluation protocols: VoRTX/IOAR (scripts/evaluate.py) and TransformerFusion
(src/evaluation/eval.py).

VoRTX/IOAR, per scene:
  1. render the predicted mesh into every frame (the depth camera's K and pose) and score it
     against the sensor depth (`depth.depth_metrics`, averaged over frames);
  2. zero the rendered depth wherever the ground-truth mesh renders nothing, fuse those depths
     into a volume on the ground-truth TSDF's 4 cm lattice (truncation 3 voxels, no max-depth
     cut) and take the marching-cubes surface of its observed voxels: the "trimmed" prediction,
     i.e. the prediction culled to what the trajectory sees;
  3. voxel-downsample the trimmed prediction's vertices and the (uncut) ground-truth mesh's
     vertices at 2 cm and compute `mesh.point_metrics` with a 5 cm threshold (strict <).
  Differences from the original: our rasteriser replaces pyrender; VoRTX drops the first
  frame's depth metrics by accident (we keep it); VoRTX's depth "complete" is over all pixels
  (ours over valid ground-truth pixels, see `depth.depth_metrics`).

TransformerFusion, per scene: 200,000 points sampled uniformly on the predicted mesh (area
weighted); ground-truth points = vertices of the culled ground-truth mesh; predicted points that
are not fully visible (trilinear visibility < 1 - 1e-5 in an occlusion grid, i.e. not all 8
surrounding grid points visible, or outside the grid) are dropped for accuracy and precision,
unless that drops all of them; every distance capped at 1 m; threshold <= 5 cm; chamfer =
(acc + comp) / 2; a missing or empty prediction scores acc = comp = chamfer = 1 m, precision 1,
recall 0, F 0 (as in their eval.py). Differences: TransformerFusion ships its own culled
mesh_gt.ply and occlusion_mask.npy; we derive both from our ground-truth fusion: the visibility
grid is the 4 cm TSDF's observed voxels (weight > 0), and the ground-truth vertices kept are
those visible in it. Their Chamfer distances come from a CUDA kernel; ours from cKDTree (the
same nearest-neighbour distances).
"""

from __future__ import annotations

import numpy as np
import trimesh

from stages.scene_metrics.depth import depth_metrics, mean_depth_metrics
from stages.scene_metrics.mesh import distance_metrics, nearest_distances, point_metrics, voxel_downsample
from stages.scene_metrics.render import render_depth
from stages.tsdf.fusion import TSDFVolume, VolumeGrid
from stages.tsdf.meshing import observed_around, tsdf_to_mesh

VORTX_DOWNSAMPLE = 0.02  # metres
VORTX_THRESHOLD = 0.05  # metres, strict <
TF_SAMPLES = 200_000
TF_THRESHOLD = 0.05  # metres, <=
TF_MAX_DISTANCE = 1.0  # metres


def vortx_trim(pred: trimesh.Trimesh, gt: trimesh.Trimesh, frames, grid: VolumeGrid):
    """Steps 1-2 of the VoRTX protocol: (trimmed prediction mesh, mean depth metrics dict).

    pred, gt: world-space meshes (metres); frames: iterable of (sensor depth [H, W] metres,
    K [3, 3], cam_to_world [4, 4]); grid: the ground-truth 4 cm TSDF lattice.
    """
    volume = TSDFVolume(grid)
    per_frame = []
    for depth, K, cam_to_world in frames:
        height, width = depth.shape
        rendered = render_depth(pred, K, cam_to_world, width, height)
        per_frame.append(depth_metrics(rendered, depth))
        rendered[render_depth(gt, K, cam_to_world, width, height) == 0] = 0
        volume.integrate(rendered.astype(np.float32), K, cam_to_world)
    tsdf, weight = volume.arrays()
    return tsdf_to_mesh(tsdf, weight, grid), mean_depth_metrics(per_frame)


def vortx_mesh_metrics(trimmed: trimesh.Trimesh, gt: trimesh.Trimesh) -> dict[str, float]:
    """Step 3 of the VoRTX protocol on mesh vertices (see `mesh.point_metrics` for the keys)."""
    return point_metrics(
        voxel_downsample(trimmed.vertices, VORTX_DOWNSAMPLE),
        voxel_downsample(gt.vertices, VORTX_DOWNSAMPLE),
        VORTX_THRESHOLD,
    )


def visible_points(points: np.ndarray, grid: VolumeGrid, observed: np.ndarray) -> np.ndarray:
    """bool [N]: points [N, 3] (world metres) whose 8 surrounding lattice points are observed."""
    coords = (np.asarray(points, dtype=np.float64) - np.asarray(grid.origin)) / grid.voxel_size
    return observed_around(coords, observed)


def transformerfusion_metrics(pred: trimesh.Trimesh | None, gt_points: np.ndarray, grid: VolumeGrid,
                              observed: np.ndarray, samples: int = TF_SAMPLES, seed: int = 0) -> dict[str, float]:
    """The TransformerFusion protocol (module docstring); keys as `mesh.point_metrics`.

    pred: the predicted mesh (None or empty = missing); gt_points: [M, 3] culled ground-truth
    vertices (metres); grid/observed: the visibility lattice and bool [nx, ny, nz] mask;
    samples, seed: the surface sampling (same seed -> same numbers).
    """
    if pred is None or len(pred.faces) == 0 or len(pred.vertices) == 0:
        return {"acc": TF_MAX_DISTANCE, "comp": TF_MAX_DISTANCE, "chamfer": TF_MAX_DISTANCE,
                "prec": 1.0, "recall": 0.0, "fscore": 0.0}
    points, _ = trimesh.sample.sample_surface(pred, samples, seed=seed)
    visible = visible_points(points, grid, observed)
    accurate = points[visible] if visible.any() else points
    return distance_metrics(nearest_distances(accurate, gt_points), nearest_distances(gt_points, points),
                            TF_THRESHOLD, inclusive=True, max_distance=TF_MAX_DISTANCE)
