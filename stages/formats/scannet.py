"""ScanNet's SensReader export layout: paths, the 4x4 matrix text files, split files.

The layout of a ScanNet v2 release after `SensReader/python/reader.py` has exported every scan
(ScanNet/ScanNet SensReader/python/SensorData.py: export_color_images, export_depth_images,
export_poses, export_intrinsics), which is what VoRTX/IOAR's tools/preprocess_scannet.py reads:

    ROOT/scannetv2_train.txt, scannetv2_val.txt, scannetv2_test.txt   one scan id a line
    ROOT/scans/<scene>/            train and val scans
    ROOT/scans_test/<scene>/       test scans
        color/<i>.jpg              colour, 1296x968 in the real data
        depth/<i>.png              uint16 millimetres, 640x480 in the real data, 0 = invalid
        pose/<i>.txt               4x4 camera-to-world (OpenCV camera axes, world z-up, metres);
                                   every entry is -inf where tracking failed
        intrinsic/intrinsic_color.txt, intrinsic_depth.txt, extrinsic_color.txt,
                  extrinsic_depth.txt                4x4 each
        <scene>_vh_clean_2.ply     the reconstructed mesh (vertex colours)

`<i>` is the frame index without zero padding. SensorData.save_mat_to_file writes a matrix one
row a line, each value with '%f' (six decimals) separated by single spaces.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from stages.atomic import write_text
from stages.errors import StageError, quote
from stages.tables import SPLITS

SCANS_DIR = {"train": "scans", "val": "scans", "test": "scans_test"}
FRAME_DIRS = ("color", "depth", "pose", "intrinsic")
INTRINSIC_FILES = ("intrinsic_color.txt", "intrinsic_depth.txt", "extrinsic_color.txt", "extrinsic_depth.txt")
# Real ScanNet v2 scan ids: scene0000_00 .. scene0806_00 (sceneXXXX_YY, YY the rescan).
REAL_SCENE_ID = re.compile(r"^scene\d{4}_\d{2}$")
# Our synthetic rooms: same shape, another prefix, so the two can never collide.
SYNTHETIC_SCENE_ID = re.compile(r"^synth\d{4}_\d{2}$")


def split_file(root: str | os.PathLike, split: str) -> Path:
    """ROOT/scannetv2_<split>.txt."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return Path(root) / f"scannetv2_{split}.txt"


def scan_dir(root: str | os.PathLike, split: str, scene: str) -> Path:
    """ROOT/scans/<scene> for train and val, ROOT/scans_test/<scene> for test."""
    return Path(root) / SCANS_DIR[split] / scene


def mesh_file(scan: str | os.PathLike) -> Path:
    """<scan>/<scene>_vh_clean_2.ply."""
    scan = Path(scan)
    return scan / f"{scan.name}_vh_clean_2.ply"


def frame_file(scan: str | os.PathLike, kind: str, frame: int) -> Path:
    """<scan>/color/<i>.jpg, depth/<i>.png or pose/<i>.txt."""
    suffix = {"color": ".jpg", "depth": ".png", "pose": ".txt"}[kind]
    return Path(scan) / kind / f"{int(frame)}{suffix}"


def format_matrix(matrix: np.ndarray) -> str:
    """A matrix as SensorData.save_mat_to_file writes it: one row a line, '%f' values."""
    matrix = np.atleast_2d(np.asarray(matrix, dtype=np.float64))
    return "".join(" ".join(f"{v:f}" for v in row) + "\n" for row in matrix)


def write_matrix(path: str | os.PathLike, matrix: np.ndarray) -> Path:
    """Write a 4x4 matrix file atomically (format_matrix)."""
    return write_text(path, format_matrix(matrix))


def parse_matrix(text: str, where: str, shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    """float64 `shape` from a matrix text file; any whitespace, blank lines and CRLF accepted;
    'inf', '-inf' and 'nan' parse (ScanNet marks lost poses with -inf). Raises StageError naming
    `where` when a token is not a number or the count is wrong."""
    tokens = text.split()
    try:
        values = np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        raise StageError(f"{where}: not a number: {quote(bad)}") from None
    if values.size != shape[0] * shape[1]:
        raise StageError(f"{where}: expected {shape[0]}x{shape[1]} numbers, found {values.size}")
    return values.reshape(shape)


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def read_matrix(path: str | os.PathLike, shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    """float64 `shape` read from a matrix text file (see parse_matrix). Raises StageError for a
    file that is unreadable, not UTF-8 text, or not `shape` numbers."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise StageError(f"{path}: not a text file") from None
    except OSError as err:
        raise StageError(f"{path}: {err.strerror or type(err).__name__}") from None
    return parse_matrix(text, str(path), shape)


def read_intrinsics(scan: str | os.PathLike, camera: str) -> np.ndarray:
    """The 3x3 K (pixels) of `camera` ('color' or 'depth') from intrinsic/intrinsic_<camera>.txt
    (a 4x4 file whose top-left 3x3 is K). Raises StageError when the file is missing or K is not
    a pinhole matrix with positive focal lengths."""
    path = Path(scan) / "intrinsic" / f"intrinsic_{camera}.txt"
    K = read_matrix(path)[:3, :3]
    if not (np.all(np.isfinite(K)) and K[0, 0] > 0 and K[1, 1] > 0 and np.array_equal(K[2], [0.0, 0.0, 1.0])):
        raise StageError(f"{path}: not a pinhole intrinsic matrix: {quote(K.tolist())}")
    return K


def write_intrinsics(scan: str | os.PathLike, K_color: np.ndarray, K_depth: np.ndarray) -> None:
    """intrinsic/ as SensReader exports it: intrinsic_{color,depth}.txt hold K in a 4x4, the
    extrinsic files the identity (colour and depth share the pose)."""
    folder = Path(scan) / "intrinsic"
    for name, K in (("intrinsic_color.txt", K_color), ("intrinsic_depth.txt", K_depth)):
        matrix = np.eye(4)
        matrix[:3, :3] = K
        write_matrix(folder / name, matrix)
    for name in ("extrinsic_color.txt", "extrinsic_depth.txt"):
        write_matrix(folder / name, np.eye(4))


def read_split_file(path: str | os.PathLike) -> list[str]:
    """Scan ids of one split file, in file order, duplicates dropped. Raises StageError when an
    entry has characters a scan folder name cannot have."""
    path = Path(path)
    try:
        names = path.read_text(encoding="utf-8").split()
    except UnicodeDecodeError:
        raise StageError(f"{path}: not a text file") from None
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
            raise StageError(f"{path}: not a scan id: {quote(name)}")
    return list(dict.fromkeys(names))


def write_split_file(root: str | os.PathLike, split: str, scenes: list[str]) -> Path:
    """ROOT/scannetv2_<split>.txt, one id a line (the real files end with a newline)."""
    return write_text(split_file(root, split), "".join(f"{s}\n" for s in scenes))


def frame_indices(folder: str | os.PathLike, suffix: str) -> tuple[list[int], list[str]]:
    """Sorted frame indices of the `<i><suffix>` files in `folder`, and the names of the other
    entries (another suffix, or a stem that is not a non-negative integer written without
    leading zeros as SensorData.py writes it), sorted."""
    indices, others = [], []
    for entry in os.scandir(folder):
        stem, dot, ext = entry.name.rpartition(".")
        if dot and "." + ext == suffix and stem.isascii() and stem.isdigit() and stem == str(int(stem)):
            indices.append(int(stem))
        else:
            others.append(entry.name)
    return sorted(indices), sorted(others)
