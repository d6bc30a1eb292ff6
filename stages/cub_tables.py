"""The CUB tables written by `stages.import_cub` and read by the UMR family.

    OUT/{train,val,test}.parquet   CUB_IMAGES: one row per usable image, in annotation-file order
    OUT/quarantine.parquet         CUB_QUARANTINE: one row per image left out, with the reason

Pixel coordinates are 0-based (CMR's 1-based .mat values minus 1, as UMR data/base.py does for
the bbox and the visible keypoints); the bbox is inclusive (x2 is the last column). The SfM
translation is made 0-based too (UMR leaves it 1-based). The helpers at the bottom decode one
row's arrays.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
from PIL import Image

from stages.formats.cub import NUM_KEYPOINTS
from stages.tables import SPLITS, TableSpec

NUM_PARTS = 5  # background, head, neck, back, belly (SCOPS's channels)
PART_MAP_DTYPE = "<f2"


def _finite_list(length: int, nullable: bool = False) -> pa.Column:
    def check(s: pd.Series) -> pd.Series:
        def ok(v) -> bool:
            if v is None:
                return nullable
            a = np.asarray(v, dtype=float)
            return a.shape == (length,) and bool(np.all(np.isfinite(a)))
        return s.map(ok)

    return pa.Column(object, pa.Check(check, name=f"{length} finite floats"), nullable=nullable)


def _bytes(nullable: bool = False) -> pa.Column:
    check = pa.Check(lambda s: s.map(lambda v: isinstance(v, bytes) and len(v) > 0
                                     or (nullable and v is None)), name="non-empty bytes")
    return pa.Column(object, check, nullable=nullable)


def _mask_length(df: pd.DataFrame) -> pd.Series:
    return df["mask"].map(len) == (df["width"] * df["height"] + 7) // 8


def _part_map_length(df: pd.DataFrame) -> pd.Series:
    expected = df["part_height"] * df["part_width"] * NUM_PARTS * 2
    lengths = df["part_map"].map(lambda v: 0 if v is None else len(v))
    return lengths == expected


def _bbox_inside(df: pd.DataFrame) -> pd.Series:
    return ((df["bbox_x1"] >= 0) & (df["bbox_y1"] >= 0) & (df["bbox_x1"] <= df["bbox_x2"])
            & (df["bbox_y1"] <= df["bbox_y2"]) & (df["bbox_x2"] <= df["width"] - 1)
            & (df["bbox_y2"] <= df["height"] - 1))


CUB_IMAGES = TableSpec(
    name="cub",
    arrow=pyarrow.schema([
        ("split", pyarrow.string()),
        ("index", pyarrow.int64()),
        ("image_id", pyarrow.int64()),
        ("rel_path", pyarrow.string()),
        ("class_id", pyarrow.int64()),
        ("image", pyarrow.binary()),
        ("width", pyarrow.int64()),
        ("height", pyarrow.int64()),
        ("bbox_x1", pyarrow.float64()),
        ("bbox_y1", pyarrow.float64()),
        ("bbox_x2", pyarrow.float64()),
        ("bbox_y2", pyarrow.float64()),
        ("mask", pyarrow.binary()),
        ("keypoints", pyarrow.list_(pyarrow.float64())),
        ("sfm_scale", pyarrow.float64()),
        ("sfm_translation", pyarrow.list_(pyarrow.float64())),
        ("sfm_rotation", pyarrow.list_(pyarrow.float64())),
        ("sfm_quaternion", pyarrow.list_(pyarrow.float64())),
        ("part_map", pyarrow.binary()),
        ("part_height", pyarrow.int64()),
        ("part_width", pyarrow.int64()),
        ("part_map_path", pyarrow.string()),
    ]),
    checks=pa.DataFrameSchema(
        {
            "split": pa.Column(str, pa.Check.isin(SPLITS)),
            "index": pa.Column("int64", pa.Check.ge(0)),
            "image_id": pa.Column("int64"),
            "rel_path": pa.Column(str, pa.Check.str_length(min_value=1)),
            "class_id": pa.Column("int64"),
            "image": _bytes(),
            "width": pa.Column("int64", pa.Check.ge(1)),
            "height": pa.Column("int64", pa.Check.ge(1)),
            **{c: pa.Column("float64", pa.Check(np.isfinite, name="finite"))
               for c in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")},
            "mask": _bytes(),
            "keypoints": _finite_list(NUM_KEYPOINTS * 3),
            "sfm_scale": pa.Column("float64", nullable=True),
            "sfm_translation": _finite_list(2, nullable=True),
            "sfm_rotation": _finite_list(9, nullable=True),
            "sfm_quaternion": _finite_list(4, nullable=True),
            "part_map": _bytes(nullable=True),
            "part_height": pa.Column("int64", pa.Check.ge(0)),
            "part_width": pa.Column("int64", pa.Check.ge(0)),
            "part_map_path": pa.Column(str),
        },
        checks=[
            pa.Check(_mask_length, name="len(mask) == ceil(width * height / 8)"),
            pa.Check(_part_map_length, name="len(part_map) == part_height * part_width * 5 * 2"),
            pa.Check(_bbox_inside, name="bbox inside the image"),
        ],
        unique=["split", "index"],
        strict=True,
    ),
    doc="One row per usable CUB image. index: position in CMR's {split}_cub_cleaned.mat (UMR "
    "names part maps <stem>_<index>.npy); image_id: CUB's image id; image: the file's bytes "
    "as stored (JPEG for CUB); bbox_*: tight box, 0-based inclusive pixels; mask: bool "
    "[height, width] packed with numpy.packbits (C order, big-endian bit order); keypoints: "
    "[15, 3] row-major (x, y 0-based pixels, visible 0/1; all 0 where not visible), CUB's "
    "order (stages.synthetic.birds.KEYPOINT_NAMES); sfm_*: CMR's SfM camera, 0-based pixels "
    "= sfm_scale * (R @ S)[:2] + sfm_translation, R = sfm_rotation 3x3 row-major, "
    "sfm_quaternion (w, x, y, z) of R; null when no sfm file was given; part_map: float16 LE "
    "[part_height, part_width, 5] SCOPS part probabilities (background, head, neck, back, "
    "belly), null (sizes 0, path '') when no part maps were given.",
)

CUB_QUARANTINE = TableSpec(
    name="cub_quarantine",
    arrow=pyarrow.schema([
        ("split", pyarrow.string()),
        ("index", pyarrow.int64()),
        ("rel_path", pyarrow.string()),
        ("reason", pyarrow.string()),
    ]),
    checks=pa.DataFrameSchema(
        {
            "split": pa.Column(str, pa.Check.isin(SPLITS)),
            "index": pa.Column("int64", pa.Check.ge(0)),
            "rel_path": pa.Column(str),
            "reason": pa.Column(str, pa.Check.str_length(min_value=1)),
        },
        strict=True,
    ),
    doc="One row per annotation entry left out (missing or unreadable image, size mismatch, "
    "bbox outside the image, empty mask, bad field, missing or bad part map), with the reason; "
    "rel_path is '' when the entry has none.",
)


# ------------------------------------------------------------------------- encode / decode

def pack_mask(mask: np.ndarray) -> bytes:
    """bool/0-1 [H, W] -> numpy.packbits bytes (C order, big-endian bits)."""
    return np.packbits(np.asarray(mask, dtype=bool).ravel()).tobytes()


def decode_mask(row) -> np.ndarray:
    """The row's mask, uint8 [height, width] (0/1)."""
    h, w = int(row["height"]), int(row["width"])
    bits = np.unpackbits(np.frombuffer(row["mask"], dtype=np.uint8), count=h * w)
    return bits.reshape(h, w)


def decode_image(row) -> np.ndarray:
    """The row's image, uint8 [height, width, 3] RGB (grayscale images repeated, as base.py)."""
    with Image.open(io.BytesIO(row["image"])) as image:
        return np.asarray(image.convert("RGB"))


def decode_keypoints(row) -> np.ndarray:
    """float64 [15, 3]: x, y (0-based pixels), visible."""
    return np.asarray(row["keypoints"], dtype=np.float64).reshape(NUM_KEYPOINTS, 3)


def decode_bbox(row) -> np.ndarray:
    """float64 [4]: x1, y1, x2, y2, 0-based inclusive pixels."""
    return np.array([row["bbox_x1"], row["bbox_y1"], row["bbox_x2"], row["bbox_y2"]], dtype=float)


def decode_part_map(row) -> np.ndarray | None:
    """float32 [part_height, part_width, 5] or None."""
    if row["part_map"] is None:
        return None
    shape = (int(row["part_height"]), int(row["part_width"]), NUM_PARTS)
    return np.frombuffer(row["part_map"], dtype=PART_MAP_DTYPE).reshape(shape).astype(np.float32)


def decode_sfm(row):
    """(scale, translation [2], rotation [3, 3]) in 0-based pixels, or None."""
    scale = row["sfm_scale"]
    if scale is None or not np.isfinite(scale):
        return None
    return (float(scale), np.asarray(row["sfm_translation"], dtype=np.float64),
            np.asarray(row["sfm_rotation"], dtype=np.float64).reshape(3, 3))


def quaternion_from_rotation(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z), w >= 0, of a 3x3 rotation matrix (the convention of
    transformations.quaternion_from_matrix used by UMR base.py). Uses the largest-diagonal
    branch for numerical stability."""
    m = np.asarray(rotation, dtype=np.float64)
    t = np.trace(m)
    if t > 0:
        s = 2.0 * np.sqrt(t + 1.0)
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s,
                      (m[1, 0] - m[0, 1]) / s])
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(max(1.0 + m[i, i] - m[j, j] - m[k, k], 0.0))
        q = np.empty(4)
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q
