"""The ScanNet-style frame tables written by `stages.convert_scannet` and read by TSDF fusion.

Three tables, each with an Arrow and a pandera schema (checked on write and on read):

    OUT/frames/<split>/shard-NNNNN.parquet   FRAMES: one row per kept frame, sorted by scene, frame
    OUT/scans.parquet                        SCANS: one row per converted scan
    OUT/quarantine.parquet                   SCANNET_QUARANTINE: one row per scan left out

Conventions (those of ScanNet's SensReader export, ScanNet/ScanNet SensReader/python/SensorData.py):
`cam_to_world` maps camera coordinates to world coordinates (metres); camera axes are OpenCV's
(x right, y down, z forward), the world is z-up. `intrinsics` is the depth camera's 3x3 matrix in
pixels; `depth` is that camera's image, `color` is the colour image warped into the depth camera
(same K, width and height), as IOAR's tools/preprocess_scannet.py and Atlas's prepare_data.py do.

The helpers at the bottom decode one row into arrays: depth float32 metres [H, W] (0 = invalid),
colour uint8 [H, W, 3] (RGB), cam_to_world float64 [4, 4], K float64 [3, 3].
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
from PIL import Image

from stages.errors import StageError
from stages.tables import SPLITS, TableSpec, shard_path

# ScanNet depth PNGs hold uint16 millimetres (SensorData.py: depth_shift = 1000); 0 is invalid.
DEPTH_SCALE = 1000.0
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8"
JPEG_QUALITY = 95
BOUNDS = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z")


def _is_bytes_with(prefix: bytes, what: str) -> pa.Check:
    return pa.Check(
        lambda s: s.map(lambda v: isinstance(v, bytes) and v[: len(prefix)] == prefix), name=what
    )


def _finite_list_of(length: int) -> pa.Check:
    def check(s: pd.Series) -> pd.Series:
        return s.map(lambda v: v is not None and len(v) == length and bool(np.all(np.isfinite(np.asarray(v, dtype=float)))))

    return pa.Check(check, name=f"{length} finite floats")


SCENE = pa.Column(str, pa.Check.str_matches(r"^[A-Za-z0-9_.-]+$"), nullable=False)
SPLIT = pa.Column(str, pa.Check.isin(SPLITS), nullable=False)

FRAMES = TableSpec(
    name="scannet_frames",
    arrow=pyarrow.schema(
        [
            ("scene", pyarrow.string()),
            ("frame", pyarrow.int64()),
            ("keyframe", pyarrow.bool_()),
            ("cam_to_world", pyarrow.list_(pyarrow.float64())),
            ("intrinsics", pyarrow.list_(pyarrow.float64())),
            ("width", pyarrow.int32()),
            ("height", pyarrow.int32()),
            ("depth", pyarrow.binary()),
            ("color", pyarrow.binary()),
        ]
    ),
    checks=pa.DataFrameSchema(
        {
            "scene": SCENE,
            "frame": pa.Column("int64", pa.Check.ge(0)),
            "keyframe": pa.Column(bool),
            "cam_to_world": pa.Column(object, _finite_list_of(16)),
            "intrinsics": pa.Column(object, _finite_list_of(9)),
            "width": pa.Column("int32", pa.Check.ge(1)),
            "height": pa.Column("int32", pa.Check.ge(1)),
            "depth": pa.Column(object, _is_bytes_with(PNG_SIGNATURE, "PNG bytes")),
            "color": pa.Column(object, _is_bytes_with(JPEG_SIGNATURE, "JPEG bytes")),
        },
        unique=["scene", "frame"],
        strict=True,
    ),
    doc="One row per kept frame, sorted by (scene, frame). frame: the SensReader frame index "
    "(file stem); keyframe: kept by VoRTX's rule (moved > 0.1 m or optical axis turned > 15 "
    "degrees since the last keyframe); cam_to_world: 4x4 row-major camera-to-world, OpenCV "
    "camera axes, world z-up, metres; intrinsics: 3x3 row-major depth-camera K, pixels; "
    "width/height: the depth image size; depth: 16-bit grayscale PNG, millimetres, 0 = invalid; "
    "color: RGB JPEG warped to the depth camera (width x height, same K).",
)

SCANS = TableSpec(
    name="scannet_scans",
    arrow=pyarrow.schema(
        [
            ("scene", pyarrow.string()),
            ("split", pyarrow.string()),
            ("frames", pyarrow.int64()),
            ("keyframes", pyarrow.int64()),
            ("skipped_nonfinite_pose", pyarrow.int64()),
            ("skipped_empty_depth", pyarrow.int64()),
            ("skipped_unreadable", pyarrow.int64()),
            ("mesh_path", pyarrow.string()),
            *[(b, pyarrow.float64()) for b in BOUNDS],
        ]
    ),
    checks=pa.DataFrameSchema(
        {
            "scene": SCENE,
            "split": SPLIT,
            "frames": pa.Column("int64", pa.Check.ge(1)),
            "keyframes": pa.Column("int64", pa.Check.ge(1)),
            "skipped_nonfinite_pose": pa.Column("int64", pa.Check.ge(0)),
            "skipped_empty_depth": pa.Column("int64", pa.Check.ge(0)),
            "skipped_unreadable": pa.Column("int64", pa.Check.ge(0)),
            "mesh_path": pa.Column(str, pa.Check.str_length(min_value=1)),
            **{b: pa.Column("float64", pa.Check(np.isfinite, name="finite")) for b in BOUNDS},
        },
        checks=[pa.Check(lambda df: df["keyframes"] <= df["frames"], name="keyframes <= frames")],
        unique=["scene"],
        strict=True,
    ),
    doc="One row per converted scan. frames/keyframes: rows kept in FRAMES / of them keyframes; "
    "skipped_*: frames left out (a pose with a non-finite entry; a depth image with no valid "
    "pixel; a missing colour, depth or pose file, or one that does not parse); mesh_path: the scan's <scene>_vh_clean_2.ply as found (absolute); min_*/max_*: "
    "bounds of the observed space in world metres, the 0.5 % / 99.5 % quantiles per axis of the "
    "back-projected valid depth pixels of the kept frames (Atlas prepare_data.py's rule, without "
    "its 1.5 m margin: add it where a volume is allocated).",
)

SCANNET_QUARANTINE = TableSpec(
    name="scannet_quarantine",
    arrow=pyarrow.schema(
        [("scene", pyarrow.string()), ("split", pyarrow.string()), ("reason", pyarrow.string())]
    ),
    checks=pa.DataFrameSchema(
        {
            "scene": pa.Column(str),
            "split": pa.Column(str),
            "reason": pa.Column(str, pa.Check.str_length(min_value=1)),
        },
        strict=True,
    ),
    doc="One row per scan that could not be converted (listed in a split file but missing, a "
    "missing folder or mesh, unreadable files, no usable frame), with the reason.",
)


# Paths -------------------------------------------------------------------------------------


def frames_dir(out: str | os.PathLike) -> Path:
    """OUT/frames: the FRAMES table (one sub-folder per split)."""
    return Path(out) / "frames"


def frames_shard(out: str | os.PathLike, split: str, shard: int) -> Path:
    """OUT/frames/<split>/shard-NNNNN.parquet."""
    return shard_path(frames_dir(out), shard, split)


def scans_path(out: str | os.PathLike) -> Path:
    return Path(out) / "scans.parquet"


def quarantine_path(out: str | os.PathLike) -> Path:
    return Path(out) / "quarantine.parquet"


# Encoding ----------------------------------------------------------------------------------


def encode_depth(depth_m: np.ndarray) -> bytes:
    """float [H, W] metres (0 or non-finite = invalid) -> 16-bit grayscale PNG of millimetres.

    Values are rounded to the nearest millimetre; depths beyond 65.535 m are written as 0.
    """
    millimetres = np.where(np.isfinite(depth_m), depth_m, 0.0) * DEPTH_SCALE
    millimetres = np.rint(millimetres)
    millimetres[(millimetres < 0) | (millimetres > 65535)] = 0
    return encode_depth_mm(millimetres.astype(np.uint16))


def encode_depth_mm(depth_mm: np.ndarray) -> bytes:
    """uint16 [H, W] millimetres -> 16-bit grayscale PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(depth_mm, dtype=np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_color(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """uint8 [H, W, 3] RGB -> JPEG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(
        buffer, format="JPEG", quality=quality
    )
    return buffer.getvalue()


# Decoding one row --------------------------------------------------------------------------


def decode_depth_mm(png: bytes, where: str = "depth") -> np.ndarray:
    """16-bit PNG bytes -> uint16 [H, W] millimetres. Raises StageError if not a 16-bit PNG."""
    try:
        with Image.open(io.BytesIO(png)) as image:
            if image.mode not in ("I;16", "I;16B", "I"):
                raise StageError(f"{where}: depth PNG has mode {image.mode}, expected 16-bit grayscale")
            array = np.array(image)
    except (OSError, SyntaxError, ValueError) as err:
        if isinstance(err, StageError):
            raise
        raise StageError(f"{where}: unreadable depth PNG ({err})") from None
    if array.ndim != 2 or array.min(initial=0) < 0 or array.max(initial=0) > 65535:
        raise StageError(f"{where}: depth PNG is not a uint16 image")
    return array.astype(np.uint16)


def decode_depth(png: bytes, where: str = "depth") -> np.ndarray:
    """16-bit PNG bytes -> float32 [H, W] metres (0 = invalid)."""
    return (decode_depth_mm(png, where).astype(np.float32) / np.float32(DEPTH_SCALE)).astype(np.float32)


def decode_color(jpeg: bytes, where: str = "color") -> np.ndarray:
    """JPEG (or any Pillow-readable) bytes -> uint8 [H, W, 3] RGB."""
    try:
        with Image.open(io.BytesIO(jpeg)) as image:
            return np.array(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as err:
        raise StageError(f"{where}: unreadable colour image ({err})") from None


def cam_to_world(row: Mapping) -> np.ndarray:
    """float64 [4, 4] camera-to-world of a FRAMES row."""
    return np.asarray(row["cam_to_world"], dtype=np.float64).reshape(4, 4)


def intrinsics(row: Mapping) -> np.ndarray:
    """float64 [3, 3] depth-camera K (pixels) of a FRAMES row."""
    return np.asarray(row["intrinsics"], dtype=np.float64).reshape(3, 3)


@dataclass(frozen=True)
class Frame:
    """One decoded FRAMES row. depth: float32 [H, W] metres, 0 = invalid; color: uint8
    [H, W, 3] RGB in the depth camera; cam_to_world: float64 [4, 4]; K: float64 [3, 3]."""

    scene: str
    frame: int
    keyframe: bool
    depth: np.ndarray
    color: np.ndarray
    cam_to_world: np.ndarray
    K: np.ndarray


def decode_frame(row: Mapping) -> Frame:
    """Decode one FRAMES row (a dict or a pandas row) into arrays. Raises StageError when an
    image does not decode or its size differs from the row's width x height."""
    where = f"{row['scene']} frame {int(row['frame'])}"
    depth = decode_depth(row["depth"], where)
    color = decode_color(row["color"], where)
    size = (int(row["height"]), int(row["width"]))
    if depth.shape != size or color.shape[:2] != size:
        raise StageError(
            f"{where}: depth {depth.shape} / colour {color.shape[:2]} differ from {size}"
        )
    return Frame(
        scene=str(row["scene"]),
        frame=int(row["frame"]),
        keyframe=bool(row["keyframe"]),
        depth=depth,
        color=color,
        cam_to_world=cam_to_world(row),
        K=intrinsics(row),
    )
