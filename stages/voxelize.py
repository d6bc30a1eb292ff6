"""voxelize: solid ground-truth occupancy grids.

    python -m stages.voxelize scenes --scenes SHARD.parquet --meshes MESH_SHARDS... \\
        --resolution 32 --out VOXEL_SHARD.parquet [--backend auto|cpu|cuda]
    python -m stages.voxelize mesh IN.obj --resolution 128 --out OUT.binvox [--cube TX TY TZ S]

`scenes` voxelizes each object of each scene alone in the scene's voxel grid (the unit cube of
reconstruction space at the given resolution) and stores one occupancy plane per object (see
stages.voxel_codec). `mesh` is the one-file tool, like binvox.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from stages.camera import world_to_voxel
from stages.cli import run
from stages.parallel import add_dask_arguments, chunk, dask_options, map_partitions
from stages.scene_geometry import mesh_shard_files, place_scenes, transform
from stages.tables import SCENES, VOXELS, ShardWriter, iter_batches, pack_array
from stages.voxel_codec import ENCODING, encode_planes
from stages.voxelization import resolve_backend, voxelize_many
from stages.voxelization.mesh_command import add_mesh_arguments, run_mesh_command


def voxelize_partition(scene_rows: pd.DataFrame, mesh_files: list[Path], resolution: int, backend: str) -> pd.DataFrame:
    scenes = place_scenes(scene_rows, mesh_files)
    to_voxel = world_to_voxel(np.eye(4), resolution)  # objects are already in reconstruction space
    soups = [
        transform(to_voxel, obj.vertices)[obj.faces]
        for scene in scenes
        for obj in scene.objects
    ]
    grids = iter(voxelize_many(soups, resolution, backend=backend))
    rows = []
    for scene in scenes:
        planes = np.stack([next(grids) for _ in scene.objects])
        rows.append(
            {
                "scene_id": scene.scene_id,
                "resolution": resolution,
                "num_objects": len(scene.objects),
                "encoding": ENCODING,
                "grid": encode_planes(planes),
                "object_voxels": pack_array(planes.reshape(len(planes), -1).sum(axis=1), "<i8"),
            }
        )
    return pd.DataFrame(rows, columns=VOXELS.columns)


def run_scenes(args: argparse.Namespace) -> None:
    mesh_files = mesh_shard_files(args.meshes)
    options = dask_options(args)
    backend = resolve_backend(args.backend)
    if backend == "cuda" and "://" not in options.scheduler:
        # One process drives the GPU and batches a whole partition per launch; several worker
        # processes would only compete for the same device.
        options = replace(options, scheduler="sync")
    partitions = list(iter_batches(args.scenes, SCENES, batch_rows=args.partition_size))
    work = partial(voxelize_partition, mesh_files=mesh_files, resolution=args.resolution, backend=backend)
    with ShardWriter(args.out, VOXELS) as writer:
        for frame in map_partitions(work, partitions, options, f"voxelize {args.resolution}^3"):
            writer.write(frame)
    print(f"voxelize: {writer.rows} scenes at {args.resolution}^3 ({backend}) -> {args.out}", file=sys.stderr)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.voxelize", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    scenes = sub.add_parser("scenes", help="voxelize every scene of a scenes shard")
    scenes.add_argument("--scenes", type=Path, required=True, help="scenes shard (Parquet)")
    scenes.add_argument("--meshes", type=Path, nargs="+", required=True, help="all meshes shard files, or their folder")
    scenes.add_argument("--resolution", type=int, required=True, choices=[16, 32, 64, 128, 256])
    scenes.add_argument("--out", type=Path, required=True, help="voxels shard to write (Parquet)")
    scenes.add_argument("--backend", default="auto", choices=["auto", "cpu", "cuda"], help="default auto: CUDA when a GPU is visible")
    scenes.add_argument("--partition-size", type=int, default=16, help="scenes per Dask partition (default 16)")
    add_dask_arguments(scenes)
    mesh = sub.add_parser("mesh", help="voxelize one mesh file (like binvox)")
    add_mesh_arguments(mesh)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.command == "scenes":
        run_scenes(args)
    else:
        run_mesh_command(args)
    return 0


if __name__ == "__main__":
    run(main)
