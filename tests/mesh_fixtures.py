"""Small mesh tables built from trimesh primitives (no OBJ parsing needed), for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import trimesh

from stages.sharding import shard_of
from stages.tables import BOUNDS, MESHES, pack_array, write_shard

PRIMITIVES = {
    "box": lambda: trimesh.creation.box(extents=(0.6, 0.4, 0.5)),
    "sphere": lambda: trimesh.creation.icosphere(subdivisions=2, radius=0.4),
    "cylinder": lambda: trimesh.creation.cylinder(radius=0.2, height=0.7, sections=16),
    "capsule": lambda: trimesh.creation.capsule(height=0.4, radius=0.15),
}


def normalised(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """ShapeNet-style normalisation: bounding box centred at 0, diagonal 1."""
    mesh = mesh.copy()
    lo, hi = mesh.bounds
    mesh.apply_translation(-(lo + hi) / 2)
    mesh.apply_scale(1.0 / np.linalg.norm(hi - lo))
    return mesh


def mesh_row(synset: str, mesh_id: str, mesh: trimesh.Trimesh) -> dict:
    v = np.asarray(mesh.vertices, dtype=np.float32)
    row = {
        "synset": synset,
        "mesh_id": mesh_id,
        "source_path": f"{synset}/{mesh_id}",
        "num_vertices": len(v),
        "num_faces": len(mesh.faces),
        "unused_vertices": 0,
        "vertices": pack_array(v, "<f4"),
        "faces": pack_array(mesh.faces, "<i4"),
    }
    row.update(zip(BOUNDS, [*v.min(0).astype(float), *v.max(0).astype(float)]))
    return row


def write_mesh_table(root: Path, per_class: int = 5, num_shards: int = 2, synsets=("03001627", "04379243", "02958343")) -> list[Path]:
    rows = []
    names = list(PRIMITIVES)
    for c, synset in enumerate(synsets):
        for i in range(per_class):
            mesh = normalised(PRIMITIVES[names[(c + i) % len(names)]]())
            rows.append(mesh_row(synset, f"{synset[-3:]}{i:05d}", mesh))
    frame = pd.DataFrame(rows, columns=MESHES.columns)
    files = []
    for shard in range(num_shards):
        part = frame[[shard_of(f"{r.synset}/{r.mesh_id}", num_shards) == shard for r in frame.itertuples()]]
        path = root / f"shard-{shard:05d}.parquet"
        write_shard(part.sort_values(["synset", "mesh_id"]).reset_index(drop=True), path, MESHES)
        files.append(path)
    return files
