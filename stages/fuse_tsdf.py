"""fuse_tsdf: ground-truth TSDF volumes at 4, 8 and 16 cm by fusing a scan's depth frames.

    python -m stages.fuse_tsdf --frames CONVERTED --out DIR [--split test] [--shard N]
        [--voxel-size 0.04] [--max-depth 3.0] [--meshes MESH_DIR] [--device auto|cpu|cuda]

CONVERTED is `stages.convert_scannet`'s output folder (FRAMES in CONVERTED/frames/<split>/).
For each scene of each split (or only `--split`; with `--shard N`, only the scenes whose first
frame is in FRAMES shard N) every frame's depth, cut at --max-depth (IOAR generate_gt.py: 3 m),
is fused into three volumes of voxel size v, 2v, 4v with truncation 3 voxels each
(`stages.tsdf.fusion`), which share one origin: the bounds of all valid back-projected depth
points, widened by the finest truncation (3v) and aligned outwards to multiples of 4v. Output:
DIR/volumes/<split>/shard-NNNNN.parquet (TSDF_VOLUMES, three rows per scene) and
DIR/quarantine/<split>/shard-NNNNN.parquet (TSDF_QUARANTINE: scenes with no valid depth pixel or
an undecodable depth image); with --meshes, MESH_DIR/<scene>.ply, the marching-cubes surface of
the finest volume in the scan's world coordinates. Every file is written atomically.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import torch
from tqdm import tqdm

from stages.atomic import atomic_write
from stages.cli import run
from stages.errors import StageError
from stages.scannet_tables import FRAMES, cam_to_world, decode_depth, frames_dir, intrinsics
from stages.tables import READ_ERRORS, SPLITS, SchemaViolation, ShardWriter, open_shard, shard_files, unreadable
from stages.torch_device import resolve_device
from stages.tsdf.fusion import (
    MAX_DEPTH,
    TRUNCATION_VOXELS,
    depth_point_bounds,
    fuse_frames,
    grid_for_bounds,
    level_grids,
    valid_depth,
)
from stages.tsdf.meshing import tsdf_to_mesh
from stages.tsdf.tables import TSDF_QUARANTINE, TSDF_VOLUMES, quarantine_shard, volume_row, volumes_shard

LEVELS = 3
COLUMNS = ["scene", "frame", "cam_to_world", "intrinsics", "width", "height", "depth"]
_FRAME_CHECKS = pa.DataFrameSchema({c: FRAMES.checks.columns[c] for c in COLUMNS}, strict=True)
_SHARD_NUMBER = re.compile(r"^shard-(\d+)\.parquet$")


def shard_number(path: Path) -> int:
    match = _SHARD_NUMBER.match(path.name)
    if match is None:
        raise StageError(f"{path}: not a shard-NNNNN.parquet file")
    return int(match.group(1))


def scene_owners(shards: Sequence[Path]) -> dict[str, int]:
    """scene -> number of the first FRAMES shard (in file order) holding one of its frames."""
    owners: dict[str, int] = {}
    for path in shards:
        shard = open_shard(path, FRAMES)  # a damaged file or another table's: one line naming it
        try:
            scenes = shard.read(columns=["scene"]).column("scene")
        except READ_ERRORS as err:
            raise unreadable(path, FRAMES, err) from None
        for scene in pc.unique(scenes).to_pylist():
            owners.setdefault(scene, shard_number(path))
    return owners


def scene_frames(dataset: ds.Dataset, scene: str, where: str) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Stream one scene's frames as (depth [H, W] metres, K [3, 3], cam_to_world [4, 4]).

    Raises StageError naming the shard folder for rows that break the FRAMES schema or a depth
    image that does not decode to the row's size.
    """
    for batch in dataset.to_batches(columns=COLUMNS, filter=pc.field("scene") == scene, batch_size=64):
        df = batch.to_pandas()
        if df.empty:
            continue
        try:
            _FRAME_CHECKS.validate(df, lazy=False)
        except pa.errors.SchemaError as err:
            raise StageError(f"{where}: FRAMES rows of {scene} break the schema: {err.args[0].splitlines()[0]}") from None
        for row in df.itertuples(index=False):
            label = f"{where}: {scene} frame {row.frame}"
            depth = decode_depth(row.depth, label)
            if depth.shape != (row.height, row.width):
                raise StageError(f"{label}: depth is {depth.shape}, the row says {(row.height, row.width)}")
            yield depth, intrinsics(row._asdict()), cam_to_world(row._asdict())


def fuse_scene(frames, voxel_size: float, max_depth: float, device) -> tuple[list, list, int] | None:
    """Fuse one scene: (grids, volumes, frame count), or None when no frame has a valid pixel.

    frames: a callable returning a fresh iterator of (depth, K, cam_to_world) (read twice: once
    for the bounds, once to fuse).
    """
    clipped = ((valid_depth(d, max_depth), K, T) for d, K, T in frames())
    bounds = depth_point_bounds(clipped)
    if bounds is None:
        return None
    coarsest = voxel_size * 2 ** (LEVELS - 1)
    finest = grid_for_bounds(*bounds, voxel_size, TRUNCATION_VOXELS * voxel_size, coarsest)
    grids = level_grids(finest, LEVELS)
    count = 0

    def counted():
        nonlocal count
        for d, K, T in frames():
            count += 1
            yield valid_depth(d, max_depth), K, T

    # float64 on the CPU (exact, reproducible); float32 on a GPU (fast).
    dtype = torch.float64 if torch.device(device).type == "cpu" else torch.float32
    volumes = fuse_frames(grids, counted(), device=device, dtype=dtype)
    return grids, volumes, count


def write_mesh(path: Path, tsdf: np.ndarray, weight: np.ndarray, grid) -> None:
    mesh = tsdf_to_mesh(tsdf, weight, grid)
    atomic_write(path, lambda tmp: mesh.export(tmp, file_type="ply"))


def fuse_shard(args: argparse.Namespace, split: str, shards: list[Path], number: int, owners: dict[str, int]) -> tuple[int, int]:
    """Fuse the scenes owned by FRAMES shard `number`; returns (volumes written, quarantined)."""
    scenes = sorted(s for s, n in owners.items() if n == number)
    dataset = ds.dataset([str(p) for p in shards], format="parquet")
    where = str(frames_dir(args.frames) / split)
    device = resolve_device(args.device)
    quarantined = []
    written = 0
    with ShardWriter(volumes_shard(args.out, split, number), TSDF_VOLUMES) as writer:
        for scene in tqdm(scenes, desc=f"fuse_tsdf {split}/{number:05d}", unit="scene",
                          disable=not sys.stderr.isatty()):
            try:
                fused = fuse_scene(lambda: scene_frames(dataset, scene, where), args.voxel_size,
                                   args.max_depth, device)
            except StageError as err:
                quarantined.append({"scene": scene, "split": split, "reason": str(err)})
                continue
            if fused is None:
                quarantined.append({"scene": scene, "split": split,
                                    "reason": f"no valid depth pixel (0 < depth <= {args.max_depth} m) in any frame"})
                continue
            grids, volumes, count = fused
            rows = []
            for grid, volume in zip(grids, volumes):
                tsdf, weight = volume.arrays()
                rows.append(volume_row(scene, split, grid, volume.truncation, count, tsdf, weight))
                if args.meshes is not None and grid is grids[0]:
                    write_mesh(Path(args.meshes) / f"{scene}.ply", tsdf, weight, grid)
            writer.write(pd.DataFrame(rows, columns=TSDF_VOLUMES.columns))
            written += len(rows)
    with ShardWriter(quarantine_shard(args.out, split, number), TSDF_QUARANTINE) as writer:
        writer.write(pd.DataFrame(quarantined, columns=TSDF_QUARANTINE.columns))
    return written, len(quarantined)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.fuse_tsdf", description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=Path, required=True, help="convert_scannet output folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", choices=SPLITS, help="default: every split present")
    parser.add_argument("--shard", type=int, help="only the scenes starting in this FRAMES shard")
    parser.add_argument("--voxel-size", type=float, default=0.04, help="finest voxel size, metres")
    parser.add_argument("--max-depth", type=float, default=MAX_DEPTH, help="metres; deeper pixels are dropped")
    parser.add_argument("--meshes", type=Path, help="also write <scene>.ply of the finest volume here")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)
    if not args.voxel_size > 0 or not args.max_depth > 0:
        parser.error("--voxel-size and --max-depth must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    root = frames_dir(args.frames)
    splits = [args.split] if args.split else [s for s in SPLITS if (root / s).is_dir()]
    if not splits:
        raise StageError(f"{root}: no FRAMES split folder ({', '.join(SPLITS)})")
    for split in splits:
        shards = shard_files(root / split)
        if not shards:
            raise StageError(f"{root / split}: no FRAMES shard files")
        try:
            owners = scene_owners(shards)
        except SchemaViolation as err:
            raise StageError(str(err)) from None
        numbers = sorted(set(owners.values())) if args.shard is None else [args.shard]
        if args.shard is not None and args.shard not in {shard_number(p) for p in shards}:
            raise StageError(f"{root / split}: no FRAMES shard {args.shard:05d}")
        for number in numbers:
            written, quarantined = fuse_shard(args, split, shards, number, owners)
            print(f"fuse_tsdf: {split} shard {number:05d}: {written // LEVELS} scenes fused, "
                  f"{quarantined} quarantined", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run(main)
