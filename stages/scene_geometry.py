"""Geometry of scene rows: fetch the meshes a scene uses and place them in the world.

Meshes live in the meshes table, sharded by a stable hash of "synset/mesh_id", so the shard that
holds a mesh is known without a scan; within a shard, rows are ordered by synset and id, so
Parquet's row-group statistics let a filtered read skip most of the file. A worker therefore
reads only the meshes of its own partition, and its memory is bounded by the partition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from stages.sharding import shard_of
from stages.tables import (MESHES, READ_ERRORS, SchemaViolation, open_shard, shard_files, unpack_array, unreadable,
                           validate)

_SHARD_NAME = re.compile(r"shard-(\d{5})\.parquet$")


@dataclass(frozen=True)
class Mesh:
    vertices: np.ndarray  # float64 [N, 3]
    faces: np.ndarray  # int64 [M, 3]


@dataclass(frozen=True)
class PlacedScene:
    """A scene's objects in reconstruction space (the unit cube), plus its transforms."""

    scene_id: str
    objects: list[Mesh]
    labels: list[str]
    view_transform: np.ndarray
    camera_transform: np.ndarray
    seed: int


def mesh_shard_files(paths: Sequence[str | Path]) -> list[Path]:
    """The meshes table's shard files, checked to be exactly shard-00000 .. shard-(N-1)."""
    files = sorted(Path(p) for p in paths)
    if len(files) == 1 and files[0].is_dir():
        files = shard_files(files[0])
    numbers = []
    for f in files:
        match = _SHARD_NAME.search(f.name)
        if not match:
            raise SystemExit(f"not a meshes shard file: {f}")
        numbers.append(int(match.group(1)))
    if not files or numbers != list(range(len(files))):
        raise SystemExit(f"meshes shards must be shard-00000..shard-{len(files) - 1:05d}, got {numbers}")
    return files


def load_meshes(shard_files: Sequence[Path], keys: set[tuple[str, str]]) -> dict[tuple[str, str], Mesh]:
    """Read the meshes named by (synset, mesh_id) keys; a missing mesh is an error."""
    by_shard: dict[int, set[tuple[str, str]]] = {}
    for synset, mesh_id in keys:
        by_shard.setdefault(shard_of(f"{synset}/{mesh_id}", len(shard_files)), set()).add((synset, mesh_id))
    meshes: dict[tuple[str, str], Mesh] = {}
    for shard, wanted in sorted(by_shard.items()):
        for frame in _row_groups_holding(shard_files[shard], wanted):
            for row in frame.itertuples(index=False):
                key = (row.synset, row.mesh_id)
                if key in wanted:
                    meshes[key] = Mesh(
                        vertices=unpack_array(row.vertices, "<f4", (-1, 3)).astype(np.float64),
                        faces=unpack_array(row.faces, "<i4", (-1, 3)).astype(np.int64),
                    )
    missing = keys - meshes.keys()
    if missing:
        example = sorted(missing)[0]
        raise SchemaViolation(
            f"scenes refer to {len(missing)} meshes absent from the meshes table, e.g. {example[0]}/{example[1]}"
        )
    return meshes


def _row_groups_holding(path: Path, wanted: set[tuple[str, str]]):
    """Yield, one row group at a time, the validated row groups that may hold a wanted mesh.

    Row groups are skipped by their (synset, mesh_id) min/max statistics; reading one at a time
    keeps memory bounded by a row group (one convert_shapenet partition), whatever the shard's size.
    """
    pf = open_shard(path, MESHES)
    names = pf.schema_arrow.names
    synset_col, mesh_col = names.index("synset"), names.index("mesh_id")
    keys = sorted(wanted)
    for group in range(pf.metadata.num_row_groups):
        meta = pf.metadata.row_group(group)
        s_stats, m_stats = meta.column(synset_col).statistics, meta.column(mesh_col).statistics
        if s_stats is not None and m_stats is not None and s_stats.has_min_max and m_stats.has_min_max:
            lo, hi = (s_stats.min, m_stats.min), (s_stats.max, m_stats.max)
            # Rows are sorted by (synset, mesh_id) within a shard, so the group spans [lo, hi].
            if not any(lo[0] <= s <= hi[0] and (s != lo[0] or m >= lo[1]) and (s != hi[0] or m <= hi[1]) for s, m in keys):
                continue
        try:
            frame = pf.read_row_group(group).to_pandas()
        except READ_ERRORS as err:
            raise unreadable(path, MESHES, err) from None
        yield validate(frame, MESHES, where=f"{path} row group {group}")


def transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def place_scenes(scene_rows, shard_files: Sequence[Path]) -> list[PlacedScene]:
    """Turn scene rows (a DataFrame of the scenes table) into objects in reconstruction space."""
    keys = {(s, m) for row in scene_rows.itertuples(index=False) for s, m in zip(row.mesh_labels, row.mesh_ids)}
    meshes = load_meshes(shard_files, keys)
    placed = []
    for row in scene_rows.itertuples(index=False):
        view = unpack_array(row.view_transform, "<f8", (4, 4))
        o2w = unpack_array(row.object_to_world, "<f8", (-1, 4, 4))
        objects = []
        for synset, mesh_id, matrix in zip(row.mesh_labels, row.mesh_ids, o2w):
            mesh = meshes[(synset, mesh_id)]
            objects.append(Mesh(transform(view @ matrix, mesh.vertices), mesh.faces))
        placed.append(
            PlacedScene(
                scene_id=row.scene_id,
                objects=objects,
                labels=list(row.mesh_labels),
                view_transform=view,
                camera_transform=unpack_array(row.camera_transform, "<f8", (4, 4)),
                seed=int(row.seed),
            )
        )
    return placed
