"""IOAR's data: scans (frames + fused TSDF) read from the tables, training crops with the views
that see them, and the inputs of one inference tile.

Sources: FRAMES shards (`stages.convert_scannet`: keyframes, poses, depth-camera K, colour warped
to the depth camera) and TSDF_VOLUMES shards (`stages.fuse_tsdf`). The model's finest voxel size
picks the TSDF row used (IOAR reads one layer; the coarser labels derive from it,
`stages.tsdf.labels.level_labels`).

A training crop (IOAR/data.py, simplified where noted): anchored on a random observed surface
voxel (|t| < 0.999, weight > 0), `crop` fine voxels with its corner on the coarse lattice
(multiples of 4 fine voxels, so every level's voxels are the volume's), the part outside the
volume unlabelled (-1, no loss); augmentation: a quarter turn k in {0..3} about z and a mirror
flip (the original turns by any angle and resamples the TSDF; quarter turns and flips about a
coarse lattice point need no resampling and keep all three lattices), applied to the crop's
labels and to the cameras (a world transform of scene and cameras leaves every projection the
same); two colour jitters per view (brightness and contrast factors in 1 +- color_jitter).
Views: `views` keyframes drawn without replacement from those that see at least 5 % of the
crop's surface voxels (if none does: the keyframes seeing any), as utils.py:62-112 draws from
the frames whose frustum meets the crop. Everything random derives from the item's seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from ...errors import StageError
from ...scannet_tables import FRAMES, cam_to_world, decode_color, decode_depth, intrinsics
from ...tables import SchemaViolation, read_table
from ...tsdf.fusion import VolumeGrid
from ...tsdf.labels import LABEL_THRESHOLD, fine_loss_mask, level_labels
from ...tsdf.tables import TSDF_VOLUMES, decode_volume

FRAME_COLUMNS = ["scene", "frame", "keyframe", "cam_to_world", "intrinsics", "width", "height", "color"]
MIN_VISIBLE = 0.05  # fraction of a crop's surface voxels a view must see
VISIBILITY_SAMPLES = 256  # surface voxels projected to test a view


@dataclass
class ScanFrames:
    """The keyframes of one scan, in frame order: K float64 [N, 3, 3] (pixels of width x height),
    poses float64 [N, 4, 4] camera-to-world, colour JPEG bytes (the depth camera's view), depth
    16-bit PNG bytes (millimetres; None when not read: only training needs them)."""

    frames: np.ndarray
    K: np.ndarray
    poses: np.ndarray
    colors: list
    width: int
    height: int
    depths: list | None = None


@dataclass
class ScanVolume:
    """A scan's TSDF at the model's fine voxel size: grid, tsdf float32 [nx, ny, nz], weight."""

    grid: VolumeGrid
    tsdf: np.ndarray
    weight: np.ndarray


def read_frames(paths: Sequence[str], keyframes_only: bool = True, depth: bool = False) -> dict[str, ScanFrames]:
    """Scan -> its frames from FRAMES shards (validated), with the depth PNGs when `depth` (the
    projective-occupancy loss reads them; they are kept in memory as the colour JPEGs are);
    StageError naming a bad shard."""
    try:
        table = read_table([str(p) for p in paths], FRAMES, columns=FRAME_COLUMNS + (["depth"] if depth else []))
    except SchemaViolation as err:
        raise StageError(str(err)) from None
    out = {}
    for scene, rows in table.groupby("scene", sort=True):
        rows = rows.sort_values("frame")
        if keyframes_only and rows["keyframe"].any():
            rows = rows[rows["keyframe"]]
        sizes = set(zip(rows["width"], rows["height"]))
        if len(sizes) != 1:
            raise StageError(f"{paths[0]}: frames of {scene} differ in size: {sorted(sizes)}")
        width, height = sizes.pop()
        out[scene] = ScanFrames(
            frames=rows["frame"].to_numpy(np.int64),
            K=np.stack([intrinsics(r) for r in rows.to_dict("records")]),
            poses=np.stack([cam_to_world(r) for r in rows.to_dict("records")]),
            colors=list(rows["color"]), width=int(width), height=int(height),
            depths=list(rows["depth"]) if depth else None)
    return out


def read_volumes(paths: Sequence[str], voxel_size: float) -> dict[str, ScanVolume]:
    """Scan -> its TSDF volume at `voxel_size` metres from TSDF_VOLUMES shards; StageError when a
    scan has none at that size."""
    try:
        table = read_table([str(p) for p in paths], TSDF_VOLUMES)
    except SchemaViolation as err:
        raise StageError(str(err)) from None
    out = {}
    for scene, rows in table.groupby("scene", sort=True):
        hit = rows[np.isclose(rows["voxel_size"], voxel_size)]
        if hit.empty:
            raise StageError(f"{paths[0]}: no {voxel_size} m TSDF volume of {scene} "
                             f"(sizes {sorted(rows['voxel_size'].round(4))})")
        grid, tsdf, weight = decode_volume(hit.iloc[0].to_dict())
        out[scene] = ScanVolume(grid, tsdf, weight)
    return out


def load_image(jpeg: bytes, K: np.ndarray, size: tuple[int, int], where: str):
    """(uint8 [3, H', W'] RGB, K' [3, 3]) of a frame resized to size = (W', H'); K' maps to the
    resized pixels with centres at integer coordinates: u' = s (u + 0.5) - 0.5."""
    from PIL import Image

    rgb = decode_color(jpeg, where)
    height, width = rgb.shape[:2]
    K = np.array(K, dtype=np.float64)
    if (width, height) != tuple(size):
        sx, sy = size[0] / width, size[1] / height
        rgb = np.asarray(Image.fromarray(rgb).resize(tuple(size), Image.BILINEAR))
        K[0] *= sx
        K[1] *= sy
        K[0, 2] += 0.5 * sx - 0.5
        K[1, 2] += 0.5 * sy - 0.5
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)), K


def load_depth(png: bytes, size: tuple[int, int], where: str) -> np.ndarray:
    """float32 [H', W'] metres (0 = no reading) of a depth frame resized to size = (W', H') by
    nearest neighbour (pixel centres as in `load_image`, so its K' holds; no reading is ever
    blended with a valid one)."""
    from PIL import Image

    depth = decode_depth(png, where)
    if depth.shape[::-1] != tuple(size):
        depth = np.asarray(Image.fromarray(depth).resize(tuple(size), Image.NEAREST))
    return np.ascontiguousarray(depth, dtype=np.float32)


def visible_fraction(points: np.ndarray, K: np.ndarray, poses: np.ndarray, width: int, height: int) -> np.ndarray:
    """float [N_views]: the fraction of world points [P, 3] that project inside each view
    (pixel centre convention, -0.5 .. W - 0.5) with z > 0."""
    if len(points) == 0:
        return np.zeros(len(poses))
    R, t = poses[:, :3, :3], poses[:, :3, 3]
    cam = np.einsum("vji,vpj->vpi", R, points[None] - t[:, None])
    z = cam[..., 2]
    safe = np.where(z > 1e-9, z, 1.0)
    u = K[:, None, 0, 0] * cam[..., 0] / safe + K[:, None, 0, 2]
    v = K[:, None, 1, 1] * cam[..., 1] / safe + K[:, None, 1, 2]
    inside = (z > 1e-9) & (u >= -0.5) & (u < width - 0.5) & (v >= -0.5) & (v < height - 0.5)
    return inside.mean(axis=1)


def dihedral_matrix(quarter_turns: int, flip: bool) -> np.ndarray:
    """int [3, 3]: a rotation by quarter_turns * 90 degrees about +z, after a mirror x -> -x."""
    c, s = [(1, 0), (0, 1), (-1, 0), (0, -1)][quarter_turns % 4]
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.int64)
    return R @ np.diag([-1, 1, 1]) if flip else R


def crop_indices(corner: np.ndarray, dims: Sequence[int], scale: int, R: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """int [X_s, Y_s, Z_s, 3]: the volume index at level `scale` (voxel size 2^scale fine
    voxels) of every voxel of a crop after the world turn R about `centre`.

    corner: the crop's corner, fine indices of the volume (multiples of 4); dims: fine voxels of
    the crop; centre: fine offset from the corner (multiples of 4). New voxel a of the level sits
    at fine offset 2^s a; its content comes from offset centre + R^T (2^s a - centre).
    """
    f = 2**scale
    a = np.stack(np.meshgrid(*[np.arange(d // f) for d in dims], indexing="ij"), -1)
    offset = centre + (f * a - centre) @ R  # row vectors: x @ R = (R^T x^T)^T
    return (corner + offset) // f


def gather(array: np.ndarray, index: np.ndarray, fill) -> np.ndarray:
    """array[index] for index [..., 3], `fill` where an index lies outside the array."""
    inside = np.all((index >= 0) & (index < np.array(array.shape)), axis=-1)
    safe = np.where(inside[..., None], index, 0)
    out = array[safe[..., 0], safe[..., 1], safe[..., 2]]
    return np.where(inside, out, fill)


class ScanCrops:
    """Training crops over scans. `item(scan_index, seed)` -> one example dict (module
    docstring): images uint8 [V, 3, H, W], K float32 [V, 3, 3], cam_to_world float32 [V, 4, 4]
    (after the augmentation's world turn), view_valid bool [V], depth float32 [V, H, W] metres
    (0 = no reading; when the frames have depth), origin float32 [3] (world
    metres of the crop's fine voxel 0), labels [coarse int64 [X/4, Y/4, Z/4], medium [X/2, ...]]
    (-1 = none), tsdf float32 [X, Y, Z], tsdf_mask bool [X, Y, Z]."""

    def __init__(self, frames: dict[str, ScanFrames], volumes: dict[str, ScanVolume], network, options):
        self.scenes = sorted(set(frames) & set(volumes))
        missing = sorted(set(volumes) ^ set(frames))
        if missing:
            raise StageError(f"scans with a TSDF volume but no frames, or frames but no volume: {', '.join(missing[:5])}")
        if not self.scenes:
            raise StageError("no training scans (no scene has both frames and a TSDF volume)")
        self.frames, self.volumes = frames, volumes
        self.network, self.options = network, options
        self._labels: dict[str, tuple] = {}

    def __len__(self) -> int:
        return len(self.scenes)

    def labels(self, scene: str):
        """(levels' labels [fine, medium, coarse] uint8, fine loss mask, surface voxel indices)."""
        if scene not in self._labels:
            volume = self.volumes[scene]
            observed = volume.weight > 0
            surface = np.argwhere((np.abs(volume.tsdf) < LABEL_THRESHOLD) & observed)
            if len(surface) == 0:
                raise StageError(f"TSDF volume of {scene}: no observed surface voxel to crop around")
            self._labels[scene] = (level_labels(volume.tsdf, 3), fine_loss_mask(volume.tsdf), surface)
        return self._labels[scene]

    def item(self, index: int, seed: int) -> dict:
        scene = self.scenes[index]
        rng = np.random.default_rng([int(seed), int(index)])
        volume, frames = self.volumes[scene], self.frames[scene]
        levels, loss_mask, surface = self.labels(scene)
        dims = np.array(self.options.crop)
        shape = np.array(volume.tsdf.shape)
        anchor = surface[rng.integers(len(surface))]
        corner = anchor - dims // 2
        corner[2] = 0 if shape[2] <= dims[2] else min(max(corner[2], 0), shape[2] - dims[2])
        corner = (np.floor_divide(corner, 4) * 4).astype(np.int64)
        turns, flip = (int(rng.integers(4)), bool(rng.integers(2))) if self.options.augment else (0, False)
        if dims[0] != dims[1]:
            turns -= turns % 2  # a quarter turn would not map an oblong crop onto itself
        R = dihedral_matrix(turns, flip)
        centre = (dims // 8) * 4
        centre[2] = 0
        fine = crop_indices(corner, dims, 0, R, centre)
        tsdf = gather(volume.tsdf, fine, np.float32(1.0)).astype(np.float32)
        inside = gather(np.ones(volume.tsdf.shape, bool), fine, False)
        tsdf_mask = gather(loss_mask, fine, False) & inside
        labels = [gather(levels[s].astype(np.int64), crop_indices(corner, dims, s, R, centre), -1) for s in (2, 1)]
        # world transform of the augmentation: p' = c + R (p - c), c the turn's centre in metres
        v = volume.grid.voxel_size
        origin = np.asarray(volume.grid.origin) + corner * v
        c = origin + centre * v
        A = np.eye(4)
        A[:3, :3] = R
        A[:3, 3] = c - R @ c
        # views: keyframes seeing the crop's surface (before the turn: visibility is invariant)
        pick = surface[np.all((surface >= corner) & (surface < corner + dims), axis=1)]
        if len(pick) > VISIBILITY_SAMPLES:
            pick = pick[rng.choice(len(pick), VISIBILITY_SAMPLES, replace=False)]
        points = np.asarray(volume.grid.origin) + pick * v
        seen = visible_fraction(points, frames.K, frames.poses, frames.width, frames.height)
        candidates = np.flatnonzero(seen >= MIN_VISIBLE)
        if len(candidates) == 0:
            candidates = np.flatnonzero(seen > 0)
        if len(candidates) == 0:
            candidates = np.arange(len(frames.poses))
        n = min(self.options.views, len(candidates))
        chosen = np.sort(rng.choice(candidates, n, replace=False))
        example = views_example(frames, chosen, self.network.image_size, self.options.views, scene,
                                jitter=(rng, self.options.color_jitter), world=A,
                                depth=frames.depths is not None)
        example.update(origin=torch.from_numpy(origin.astype(np.float32)),
                       labels=[torch.from_numpy(x) for x in labels],
                       tsdf=torch.from_numpy(tsdf), tsdf_mask=torch.from_numpy(tsdf_mask))
        return example


def views_example(frames: ScanFrames, chosen: np.ndarray, size: tuple[int, int], slots: int, scene: str,
                  jitter=None, world: np.ndarray | None = None, depth: bool = False) -> dict:
    """images uint8 [slots, 3, H, W], K, cam_to_world (world @ pose), view_valid of the chosen
    frames (padded with invalid views up to `slots`); jitter: (rng, amplitude) or None; with
    `depth` also depth float32 [slots, H, W] metres (`load_depth`; 0 in padded slots)."""
    W, H = size
    depths = np.zeros((slots, H, W), np.float32) if depth else None
    images = np.zeros((slots, 3, H, W), np.uint8)
    Ks = np.tile(np.eye(3), (slots, 1, 1))
    poses = np.tile(np.eye(4), (slots, 1, 1))
    valid = np.zeros(slots, bool)
    for slot, i in enumerate(chosen[:slots]):
        rgb, K = load_image(frames.colors[i], frames.K[i], size, f"{scene} frame {frames.frames[i]}")
        if jitter is not None and jitter[1] > 0:
            rng, amp = jitter
            brightness, contrast = rng.uniform(1 - amp, 1 + amp, size=2)
            x = rgb.astype(np.float32)
            x = (x - x.mean()) * contrast + x.mean() * brightness
            rgb = np.clip(np.rint(x), 0, 255).astype(np.uint8)
        images[slot], Ks[slot], valid[slot] = rgb, K, True
        if depths is not None:
            depths[slot] = load_depth(frames.depths[i], size, f"{scene} frame {frames.frames[i]}")
        poses[slot] = frames.poses[i] if world is None else world @ frames.poses[i]
    out = {"images": torch.from_numpy(images), "K": torch.from_numpy(Ks.astype(np.float32)),
           "cam_to_world": torch.from_numpy(poses.astype(np.float32)), "view_valid": torch.from_numpy(valid)}
    if depths is not None:
        out["depth"] = torch.from_numpy(depths)
    return out


def collate(items: list[dict]) -> dict:
    """Stack examples of one crop size; labels stay a per-level list of [B, ...] tensors."""
    keys = ["images", "K", "cam_to_world", "view_valid", "origin", "tsdf", "tsdf_mask"]
    batch = {k: torch.stack([it[k] for it in items]) for k in keys + (["depth"] if "depth" in items[0] else [])}
    batch["labels"] = [torch.stack([it["labels"][level] for it in items]) for level in range(2)]
    batch["dims"] = tuple(items[0]["tsdf"].shape)
    return batch


def tile_views(frames: ScanFrames, points: np.ndarray, count: int) -> np.ndarray:
    """Frame indices for an inference tile: of the keyframes seeing any of its points [P, 3],
    at most `count`, evenly spaced in frame order (deterministic)."""
    seen = np.flatnonzero(visible_fraction(points, frames.K, frames.poses, frames.width, frames.height) > 0)
    if len(seen) <= count:
        return seen
    return seen[np.round(np.linspace(0, len(seen) - 1, count)).astype(np.int64)]


def scan_frames_from_table(path: Path, keyframes_only: bool = True) -> dict[str, ScanFrames]:
    """read_frames of one FRAMES file (prediction reads the table of the user's scan)."""
    return read_frames([str(path)], keyframes_only)


def frame_records(paths: Sequence[str], scene: str) -> pd.DataFrame:
    """The FRAMES rows of one scan (all frames), for the qualitative images."""
    table = read_table([str(p) for p in paths], FRAMES, columns=FRAME_COLUMNS)
    return table[table["scene"] == scene].sort_values("frame").reset_index(drop=True)
