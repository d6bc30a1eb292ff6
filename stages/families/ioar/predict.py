"""IOAR prediction from a posed video in ScanNet's SensReader layout:

    python -m stages.predict --model results/models/ioar/model.pt --scan scans/scene0000_00 --out room.ply

The folder holds color/<i>.jpg, depth/<i>.png, pose/<i>.txt and intrinsic/ (stages.formats.scannet);
frames are read as stages.convert_scannet reads them (non-finite poses skipped, colour warped into
the depth camera, VoRTX's keyframes). The network sees only the colour images and poses; the
depth images give the image size and the bounds of the volume reconstructed (the 0.5 / 99.5 %
quantiles of the back-projected depth points, as the SCANS table's bounds, widened by --margin).
The mesh is in the scan's world frame, metres.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ...convert_scannet import BOUNDS_POINTS_PER_FRAME, BOUNDS_QUANTILES, backproject, keyframe_flags, warp_color_to_depth
from ...errors import StageError
from ...formats import scannet as layout
from ...scannet_tables import decode_depth_mm, encode_color
from ...tsdf.fusion import grid_for_bounds
from ..base import Prediction
from .data import ScanFrames
from .inference import reconstruct_mesh


def add_arguments(parser) -> None:
    parser.add_argument("--scan", required=True, type=Path, help="a scan folder in ScanNet's SensReader layout")
    parser.add_argument("--margin", type=float, default=0.2, help="metres added around the depth points' bounds")


def read_scan(scan: Path) -> tuple[ScanFrames, np.ndarray, np.ndarray]:
    """(keyframes, lower (3,), upper (3,) bounds in world metres) of a scan folder; StageError
    naming the file for a missing folder, an unreadable file or a scan without a usable frame."""
    if not scan.is_dir():
        raise StageError(f"{scan}: not a directory")
    for folder in layout.FRAME_DIRS:
        if not (scan / folder).is_dir():
            raise StageError(f"{scan}: {folder}/ folder missing (ScanNet SensReader layout)")
    K_color, K_depth = layout.read_intrinsics(scan, "color"), layout.read_intrinsics(scan, "depth")
    ids = sorted(set.intersection(*[set(layout.frame_indices(scan / kind, suffix)[0])
                                    for kind, suffix in (("color", ".jpg"), ("depth", ".png"), ("pose", ".txt"))]))
    poses, colors, numbers, points, size = [], [], [], [], None
    for frame in ids:
        pose = layout.read_matrix(layout.frame_file(scan, "pose", frame))
        if not np.all(np.isfinite(pose)):
            continue
        depth_path = layout.frame_file(scan, "depth", frame)
        depth = decode_depth_mm(depth_path.read_bytes(), str(depth_path))
        if size is None:
            size = depth.shape
        if depth.shape != size:
            raise StageError(f"{depth_path}: size {depth.shape[::-1]} differs from {size[::-1]}")
        color_path = layout.frame_file(scan, "color", frame)
        try:
            with Image.open(color_path) as image:
                color = np.array(image.convert("RGB"))
        except (OSError, SyntaxError, ValueError) as err:
            raise StageError(f"{color_path}: unreadable colour image ({err})") from None
        height, width = size
        colors.append(encode_color(warp_color_to_depth(color, K_color, K_depth, width, height)))
        poses.append(pose)
        numbers.append(frame)
        step = max(1, int(np.sqrt(width * height / BOUNDS_POINTS_PER_FRAME)))
        points.append(backproject(depth, K_depth, pose, step))
    cloud = np.concatenate(points) if points else np.zeros((0, 3))
    if not poses or len(cloud) == 0:
        raise StageError(f"{scan}: no frame with a finite pose and valid depth")
    poses = np.stack(poses)
    keep = np.flatnonzero(keyframe_flags(poses))
    lo, hi = np.quantile(cloud, BOUNDS_QUANTILES, axis=0)
    frames = ScanFrames(frames=np.asarray(numbers)[keep], K=np.repeat(K_depth[None, :3, :3], len(keep), 0),
                        poses=poses[keep], colors=[colors[i] for i in keep], width=size[1], height=size[0])
    return frames, lo, hi


def predict(spec, model, args, device) -> Prediction:
    """The mesh of the scan's reconstruction on the model's fine lattice over the scan's bounds."""
    if args.margin < 0:
        raise StageError(f"--margin must be >= 0, got {args.margin}")
    frames, lo, hi = read_scan(Path(args.scan))
    coarse, _, fine = spec.network.voxel_sizes
    grid = grid_for_bounds(lo, hi, fine, args.margin, coarse)
    mesh = reconstruct_mesh(model, spec.network, frames, grid, spec.eval.tile, spec.eval.views, device,
                            Path(args.scan).name)
    note = (f"{Path(args.scan).name}: {len(frames.poses)} keyframes, volume {grid.dims} voxels of "
            f"{fine} m from {np.round(grid.origin, 3).tolist()}")
    return Prediction(mesh, [note])
