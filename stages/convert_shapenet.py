"""convert_shapenet: a ShapeNetCore.v2 folder (real or synthetic) -> the meshes Parquet table.

Reads `ROOT/<synset>/<model_id>/models/model_normalized.obj` for the models whose stable hash
falls into this job's shard, in partitions spread over Dask workers. A model that cannot be
used (unreadable file, no faces, NaN vertices, bad indices, missing OBJ) becomes a row of the
quarantine table with its reason: one bad file never stops the run, and no model is dropped
without a row in one of the two tables. Vertices that no face uses are dropped (the row counts
them in `unused_vertices`), so that bounds, and the placement and scale that scenes derive from
them, cover only the geometry faces use.

    python -m stages.convert_shapenet --root SHAPENET_DIR --out OUT_DIR [--shard I --num-shards N]

writes OUT_DIR/meshes/shard-0000I.parquet and OUT_DIR/quarantine/shard-0000I.parquet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from stages.cli import run
from stages.formats.mesh import MeshError, drop_unused_vertices, validate_mesh
from stages.formats.obj import read_obj
from stages.parallel import add_dask_arguments, chunk, dask_options, map_partitions
from stages.sharding import check_shard, shard_of
from stages.tables import BOUNDS, MESHES, QUARANTINE, ShardWriter, pack_array, shard_path

MODEL_FILE = Path("models") / "model_normalized.obj"


def list_models(root: Path, synsets: list[str] | None = None) -> list[tuple[str, str, str]]:
    """(synset, model_id, obj path) for every model folder under a ShapeNetCore.v2 root."""
    if not root.is_dir():
        raise SystemExit(f"convert_shapenet: {root}: not a directory")
    models = []
    for synset_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if synsets is not None and synset_dir.name not in synsets:
            continue
        for model_dir in sorted(p for p in synset_dir.iterdir() if p.is_dir()):
            models.append((synset_dir.name, model_dir.name, str(model_dir / MODEL_FILE)))
    return models


def convert_one(synset: str, mesh_id: str, path: str) -> tuple[dict | None, str | None]:
    """Read one model: (mesh row, None) or (None, quarantine reason).

    The row holds only the vertices faces use, and its bounds are theirs (float32-rounded, as
    stored); reasons are one line, with any quoted file content bounded (stages.errors.quote).
    """
    if not Path(path).exists():
        return None, f"missing {MODEL_FILE}"
    try:
        mesh = read_obj(path)
    except MeshError as err:
        return None, err.reason
    except MemoryError:
        return None, "unreadable: out of memory reading the file"
    reason = validate_mesh(mesh)
    if reason is not None:
        return None, reason
    mesh, unused = drop_unused_vertices(mesh)
    vertices = mesh.vertices.astype(np.float32)
    lo, hi = vertices.min(axis=0).astype(np.float64), vertices.max(axis=0).astype(np.float64)
    row = {
        "synset": synset,
        "mesh_id": mesh_id,
        "source_path": path,
        "num_vertices": len(vertices),
        "num_faces": len(mesh.faces),
        "unused_vertices": unused,
        "vertices": pack_array(vertices, "<f4"),
        "faces": pack_array(mesh.faces, "<i4"),
    }
    row.update(zip(BOUNDS, [*lo, *hi]))
    return row, None


def convert_partition(models: list[tuple[str, str, str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    good, bad = [], []
    for synset, mesh_id, path in models:
        row, reason = convert_one(synset, mesh_id, path)
        if row is not None:
            good.append(row)
        else:
            bad.append({"synset": synset, "mesh_id": mesh_id, "source_path": path, "reason": reason})
    return (
        pd.DataFrame(good, columns=MESHES.columns).astype(
            {"num_vertices": "int64", "num_faces": "int64", "unused_vertices": "int64"}
        ),
        pd.DataFrame(bad, columns=QUARANTINE.columns),
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stages.convert_shapenet",
        description="Convert a ShapeNetCore.v2-layout folder into the meshes and quarantine "
        "Parquet tables (one shard of them).",
    )
    parser.add_argument("--root", type=Path, required=True, help="ShapeNetCore.v2 folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder (meshes/, quarantine/)")
    parser.add_argument("--shard", type=int, default=0, help="this job's shard (default 0)")
    parser.add_argument("--num-shards", type=int, default=1, help="number of shards (default 1)")
    parser.add_argument(
        "--synsets", nargs="*", default=None, help="only these synset folders (default: all)"
    )
    parser.add_argument(
        "--partition-size", type=int, default=32, help="models per Dask partition (default 32)"
    )
    add_dask_arguments(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    check_shard(args.shard, args.num_shards)
    options = dask_options(args)
    models = [
        m
        for m in list_models(args.root, args.synsets)
        if shard_of(f"{m[0]}/{m[1]}", args.num_shards) == args.shard
    ]
    partitions = chunk(models, args.partition_size)
    with (
        ShardWriter(shard_path(args.out / "meshes", args.shard), MESHES) as mesh_writer,
        ShardWriter(shard_path(args.out / "quarantine", args.shard), QUARANTINE) as quarantine_writer,
    ):
        for good, bad in map_partitions(convert_partition, partitions, options, "convert_shapenet"):
            mesh_writer.write(good)
            quarantine_writer.write(bad)
    print(
        f"convert_shapenet: shard {args.shard}/{args.num_shards}: {mesh_writer.rows} meshes, "
        f"{quarantine_writer.rows} quarantined, of {len(models)} models",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    run(main)
