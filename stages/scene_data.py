"""Model-ready scene examples: the scenes, renders and voxels tables joined per scene.

The three tables are sharded identically (a render or voxel shard mirrors its scene shard), so
the join is shard by shard. Examples stay compressed in memory (PNG and packed voxel bytes,
tens of KiB per scene at 128^3) and are decoded on access, so that a DataLoader worker or a
DDP rank holds the dataset at the cost of its files, not of its decoded tensors.

Labels: 0 is void; object classes are numbered 1..13 by sorted class name (CoReNet's column
order), so a label grid is directly the semantic ground truth, and an FG_BG prediction times
the object's label is its per-class version.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image

from .tables import RENDERS, SCENES, VOXELS, read_table, unpack_array
from .taxonomy import SYNSETS
from .voxel_codec import decode_planes

CLASS_NAMES: list[str] = sorted(SYNSETS.values())
LABEL_OF_SYNSET: dict[str, int] = {synset: CLASS_NAMES.index(name) + 1 for synset, name in SYNSETS.items()}


class ExampleError(ValueError):
    """A scene cannot be turned into a model example (missing render or voxels, unknown class)."""


@dataclass
class SceneExamples:
    scene_ids: list[str]
    images: list[bytes]
    grids: list[bytes]
    num_objects: np.ndarray  # [N]
    object_labels: list[np.ndarray]  # per scene: uint8 [num_objects], labels 1..13
    camera_transforms: np.ndarray  # [N, 4, 4] float32
    resolution: int

    def __len__(self) -> int:
        return len(self.scene_ids)

    def image(self, index: int, size: int | None = None) -> np.ndarray:
        """uint8 [H, W, 3]; resized to size x size (bilinear) when it differs."""
        with Image.open(io.BytesIO(self.images[index])) as img:
            img = img.convert("RGB")
            if size is not None and img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            return np.asarray(img)

    def labels(self, index: int) -> np.ndarray:
        """uint8 [R, R, R] ([z, y, x]): 0 void, else the class label of the occupying object.
        Where objects share a voxel, the first listed keeps it (stages.voxel_codec's rule)."""
        planes = decode_planes(self.grids[index], int(self.num_objects[index]), self.resolution)
        grid = np.zeros(planes.shape[1:], dtype=np.uint8)
        for obj in range(planes.shape[0] - 1, -1, -1):
            grid[planes[obj]] = self.object_labels[index][obj]
        return grid


def load_examples(
    scene_files: Sequence[str | Path],
    render_files: Sequence[str | Path] | None,
    voxel_files: Sequence[str | Path],
    limit: int | None = None,
) -> SceneExamples:
    """Join matching shards (same order in the three lists) into compressed examples.
    render_files=None loads ground truth only (images are then empty)."""
    if render_files is None:
        render_files = [None] * len(scene_files)
    if not (len(scene_files) == len(render_files) == len(voxel_files)):
        raise ExampleError(
            f"need one render and one voxel shard per scene shard, got {len(scene_files)} scene, "
            f"{len(render_files)} render and {len(voxel_files)} voxel shards"
        )
    ids, images, grids, counts, labels, cameras = [], [], [], [], [], []
    resolution = None
    for scene_file, render_file, voxel_file in zip(scene_files, render_files, voxel_files):
        scenes = read_table(scene_file, SCENES, columns=["scene_id", "num_objects", "mesh_labels", "camera_transform"])
        if render_file is None:
            renders = pd.DataFrame({"image": b""}, index=scenes["scene_id"])
        else:
            renders = read_table(render_file, RENDERS, columns=["scene_id", "image"]).set_index("scene_id")
        voxels = read_table(voxel_file, VOXELS, columns=["scene_id", "resolution", "num_objects", "grid"]).set_index("scene_id")
        for row in scenes.itertuples(index=False):
            if row.scene_id not in renders.index:
                raise ExampleError(f"{render_file}: no render for scene {row.scene_id} of {scene_file}")
            if row.scene_id not in voxels.index:
                raise ExampleError(f"{voxel_file}: no voxels for scene {row.scene_id} of {scene_file}")
            vox = voxels.loc[row.scene_id]
            if resolution is None:
                resolution = int(vox.resolution)
            elif int(vox.resolution) != resolution:
                raise ExampleError(f"{voxel_file}: resolution {vox.resolution}, expected {resolution}")
            unknown = [s for s in row.mesh_labels if s not in LABEL_OF_SYNSET]
            if unknown:
                raise ExampleError(f"{scene_file}: scene {row.scene_id} has classes outside the 13: {unknown}")
            ids.append(row.scene_id)
            images.append(renders.loc[row.scene_id, "image"])
            grids.append(vox.grid)
            counts.append(int(vox.num_objects))
            labels.append(np.array([LABEL_OF_SYNSET[s] for s in row.mesh_labels], dtype=np.uint8))
            cameras.append(unpack_array(row.camera_transform, "<f8", (4, 4)))
            if limit is not None and len(ids) >= limit:
                break
        if limit is not None and len(ids) >= limit:
            break
    if not ids:
        raise ExampleError(f"no scenes in {[str(f) for f in scene_files]}")
    return SceneExamples(
        scene_ids=ids,
        images=images,
        grids=grids,
        num_objects=np.array(counts),
        object_labels=labels,
        camera_transforms=np.stack(cameras).astype(np.float32),
        resolution=resolution,
    )


def subgrid(labels: np.ndarray, factor: int, shift: tuple[int, int, int]) -> np.ndarray:
    """The native-resolution grid sampled at sub-voxel shift (sx, sy, sz) of a grid `factor`
    times finer: fine voxel (f*i + sx, f*j + sy, f*k + sz) for every native voxel (i, j, k)."""
    sx, sy, sz = shift
    return labels[sz::factor, sy::factor, sx::factor]


def subvoxel_offset(factor: int, shift) -> np.ndarray:
    """Sampling offset, in native voxels, of the centre of fine voxel `shift`."""
    return (np.asarray(shift, dtype=np.float32) + 0.5) / factor


class SceneDataset(torch.utils.data.Dataset):
    """Examples for a model of native resolution `native`; the ground truth may be `factor`
    times finer (y1), in which case each example draws one of the factor^3 sub-voxel grids
    (deterministically from seed, epoch and index) and the matching sampling offset."""

    def __init__(self, examples: SceneExamples, native: int, input_size: int, seed: int = 0):
        if examples.resolution % native:
            raise ExampleError(f"ground truth {examples.resolution}^3 is not a multiple of the model's {native}^3")
        self.examples = examples
        self.native = native
        self.factor = examples.resolution // native
        self.input_size = input_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict:
        ex = self.examples
        image = torch.from_numpy(ex.image(index, self.input_size).copy()).permute(2, 0, 1)
        labels = ex.labels(index)
        if self.factor == 1:
            shift = (0, 0, 0)
        else:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            shift = tuple(int(v) for v in rng.integers(0, self.factor, size=3))
        return {
            "index": index,
            "image": image,
            "camera": torch.from_numpy(ex.camera_transforms[index]),
            "offset": torch.from_numpy(subvoxel_offset(self.factor, shift)),
            "labels": torch.from_numpy(np.ascontiguousarray(subgrid(labels, self.factor, shift))),
            "object_labels": torch.from_numpy(ex.object_labels[index].astype(np.int64)),
        }


def collate(items: list[dict]) -> dict:
    batch = {k: torch.stack([it[k] for it in items]) for k in ("image", "camera", "offset", "labels")}
    batch["index"] = torch.tensor([it["index"] for it in items])
    batch["object_labels"] = [it["object_labels"] for it in items]
    return batch
