"""The TSDF tables written by `stages.fuse_tsdf`: one row per (scene, voxel size), plus quarantine.

    OUT/volumes/<split>/shard-NNNNN.parquet      TSDF_VOLUMES
    OUT/quarantine/<split>/shard-NNNNN.parquet   TSDF_QUARANTINE

A shard's number is the FRAMES shard its scenes start in.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Mapping

import numpy as np
import pandera.pandas as pa
import pyarrow

from stages.errors import StageError
from stages.scannet_tables import SCANNET_QUARANTINE
from stages.tables import SPLITS, TableSpec, pack_array, shard_path, unpack_array
from stages.tsdf.fusion import VolumeGrid

TSDF_DTYPE = "<f2"
WEIGHT_DTYPE = "<u2"
WEIGHT_MAX = np.iinfo(np.uint16).max
AXES = ("x", "y", "z")


def _bytes_per_voxel(column: str, size: int) -> pa.Check:
    def check(df):
        voxels = df["dim_x"].astype("int64") * df["dim_y"] * df["dim_z"]
        return df[column].map(len) == voxels * size

    return pa.Check(check, name=f"len({column}) == {size} * dim_x * dim_y * dim_z")


def _is_bytes() -> pa.Check:
    return pa.Check(lambda s: s.map(lambda v: isinstance(v, bytes)), name="is bytes")


TSDF_VOLUMES = TableSpec(
    name="tsdf_volumes",
    arrow=pyarrow.schema(
        [
            ("scene", pyarrow.string()),
            ("split", pyarrow.string()),
            ("voxel_size", pyarrow.float64()),
            ("truncation", pyarrow.float64()),
            *[(f"origin_{a}", pyarrow.float64()) for a in AXES],
            *[(f"dim_{a}", pyarrow.int64()) for a in AXES],
            ("frames", pyarrow.int64()),
            ("observed", pyarrow.int64()),
            ("tsdf", pyarrow.binary()),
            ("weights", pyarrow.binary()),
        ]
    ),
    checks=pa.DataFrameSchema(
        {
            "scene": pa.Column(str, pa.Check.str_matches(r"^[A-Za-z0-9_.-]+$")),
            "split": pa.Column(str, pa.Check.isin(SPLITS)),
            "voxel_size": pa.Column("float64", pa.Check.gt(0)),
            "truncation": pa.Column("float64", pa.Check.gt(0)),
            **{f"origin_{a}": pa.Column("float64", pa.Check(np.isfinite, name="finite")) for a in AXES},
            **{f"dim_{a}": pa.Column("int64", pa.Check.ge(2)) for a in AXES},
            "frames": pa.Column("int64", pa.Check.ge(1)),
            "observed": pa.Column("int64", pa.Check.ge(1)),
            "tsdf": pa.Column(object, _is_bytes()),
            "weights": pa.Column(object, _is_bytes()),
        },
        checks=[_bytes_per_voxel("tsdf", 2), _bytes_per_voxel("weights", 2)],
        unique=["scene", "voxel_size"],
        strict=True,
    ),
    doc="One ground-truth TSDF volume per scene and voxel size (4, 8, 16 cm). Voxel (i, j, k) "
    "is at origin + (i, j, k) * voxel_size (world metres, no half-voxel offset); the 8 and 16 cm "
    "volumes share the 4 cm origin, so their voxel i is 4 cm voxel 2i / 4i. truncation: metres "
    "(3 voxels). tsdf: float16 LE [dim_x, dim_y, dim_z] (C order, x slowest) in [-1, 1], "
    "positive behind a surface, +1 where unobserved, negative in observed free space (IOAR's "
    "saved convention); weights: uint16 LE, same shape, the number of frames that updated the "
    "voxel (saturating at 65535; 0 = unobserved). frames: frames fused; observed: voxels with "
    "weight > 0.",
)

# The same columns and checks as the converter's quarantine (scene, split, reason), by name of its own.
TSDF_QUARANTINE = replace(
    SCANNET_QUARANTINE,
    name="tsdf_quarantine",
    doc="One row per scene left without a TSDF volume (no valid depth pixel, undecodable "
    "depth), with the reason.",
)


def volumes_shard(out: str | os.PathLike, split: str, shard: int) -> Path:
    """OUT/volumes/<split>/shard-NNNNN.parquet."""
    return shard_path(Path(out) / "volumes", shard, split)


def quarantine_shard(out: str | os.PathLike, split: str, shard: int) -> Path:
    """OUT/quarantine/<split>/shard-NNNNN.parquet."""
    return shard_path(Path(out) / "quarantine", shard, split)


def volume_row(scene: str, split: str, grid: VolumeGrid, truncation: float, frames: int,
               tsdf: np.ndarray, weight: np.ndarray) -> dict:
    """A TSDF_VOLUMES row from arrays: tsdf float [nx, ny, nz], weight int counts, same shape."""
    counts = np.minimum(np.asarray(weight), WEIGHT_MAX)
    return {
        "scene": scene,
        "split": split,
        "voxel_size": float(grid.voxel_size),
        "truncation": float(truncation),
        **{f"origin_{a}": float(grid.origin[n]) for n, a in enumerate(AXES)},
        **{f"dim_{a}": int(grid.dims[n]) for n, a in enumerate(AXES)},
        "frames": int(frames),
        "observed": int(np.count_nonzero(counts)),
        "tsdf": pack_array(tsdf, TSDF_DTYPE),
        "weights": pack_array(counts, WEIGHT_DTYPE),
    }


def decode_volume(row: Mapping) -> tuple[VolumeGrid, np.ndarray, np.ndarray]:
    """(grid, tsdf float32 [nx, ny, nz], weight uint16 [nx, ny, nz]) of a TSDF_VOLUMES row.

    Raises StageError when a buffer's length does not match the dimensions.
    """
    dims = tuple(int(row[f"dim_{a}"]) for a in AXES)
    grid = VolumeGrid(tuple(float(row[f"origin_{a}"]) for a in AXES), float(row["voxel_size"]), dims)
    voxels = int(np.prod(dims))
    for column in ("tsdf", "weights"):
        if len(row[column]) != 2 * voxels:
            raise StageError(
                f"TSDF volume of {row['scene']} at {grid.voxel_size} m: {column} holds "
                f"{len(row[column])} bytes, expected {2 * voxels}"
            )
    tsdf = unpack_array(row["tsdf"], TSDF_DTYPE, dims).astype(np.float32)
    weight = unpack_array(row["weights"], WEIGHT_DTYPE, dims).copy()
    return grid, tsdf, weight
