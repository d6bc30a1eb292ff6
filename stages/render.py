"""render: the input image of every scene, at a realism level, with the CPU rasterizer.

    python -m stages.render --scenes SHARD.parquet --meshes MESH_SHARDS... --realism low \\
        --size 128 --out RENDER_SHARD.parquet

`low` is flat Lambertian shading with per-object colours; `high` adds a textured floor and
background, a varying key light and cast shadows (see stages.rendering.shading). Every image is
deterministic given the scene's seed. Also records, per object, the fraction of its pixels that
stay visible in the full scene (CoReNet's mesh_visible_fractions).
"""

from __future__ import annotations

import argparse
import colorsys
import io
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from stages.cli import run
from stages.parallel import add_dask_arguments, dask_options, map_partitions
from stages.rendering.shading import SceneObject, render_object_ids, render_scene
from stages.scene_geometry import PlacedScene, mesh_shard_files, place_scenes
from stages.tables import RENDERS, SCENES, ShardWriter, iter_batches, pack_array

REALISM_SALT = {"low": 1, "high": 2}


def object_colours(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """Distinct, saturated colours: hues spread around the circle from a random start."""
    start = rng.uniform()
    return [
        np.array(colorsys.hsv_to_rgb((start + i / max(count, 1) + rng.uniform(-0.05, 0.05)) % 1.0, rng.uniform(0.45, 0.85), rng.uniform(0.7, 0.95)))
        for i in range(count)
    ]


def visible_fractions(scene: PlacedScene, objects: list[SceneObject], size: int) -> np.ndarray:
    """Visible pixels of each object in the full scene over its pixels when rendered alone."""
    identity = np.eye(4)
    together = render_object_ids(objects, identity, scene.camera_transform, size, size)
    fractions = []
    for index, obj in enumerate(objects):
        alone = render_object_ids([obj], identity, scene.camera_transform, size, size)
        total = int((alone == 0).sum())
        fractions.append(float((together == index).sum()) / total if total else 0.0)
    return np.array(fractions, dtype=np.float32)


def encode_png(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(out, format="PNG", optimize=False)
    return out.getvalue()


def render_partition(scene_rows: pd.DataFrame, mesh_files: list[Path], realism: str, size: int) -> pd.DataFrame:
    rows = []
    for scene in place_scenes(scene_rows, mesh_files):
        rng = np.random.default_rng([scene.seed, REALISM_SALT[realism]])
        colours = object_colours(rng, len(scene.objects))
        objects = [SceneObject(o.vertices, o.faces, c) for o, c in zip(scene.objects, colours)]
        # Objects are already in reconstruction space, so the view transform is the identity.
        image = render_scene(objects, np.eye(4), scene.camera_transform, size, size, realism, rng)
        rows.append(
            {
                "scene_id": scene.scene_id,
                "realism": realism,
                "width": size,
                "height": size,
                "image": encode_png(image),
                "num_objects": len(objects),
                "visible_fractions": pack_array(visible_fractions(scene, objects, size), "<f4"),
            }
        )
    return pd.DataFrame(rows, columns=RENDERS.columns)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.render", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", type=Path, required=True, help="scenes shard (Parquet)")
    parser.add_argument("--meshes", type=Path, nargs="+", required=True, help="all meshes shard files, or their folder")
    parser.add_argument("--realism", required=True, choices=["low", "high"])
    parser.add_argument("--size", type=int, default=128, help="image width and height in pixels (default 128)")
    parser.add_argument("--out", type=Path, required=True, help="renders shard to write (Parquet)")
    parser.add_argument("--partition-size", type=int, default=16, help="scenes per Dask partition (default 16)")
    add_dask_arguments(parser)
    args = parser.parse_args(argv)
    if args.size < 8:
        parser.error("--size must be >= 8")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    mesh_files = mesh_shard_files(args.meshes)
    options = dask_options(args)
    partitions = list(iter_batches(args.scenes, SCENES, batch_rows=args.partition_size))
    work = partial(render_partition, mesh_files=mesh_files, realism=args.realism, size=args.size)
    with ShardWriter(args.out, RENDERS) as writer:
        for frame in map_partitions(work, partitions, options, f"render {args.realism}"):
            writer.write(frame)
    print(f"render: {writer.rows} {args.realism} images at {args.size}px -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run(main)
