"""CMR's CUB-200-2011 annotation cache (.mat) and SCOPS part-map file names.

Files (akanazawa/cmr data/cub.py, preprocess/cub/cub_sfm.m, split_cub.m; NVlabs/UMR data/cub.py):

    <cache>/data/{split}_cub_cleaned.mat   variable `images`: struct array with fields id (int32,
        CUB's image id), rel_path (char, under CUB_200_2011/images), train, test (logical), bbox
        (struct x1, y1, x2, y2), width, height (double), parts (double 3x15: x, y, visible;
        0 0 0 where not visible), mask (logical H x W), class_id (int32)
    <cache>/sfm/anno_{split}.mat           variable `sfm_anno`: struct array (rot 3x3, scale,
        trans 2) aligned with `images`; `S` (3x15 mean keypoint shape) and `conv_tri` (1-based
        triangles over S) in the train file (split_cub.m keeps only sfm_anno for val and test)

Pixel coordinates in bbox and parts are 1-based (MATLAB); UMR data/base.py subtracts 1 from the
bbox and from visible keypoints, but not from the SfM translation. Both files are read the way
the original loaders read them: ``scipy.io.loadmat(path, struct_as_record=False,
squeeze_me=True)`` (a split of one image then comes back as a single struct, not an array).

SCOPS part maps (float [256, 256, 5]: background, head, neck, back, belly, in the padded square
crop frame) are named ``<class>/<stem>.npy`` by NVlabs/SCOPS evaluate_cub.py, while UMR
data/base.py reads ``<class>/<stem>_<index>.npy``, index being the image's position in its split
file; ``part_map_candidates`` gives both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np
import scipy.io

from stages.atomic import atomic_write
from stages.errors import StageError, quote

NUM_KEYPOINTS = 15
IMAGE_FIELDS = ("id", "rel_path", "train", "test", "bbox", "width", "height", "parts", "mask",
                "class_id")
SFM_FIELDS = ("rot", "scale", "trans")


def annotation_path(cache_dir: str | os.PathLike, split: str) -> Path:
    return Path(cache_dir) / "data" / f"{split}_cub_cleaned.mat"


def sfm_path(cache_dir: str | os.PathLike, split: str) -> Path:
    return Path(cache_dir) / "sfm" / f"anno_{split}.mat"


@dataclass(frozen=True)
class CubAnnotation:
    """One entry of `images`, as stored (1-based pixels).

    bbox: float64 [4] (x1, y1, x2, y2), inclusive; parts: float64 [3, 15] (x, y, visible);
    mask: uint8 [H, W] (0/1); width, height: pixels.
    """

    image_id: int
    rel_path: str
    bbox: np.ndarray
    parts: np.ndarray
    mask: np.ndarray
    width: int
    height: int
    class_id: int
    train: bool
    test: bool


@dataclass(frozen=True)
class SfmEntry:
    """One entry of `sfm_anno`: keypoints (1-based pixels) ~ scale * (rot @ S)[:2] + trans."""

    rotation: np.ndarray  # [3, 3]
    scale: float
    translation: np.ndarray  # [2]


# ------------------------------------------------------------------------------------- read

def _load(path: Path, variable: str):
    try:
        data = scipy.io.loadmat(path, struct_as_record=False, squeeze_me=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # scipy raises ValueError, TypeError, MatReadError... on bad files
        raise StageError(f"{path}: not a readable .mat file ({type(err).__name__}: "
                         f"{quote(str(err))})") from None
    if variable not in data:
        found = sorted(k for k in data if not k.startswith("__"))
        raise StageError(f"{path}: no variable {variable!r} (found {found})")
    return data


def _entries(value, path: Path, variable: str) -> list:
    entries = list(np.atleast_1d(np.asarray(value, dtype=object)).ravel())
    for i, e in enumerate(entries):
        if not hasattr(e, "_fieldnames"):
            raise StageError(f"{path}: {variable}[{i}] is not a struct ({quote(e)})")
    return entries


def load_images(path: str | os.PathLike) -> list:
    """The raw `images` structs of a {split}_cub_cleaned.mat, in file order (parse each with
    `parse_annotation`). Raises StageError when the file or the variable is unusable,
    FileNotFoundError when it is missing."""
    path = Path(path)
    return _entries(_load(path, "images")["images"], path, "images")


def load_sfm(path: str | os.PathLike) -> tuple[list, np.ndarray | None, np.ndarray | None]:
    """(raw `sfm_anno` structs, S float64 [3, 15] or None, conv_tri float64 [T, 3] or None)."""
    path = Path(path)
    data = _load(path, "sfm_anno")
    shape = data.get("S")
    tri = data.get("conv_tri")
    return (_entries(data["sfm_anno"], path, "sfm_anno"),
            None if shape is None else np.asarray(shape, dtype=np.float64),
            None if tri is None else np.asarray(tri, dtype=np.float64))


def _field(entry, name: str):
    if name not in entry._fieldnames:
        raise StageError(f"no field {name!r}")
    return getattr(entry, name)


def _scalar(entry, name: str) -> float:
    value = np.asarray(_field(entry, name))
    if value.size != 1 or not (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
        raise StageError(f"field {name!r} is not a number ({quote(value)})")
    number = float(value.reshape(()))
    if not np.isfinite(number):
        raise StageError(f"field {name!r} is not finite")
    return number


def _integer(entry, name: str) -> int:
    number = _scalar(entry, name)
    if number != int(number):
        raise StageError(f"field {name!r} is not an integer ({number})")
    return int(number)


def parse_annotation(entry) -> CubAnnotation:
    """Check and convert one `images` struct. Raises StageError (a message without the file
    name) for a missing field, a wrong shape or a non-finite number; sizes are not compared
    with the image here (the importer does that)."""
    rel_path = _field(entry, "rel_path")
    if not isinstance(rel_path, str) or not rel_path:
        raise StageError(f"field 'rel_path' is not a path ({quote(rel_path)})")
    bbox_struct = _field(entry, "bbox")
    if not hasattr(bbox_struct, "_fieldnames"):
        raise StageError(f"field 'bbox' is not a struct ({quote(bbox_struct)})")
    bbox = np.array([_scalar(bbox_struct, k) for k in ("x1", "y1", "x2", "y2")])
    raw_parts = np.asarray(_field(entry, "parts"))
    if raw_parts.shape != (3, NUM_KEYPOINTS) or not np.issubdtype(raw_parts.dtype, np.number):
        raise StageError(f"field 'parts' has shape {raw_parts.shape} ({raw_parts.dtype}), "
                         f"expected (3, {NUM_KEYPOINTS}) numbers")
    parts = raw_parts.astype(np.float64)
    if not np.all(np.isfinite(parts)):
        raise StageError("field 'parts' is not finite")
    mask = np.asarray(_field(entry, "mask"))
    if mask.ndim != 2 or not (np.issubdtype(mask.dtype, np.number) or mask.dtype == bool):
        raise StageError(f"field 'mask' is not a 2-D array (shape {mask.shape})")
    return CubAnnotation(
        image_id=_integer(entry, "id"),
        rel_path=rel_path,
        bbox=bbox,
        parts=parts,
        mask=(mask > 0).astype(np.uint8),
        width=_integer(entry, "width"),
        height=_integer(entry, "height"),
        class_id=_integer(entry, "class_id"),
        train=bool(_scalar(entry, "train")),
        test=bool(_scalar(entry, "test")),
    )


def parse_sfm(entry) -> SfmEntry:
    """Check and convert one `sfm_anno` struct; raises StageError like `parse_annotation`."""
    rot = np.asarray(_field(entry, "rot"), dtype=np.float64)
    trans = np.asarray(_field(entry, "trans"), dtype=np.float64).ravel()
    if rot.shape != (3, 3) or trans.shape != (2,):
        raise StageError(f"sfm rot/trans have shapes {rot.shape}/{trans.shape}, expected (3, 3)/(2,)")
    scale = _scalar(entry, "scale")
    if not (np.all(np.isfinite(rot)) and np.all(np.isfinite(trans))):
        raise StageError("sfm rot/trans are not finite")
    return SfmEntry(rot, scale, trans)


def part_map_candidates(parts_dir: str | os.PathLike, rel_path: str, index: int) -> tuple[Path, Path]:
    """(UMR's name <class>/<stem>_<index>.npy, SCOPS's name <class>/<stem>.npy) under parts_dir."""
    rel = PurePosixPath(rel_path)
    folder = Path(parts_dir) / rel.parent.name
    stem = rel.name.split(".")[0]  # base.py: tmp[-1].split(".")[0]
    return folder / f"{stem}_{int(index)}.npy", folder / f"{stem}.npy"


# ------------------------------------------------------------------------------------ write

def _struct_array(records: Sequence[dict], fields: Sequence[str]) -> np.ndarray:
    array = np.empty((1, len(records)), dtype=[(f, object) for f in fields])
    for i, record in enumerate(records):
        for f in fields:
            array[0, i][f] = record[f]
    return array


def write_annotations(path: str | os.PathLike, annotations: Sequence[CubAnnotation]) -> Path:
    """Write `images` as CMR's {split}_cub_cleaned.mat (MATLAB 5, compressed), atomically, with
    the classes of the real files (int32 ids and bbox, double sizes and parts, logical flags
    and mask; scipy writes logical as uint8)."""
    records = [{
        "id": np.int32(a.image_id),
        "rel_path": a.rel_path,
        "train": np.uint8(a.train),
        "test": np.uint8(a.test),
        "bbox": {k: np.int32(v) for k, v in zip(("x1", "y1", "x2", "y2"), a.bbox)},
        "width": float(a.width),
        "height": float(a.height),
        "parts": np.asarray(a.parts, dtype=np.float64),
        "mask": np.asarray(a.mask, dtype=np.uint8),
        "class_id": np.int32(a.class_id),
    } for a in annotations]
    images = _struct_array(records, IMAGE_FIELDS)
    return atomic_write(path, lambda tmp: _savemat(tmp, {"images": images}))


def write_sfm(path: str | os.PathLike, entries: Sequence[SfmEntry], shape: np.ndarray,
              conv_tri: np.ndarray) -> Path:
    """Write `sfm_anno`, `S` [3, 15] and `conv_tri` [T, 3] (1-based) as CMR's anno_{split}.mat."""
    records = [{"rot": np.asarray(e.rotation, dtype=np.float64), "scale": float(e.scale),
                "trans": np.asarray(e.translation, dtype=np.float64).reshape(2, 1)}
               for e in entries]
    payload = {"sfm_anno": _struct_array(records, SFM_FIELDS),
               "S": np.asarray(shape, dtype=np.float64),
               "conv_tri": np.asarray(conv_tri, dtype=np.float64)}
    return atomic_write(path, lambda tmp: _savemat(tmp, payload))


def _savemat(path: Path, payload: dict) -> None:
    with open(path, "wb") as handle:
        scipy.io.savemat(handle, payload, do_compression=True, oned_as="column")
