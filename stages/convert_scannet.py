"""Stage `convert_scannet`: scans in ScanNet's SensReader export layout (the real release or
`stages.synthesize_rooms`) -> the FRAMES, SCANS and quarantine tables of `stages.scannet_tables`.

    python -m stages.convert_scannet --root DIR --out DIR [--shard-size 8] [--no-progress]

reads ROOT/scannetv2_{train,val,test}.txt and the scans they list (train/val under ROOT/scans/,
test under ROOT/scans_test/; layout in `stages.formats.scannet`) and writes

    OUT/frames/<split>/shard-NNNNN.parquet   the scans of a split in split-file order, sorted by
                                             scene id, `--shard-size` scans a shard: shard k holds
                                             the k-th group (a shard of quarantined scans is empty)
    OUT/scans.parquet                        one row per converted scan
    OUT/quarantine.parquet                   one row per scan left out, with the reason

Per frame, as VoRTX/IOAR's tools/preprocess_scannet.py: a pose with a non-finite entry (ScanNet
writes -inf where tracking failed) is skipped; the colour image is warped into the depth camera
(K_color K_depth^-1, nearest neighbour, black outside the colour image). Added here: a depth
image without a single valid pixel is skipped; a frame missing one of its three files, with a
file that does not parse, or with a finite pose that is not a rigid transform, is skipped as
unreadable. Every skip is counted in SCANS.

Keyframes: VoRTX/IOAR utils.py remove_redundant, with the values their data.py uses: the first
kept frame is a keyframe, and a later one is if it moved more than 0.1 m, or its optical axis
turned more than 15 degrees, since the last keyframe.

A scan is quarantined (never a crash) when its folder, one of color/ depth/ pose/ intrinsic/,
an intrinsic file or its mesh is missing or unreadable, when it has no usable frame, or when a
split file lists it a second time. Exit status 1 with one line when ROOT has no split file.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from stages.cli import run
from stages.errors import StageError
from stages.formats import scannet as layout
from stages.scannet_tables import (
    BOUNDS,
    FRAMES,
    SCANNET_QUARANTINE,
    SCANS,
    decode_depth_mm,
    encode_color,
    encode_depth_mm,
    frames_shard,
    quarantine_path,
    scans_path,
)
from stages.tables import SPLITS, ShardWriter, write_shard

KEYFRAME_TRANSLATION = 0.1  # metres (VoRTX/IOAR data.py: tmin)
KEYFRAME_ROTATION_DEG = 15.0  # degrees (VoRTX/IOAR data.py: rmin_deg)
BOUNDS_QUANTILES = (0.005, 0.995)  # Atlas prepare_data.py
BOUNDS_POINTS_PER_FRAME = 1000
BATCH_ROWS = 128  # frames per row group written


# Per-frame rules ----------------------------------------------------------------------------


def is_rigid(pose: np.ndarray, tol: float = 1e-3) -> bool:
    """Whether a finite 4x4 pose is a rigid transform: rotation block orthonormal with
    determinant +1 (within tol) and last row (0, 0, 0, 1). ScanNet writes all-inf rows where
    tracking failed; an all-zero or scaled matrix is a broken file."""
    rotation = pose[:3, :3]
    return (np.allclose(rotation @ rotation.T, np.eye(3), atol=tol) and abs(np.linalg.det(rotation) - 1) < tol
            and np.allclose(pose[3], [0, 0, 0, 1], atol=tol))


def is_keyframe(last_keyframe: np.ndarray | None, pose: np.ndarray,
                max_translation: float = KEYFRAME_TRANSLATION,
                max_rotation_deg: float = KEYFRAME_ROTATION_DEG) -> bool:
    """VoRTX's keyframe test for camera-to-world `pose` [4, 4] against the last keyframe's
    (None before the first): moved > max_translation metres, or the optical axes (third
    rotation columns) at an angle whose cosine is below cos(max_rotation_deg)."""
    if last_keyframe is None:
        return True
    moved = float(np.linalg.norm(pose[:3, 3] - last_keyframe[:3, 3]))
    cos_turn = float(np.dot(pose[:3, 2], last_keyframe[:3, 2]))
    return moved > max_translation or cos_turn < np.cos(np.radians(max_rotation_deg))


def keyframe_flags(poses: np.ndarray, **thresholds) -> np.ndarray:
    """bool [N]: is_keyframe applied in order to camera-to-world poses [N, 4, 4]."""
    flags = np.zeros(len(poses), bool)
    last = None
    for i, pose in enumerate(poses):
        flags[i] = is_keyframe(last, pose, **thresholds)
        if flags[i]:
            last = pose
    return flags


def warp_color_to_depth(color: np.ndarray, K_color: np.ndarray, K_depth: np.ndarray,
                        width: int, height: int) -> np.ndarray:
    """The colour image [Hc, Wc, 3] seen through the depth camera: uint8 [height, width, 3].

    Depth pixel (u, v) takes the colour pixel nearest to K_color K_depth^-1 (u, v, 1) (pixel
    centres at integer coordinates, OpenCV's convention), black where that falls outside the
    colour image: VoRTX/IOAR tools/preprocess_scannet.py process_color_image. That code
    normalises by W/2 where grid_sample(align_corners=True) expects (W-1)/2, so it reads colour
    column x * (Wc-1)/Wc instead of x (at most one colour pixel off, at the far edge); this
    function samples the exact position.
    """
    homography = K_color @ np.linalg.inv(K_depth)
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    p = np.einsum("ij,jhw->ihw", homography, np.stack([u, v, np.ones_like(u)]))
    cols = np.floor(p[0] / p[2] + 0.5).astype(np.int64)
    rows = np.floor(p[1] / p[2] + 0.5).astype(np.int64)
    inside = (cols >= 0) & (cols < color.shape[1]) & (rows >= 0) & (rows < color.shape[0])
    out = np.zeros((height, width, 3), np.uint8)
    out[inside] = color[rows[inside], cols[inside]]
    return out


def backproject(depth_mm: np.ndarray, K: np.ndarray, cam_to_world: np.ndarray, step: int) -> np.ndarray:
    """World points (float32 [P, 3], metres) of the valid pixels on every `step`-th row and
    column of a depth image (uint16 [H, W] millimetres)."""
    rows, cols = np.nonzero(depth_mm[::step, ::step])
    rows, cols = rows * step, cols * step
    z = depth_mm[rows, cols].astype(np.float64) / 1000.0
    x = (cols - K[0, 2]) / K[0, 0] * z
    y = (rows - K[1, 2]) / K[1, 1] * z
    points = np.stack([x, y, z], axis=1) @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]
    return points.astype(np.float32)


# One scan -----------------------------------------------------------------------------------


class ScanQuarantined(StageError):
    """A scan that cannot be converted; the message is the quarantine reason."""


@dataclass
class ScanCounts:
    frames: int = 0
    keyframes: int = 0
    skipped: Counter = field(default_factory=Counter)  # nonfinite_pose, empty_depth, unreadable


def _check_scan(scan: Path) -> tuple[np.ndarray, np.ndarray]:
    """Raise ScanQuarantined for a missing folder, frame folder, intrinsic or mesh; return
    (K_color, K_depth)."""
    if not scan.is_dir():
        raise ScanQuarantined(f"scan folder missing: {scan}")
    for folder in layout.FRAME_DIRS:
        if not (scan / folder).is_dir():
            raise ScanQuarantined(f"{folder}/ folder missing in {scan}")
    mesh = layout.mesh_file(scan)
    if not mesh.is_file():
        raise ScanQuarantined(f"mesh missing: {mesh}")
    try:
        return layout.read_intrinsics(scan, "color"), layout.read_intrinsics(scan, "depth")
    except StageError as err:
        raise ScanQuarantined(str(err)) from None


def _frame_ids(scan: Path) -> tuple[list[int], int]:
    """Frame indices with all three files, and how many indices lack one of them."""
    sets = [set(layout.frame_indices(scan / kind, suffix)[0])
            for kind, suffix in (("color", ".jpg"), ("depth", ".png"), ("pose", ".txt"))]
    complete = set.intersection(*sets)
    return sorted(complete), len(set.union(*sets) - complete)


def _read_color(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as err:
        raise StageError(f"{path}: unreadable colour image ({err})") from None


def convert_scan(scan: Path, scene: str, writer: ShardWriter, batch_rows: int = BATCH_ROWS) -> dict:
    """Convert one scan folder, streaming its FRAMES rows into `writer` (frame order).

    Returns the scan's SCANS row (without `split`). Raises ScanQuarantined when the scan
    cannot be used; then no row of it has been written.
    """
    K_color, K_depth = _check_scan(scan)
    ids, incomplete = _frame_ids(scan)
    counts = ScanCounts()
    counts.skipped["unreadable"] += incomplete
    rows: list[dict] = []
    points: list[np.ndarray] = []
    size: tuple[int, int] | None = None
    last_keyframe = None
    for frame in ids:
        try:
            pose = layout.read_matrix(layout.frame_file(scan, "pose", frame))
            if not np.all(np.isfinite(pose)):
                counts.skipped["nonfinite_pose"] += 1
                continue
            if not is_rigid(pose):
                raise StageError(f"{layout.frame_file(scan, 'pose', frame)}: not a rigid camera-to-world transform")
            depth_path = layout.frame_file(scan, "depth", frame)
            depth_png = depth_path.read_bytes()
            depth_mm = decode_depth_mm(depth_png, str(depth_path))
            if size is None:
                size = depth_mm.shape
            if depth_mm.shape != size:
                raise StageError(f"{depth_path}: size {depth_mm.shape[::-1]} differs from {size[::-1]}")
            if not depth_mm.any():
                counts.skipped["empty_depth"] += 1
                continue
            color = _read_color(layout.frame_file(scan, "color", frame))
        except (StageError, OSError):
            counts.skipped["unreadable"] += 1
            continue
        keyframe = is_keyframe(last_keyframe, pose)
        if keyframe:
            last_keyframe = pose
            counts.keyframes += 1
        counts.frames += 1
        height, width = size
        warped = warp_color_to_depth(color, K_color, K_depth, width, height)
        if not depth_png.startswith(b"\x89PNG"):
            depth_png = encode_depth_mm(depth_mm)
        rows.append({
            "scene": scene, "frame": frame, "keyframe": keyframe,
            "cam_to_world": pose.ravel().tolist(), "intrinsics": K_depth.ravel().tolist(),
            "width": width, "height": height, "depth": depth_png, "color": encode_color(warped),
        })
        step = max(1, int(np.sqrt(width * height / BOUNDS_POINTS_PER_FRAME)))
        points.append(backproject(depth_mm, K_depth, pose, step))
        if len(rows) >= batch_rows:
            writer.write(_frames_frame(rows))
            rows = []
    if counts.frames == 0:
        reason = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(counts.skipped.items()) if n)
        raise ScanQuarantined(f"no usable frame in {scan} ({reason or 'no frame files'})")
    if rows:
        writer.write(_frames_frame(rows))
    cloud = np.concatenate(points)
    lo, hi = np.quantile(cloud, BOUNDS_QUANTILES, axis=0)
    return {
        "scene": scene, "frames": counts.frames, "keyframes": counts.keyframes,
        "skipped_nonfinite_pose": counts.skipped["nonfinite_pose"],
        "skipped_empty_depth": counts.skipped["empty_depth"],
        "skipped_unreadable": counts.skipped["unreadable"],
        "mesh_path": str(layout.mesh_file(scan).resolve()),
        **dict(zip(BOUNDS, [*map(float, lo), *map(float, hi)])),
    }


def _frames_frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=FRAMES.columns)
    return df.astype({"frame": "int64", "keyframe": bool, "width": "int32", "height": "int32"})


# The whole release --------------------------------------------------------------------------


def read_splits(root: Path) -> dict[str, list[str]]:
    """Scene ids per split from ROOT's split files (a missing file = an empty split). Raises
    StageError when none of the three exists."""
    files = {s: layout.split_file(root, s) for s in SPLITS}
    if not any(f.is_file() for f in files.values()):
        raise StageError(f"{root}: no split file (scannetv2_train.txt, scannetv2_val.txt, scannetv2_test.txt)")
    return {s: layout.read_split_file(f) if f.is_file() else [] for s, f in files.items()}


def unlisted_scans(root: Path, splits: dict[str, list[str]]) -> list[str]:
    """Folders under scans/ and scans_test/ that no split file lists (reported, not converted)."""
    listed = {s for scenes in splits.values() for s in scenes}
    found = set()
    for folder in set(layout.SCANS_DIR.values()):
        if (root / folder).is_dir():
            found |= {p.name for p in (root / folder).iterdir() if p.is_dir()}
    return sorted(found - listed)


def convert(root: str | Path, out: str | Path, shard_size: int = 8, progress: bool = True) -> dict:
    """Convert the release at `root` into tables under `out` (module docstring). Returns a
    summary: scans and quarantined per split, frames, keyframes, skipped counts, unlisted."""
    root, out = Path(root), Path(out)
    splits = read_splits(root)
    seen: dict[str, str] = {}
    scans_rows, quarantine_rows = [], []
    jobs = []
    for split in SPLITS:
        unique = []
        for scene in splits[split]:
            if scene in seen:
                quarantine_rows.append({"scene": scene, "split": split,
                                        "reason": f"also listed in scannetv2_{seen[scene]}.txt"})
            else:
                seen[scene] = split
                unique.append(scene)
        for shard, start in enumerate(range(0, len(unique), shard_size)):
            jobs.append((split, shard, sorted(unique[start:start + shard_size])))
    bar = tqdm(total=sum(len(j[2]) for j in jobs), desc="convert_scannet", unit="scan",
               disable=not progress, mininterval=1.0, file=sys.stderr)
    for split, shard, scenes in jobs:
        with ShardWriter(frames_shard(out, split, shard), FRAMES) as writer:
            for scene in scenes:
                try:
                    row = convert_scan(layout.scan_dir(root, split, scene), scene, writer)
                    scans_rows.append({"split": split, **row})
                except ScanQuarantined as err:
                    quarantine_rows.append({"scene": scene, "split": split, "reason": str(err)})
                bar.update(1)
    bar.close()
    scans_df = pd.DataFrame(scans_rows, columns=SCANS.columns)
    write_shard(scans_df.astype({c: "int64" for c in SCANS.columns if c.startswith(("frames", "keyframes", "skipped"))}),
                scans_path(out), SCANS)
    write_shard(pd.DataFrame(quarantine_rows, columns=SCANNET_QUARANTINE.columns), quarantine_path(out),
                SCANNET_QUARANTINE)
    return {
        "scans": Counter(r["split"] for r in scans_rows),
        "quarantined": Counter(r["split"] for r in quarantine_rows),
        "frames": int(scans_df["frames"].sum()) if len(scans_df) else 0,
        "keyframes": int(scans_df["keyframes"].sum()) if len(scans_df) else 0,
        **{c: int(scans_df[c].sum()) if len(scans_df) else 0 for c in SCANS.columns if c.startswith("skipped")},
        "unlisted": unlisted_scans(root, splits),
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.convert_scannet", description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, type=Path, help="release root (split files, scans/, scans_test/)")
    p.add_argument("--out", required=True, type=Path, help="output folder of the tables")
    p.add_argument("--shard-size", type=int, default=8, help="scans per frames shard")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.shard_size < 1:
        raise SystemExit(f"--shard-size must be at least 1, got {args.shard_size}")
    if not args.root.is_dir():
        raise StageError(f"{args.root}: not a directory")
    start = time.perf_counter()
    summary = convert(args.root, args.out, args.shard_size, progress=not args.no_progress)
    per_split = ", ".join(f"{s} {summary['scans'][s]}" for s in SPLITS)
    skipped = ", ".join(f"{summary[k]} {k.removeprefix('skipped_').replace('_', ' ')}"
                        for k in summary if k.startswith("skipped"))
    print(f"convert_scannet: {sum(summary['scans'].values())} scans ({per_split}), "
          f"{sum(summary['quarantined'].values())} quarantined, {summary['frames']} frames "
          f"({summary['keyframes']} keyframes), skipped frames: {skipped}; "
          f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    if summary["unlisted"]:
        print(f"convert_scannet: {len(summary['unlisted'])} scan folders listed in no split file, "
              f"not converted: {', '.join(summary['unlisted'][:5])}"
              f"{' ...' if len(summary['unlisted']) > 5 else ''}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run(main)
