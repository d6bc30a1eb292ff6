"""Tiny scene/render/voxel shards for model tests, written through the real table schemas.

Each scene holds one box standing on the floor, seen by CoReNet's camera; its image is the
box's silhouette (a dark rectangle on white) and its ground truth the box's voxels, so a model
can learn the mapping in a few steps.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from PIL import Image

from stages.camera import corenet_camera_transform
from stages.models.ray_traced_skip import project_to_pixels, sample_points
from stages.tables import RENDERS, SCENES, VOXELS, pack_array, write_shard
from stages.voxel_codec import ENCODING, encode_planes

import torch

CHAIR, TABLE = "03001627", "04379243"


def box_grid(resolution: int, lo, hi) -> np.ndarray:
    """bool [R, R, R] ([z, y, x]) of the voxels whose centres lie in the box [lo, hi]^3."""
    c = (np.arange(resolution) + 0.5) / resolution
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    return (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1]) & (z >= lo[2]) & (z <= hi[2])


def silhouette(grid: np.ndarray, size: int) -> np.ndarray:
    """uint8 [size, size, 3]: white, with the projected voxel centres of `grid` in dark grey."""
    res = grid.shape[0]
    points = sample_points(res, torch.full((1, 3), 0.5))
    camera = torch.from_numpy(corenet_camera_transform().astype(np.float32))[None]
    px, py, _ = project_to_pixels(points, camera, size, size)
    image = np.full((size, size, 3), 255, np.uint8)
    px, py = px[0].numpy()[grid], py[0].numpy()[grid]
    keep = (px >= 0) & (px < size) & (py >= 0) & (py < size)
    image[py[keep], px[keep]] = 60
    return image


def write_box_scenes(root, split: str, count: int, resolution: int = 16, size: int = 32, seed: int = 0,
                     dataset: str = "single", shard: int = 0):
    """Write scenes/renders/voxels shards for `count` single-box scenes; returns the 3 paths."""
    rng = np.random.default_rng(seed)
    camera = pack_array(corenet_camera_transform(), "<f8")
    scenes, renders, voxels = [], [], []
    for n in range(count):
        lo = np.array([rng.uniform(0.1, 0.4), 0.05, rng.uniform(0.1, 0.4)])
        hi = lo + rng.uniform(0.25, 0.5, size=3)
        grid = box_grid(resolution, lo, np.minimum(hi, 0.95))
        scene_id = f"{dataset}-{split}-{n:07d}"
        synset = CHAIR if n % 2 == 0 else TABLE
        png = io.BytesIO()
        Image.fromarray(silhouette(grid, size)).save(png, format="PNG")
        scenes.append({"scene_id": scene_id, "dataset": dataset, "split": split, "num_objects": 1,
                       "mesh_labels": [synset], "mesh_ids": [f"box{n}"],
                       "object_to_world": pack_array(np.eye(4)[None], "<f8"), "view_transform": pack_array(np.eye(4), "<f8"),
                       "camera_transform": camera, "seed": n, "source": "synthetic"})
        renders.append({"scene_id": scene_id, "realism": "low", "width": size, "height": size,
                        "image": png.getvalue(), "num_objects": 1, "visible_fractions": pack_array([1.0], "<f4")})
        voxels.append({"scene_id": scene_id, "resolution": resolution, "num_objects": 1, "encoding": ENCODING,
                       "grid": encode_planes(grid[None]), "object_voxels": pack_array([grid.sum()], "<i8")})
    paths = []
    for table, rows, spec in (("scenes", scenes, SCENES), (f"renders/low", renders, RENDERS),
                              (f"voxels/{resolution}", voxels, VOXELS)):
        path = root / table / dataset / split / f"shard-{shard:05d}.parquet"
        write_shard(pd.DataFrame(rows), path, spec)
        paths.append(str(path))
    return paths


TINY_MODEL = """
name: tiny
family: corenet
task: {task}
dataset: single
realism: low
paper: {{mean_iou: 0.5, source: test}}
scale:
  small:
    resolution: 16
    eval_resolution: {eval_resolution}
    input_size: 32
    network:
      encoder: {{block: basic, layers: [1, 1, 1, 1], widths: [4, 8, 8, 8], stem_width: 4}}
      latent_channels: 8
      channels: [8, 8, 4]
      skip_final: true
      position_channels: true
    train: {{batch_size: 4, lr: 1.0e-2, steps: {steps}, schedule: constant, checkpoint_every: {every}, log_every: 1}}
"""


def write_tiny_model(path, task="fg_bg", steps=12, every=4, eval_resolution=16) -> str:
    path.write_text(TINY_MODEL.format(task=task, steps=steps, every=every, eval_resolution=eval_resolution))
    return str(path)
