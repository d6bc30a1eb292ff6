"""Benchmark: our TSDF fusion (stages.tsdf.fusion) against Open3D's TSDF integration.

    python benchmarks/tsdf_fusion.py [--frames N] [--size 640x480] [--voxel-size 0.04]
        [--threads 1] [--device cpu] [--scannet CONVERTED --split test --scene scene0707_00]

Default input: a synthetic box room (4 x 3 x 2.5 m, with a table-sized box inside), N depth frames
of 640 x 480 rendered with our rasteriser from a camera circling the room. With --scannet, the
frames of one scene of a FRAMES table instead. Both fusers get the same frames (depth cut at
3 m), voxel size and truncation (3 voxels); Open3D's UniformTSDFVolume (no colour; a cube from
our origin) integrates them. Prints frames per second of each, their ratio, and the agreement of the two
marching-cubes meshes (F-score at 2 cm and Chamfer distance over 100k seeded surface samples),
plus each mesh against the room's true surface for the synthetic set. Open3D is optional:
without it the Open3D rows say "skipped: open3d not installed".
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.scene_metrics.mesh import point_metrics  # noqa: E402
from stages.scene_metrics.render import render_depth  # noqa: E402
from stages.tsdf.fusion import (  # noqa: E402
    MAX_DEPTH,
    TRUNCATION_VOXELS,
    TSDFVolume,
    depth_point_bounds,
    grid_for_bounds,
    valid_depth,
)
from stages.tsdf.meshing import tsdf_to_mesh  # noqa: E402

SAMPLES = 100_000


def box_room() -> trimesh.Trimesh:
    """The room's surface: the inside of a 4 x 3 x 2.5 m box plus a 1 x 0.6 x 0.75 m block."""
    room = trimesh.creation.box(extents=(4.0, 3.0, 2.5))
    room.apply_translation((0.0, 0.0, 1.25))
    block = trimesh.creation.box(extents=(1.0, 0.6, 0.75))
    block.apply_translation((0.8, -0.5, 0.375))
    return trimesh.util.concatenate([room, block]).subdivide().subdivide()


def look(position, target) -> np.ndarray:
    """cam_to_world [4, 4] with OpenCV axes (x right, y down, z forward), world z-up."""
    forward = np.asarray(target, float) - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, (0.0, 0.0, 1.0))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, forward], axis=1)
    pose[:3, 3] = position
    return pose


def synthetic_frames(count: int, width: int, height: int):
    room = box_room()
    K = np.array([[0.9 * width, 0, (width - 1) / 2], [0, 0.9 * width, (height - 1) / 2], [0, 0, 1.0]])
    frames = []
    for n in range(count):
        angle = 2 * np.pi * n / count
        position = np.array([0.6 * np.cos(angle), 0.4 * np.sin(angle), 1.5])
        target = position + np.array([np.cos(angle + 1.0), np.sin(angle + 1.0), -0.35])
        pose = look(position, target)
        frames.append((render_depth(room, K, pose, width, height).astype(np.float32), K, pose))
    return frames, room


def scannet_frames(converted: Path, split: str, scene: str):
    import pyarrow.dataset as ds

    from stages.fuse_tsdf import scene_frames
    from stages.scannet_tables import frames_dir
    from stages.tables import shard_files

    dataset = ds.dataset([str(p) for p in shard_files(frames_dir(converted) / split)], format="parquet")
    return list(scene_frames(dataset, scene, str(converted))), None


def fuse_ours(frames, grid, device):
    dtype = torch.float64 if torch.device(device).type == "cpu" else torch.float32
    volume = TSDFVolume(grid, device=device, dtype=dtype)
    volume.integrate(*frames[0])  # warm-up (excluded from timing), then a fresh volume
    volume = TSDFVolume(grid, device=device, dtype=dtype)
    start = time.perf_counter()
    for frame in frames:
        volume.integrate(*frame)
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tsdf, weight = volume.arrays()
    return seconds, tsdf_to_mesh(tsdf, weight, grid)


def fuse_open3d(o3d, frames, grid):
    # UniformTSDFVolume is a cube: the smallest one holding our grid, from the same origin (its
    # voxel centres sit half a voxel off ours). ScalableTSDFVolume allocated no block at all in
    # open3d-cpu 0.20.0 here (0 faces even for a single fronto-parallel frame), so it is not used.
    side = max(grid.dims)
    volume = o3d.pipelines.integration.UniformTSDFVolume(
        length=side * grid.voxel_size,
        resolution=side,
        sdf_trunc=TRUNCATION_VOXELS * grid.voxel_size,
        color_type=o3d.pipelines.integration.TSDFVolumeColorType.NoColor,
        origin=np.asarray(grid.origin, dtype=np.float64).reshape(3, 1),
    )
    images = []
    for depth, K, pose in frames:
        h, w = depth.shape
        color = o3d.geometry.Image(np.zeros((h, w, 3), np.uint8))
        rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
            color, o3d.geometry.Image(depth), depth_scale=1.0, depth_trunc=MAX_DEPTH,
            convert_rgb_to_intensity=False)
        intrinsic = o3d.camera.PinholeCameraIntrinsic(w, h, K[0, 0], K[1, 1], K[0, 2], K[1, 2])
        images.append((rgbd, intrinsic, np.linalg.inv(pose)))
    start = time.perf_counter()
    for rgbd, intrinsic, extrinsic in images:
        volume.integrate(rgbd, intrinsic, extrinsic)
    seconds = time.perf_counter() - start
    mesh = volume.extract_triangle_mesh()
    return seconds, trimesh.Trimesh(np.asarray(mesh.vertices), np.asarray(mesh.triangles), process=False)


def agreement(a: trimesh.Trimesh, b: trimesh.Trimesh) -> dict[str, float]:
    """F-score at 2 cm and Chamfer distance between two meshes (100k seeded samples each)."""
    pa, _ = trimesh.sample.sample_surface(a, SAMPLES, seed=1)
    pb, _ = trimesh.sample.sample_surface(b, SAMPLES, seed=2)
    return point_metrics(pa, pb, threshold=0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--voxel-size", type=float, default=0.04)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--scannet", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--scene")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))

    if args.scannet is not None:
        frames, truth = scannet_frames(args.scannet, args.split, args.scene)
        source = f"{args.scene}: {len(frames)} frames"
    else:
        frames, truth = synthetic_frames(args.frames, width, height)
        source = f"synthetic box room: {len(frames)} frames {width}x{height}"
    frames = [(valid_depth(d), K, T) for d, K, T in frames]
    bounds = depth_point_bounds(frames)
    grid = grid_for_bounds(*bounds, args.voxel_size, TRUNCATION_VOXELS * args.voxel_size, 4 * args.voxel_size)
    print(f"{source}; voxel {args.voxel_size} m, grid {grid.dims} ({np.prod(grid.dims):,} voxels), "
          f"{args.threads} thread(s), device {args.device}")

    ours_s, ours_mesh = fuse_ours(frames, grid, args.device)
    rows = [("ours (stages.tsdf.fusion)", len(frames) / ours_s, ours_mesh)]
    try:
        import open3d as o3d
    except ImportError as err:
        o3d = None
        missing = getattr(err, "name", None) == "open3d"
        print("open3d: skipped: " + ("open3d not installed" if missing else f"open3d not importable ({err})"))
    if o3d is not None:
        o3d_s, o3d_mesh = fuse_open3d(o3d, frames, grid)
        rows.append((f"open3d {o3d.__version__} UniformTSDFVolume {max(grid.dims)}^3", len(frames) / o3d_s, o3d_mesh))

    print(f"{'fuser':<40} {'frames/s':>9} {'faces':>8}" + ("  F@5cm vs truth" if truth is not None else ""))
    for name, fps, mesh in rows:
        line = f"{name:<40} {fps:9.1f} {len(mesh.faces):8d}"
        if truth is not None:
            to_truth = point_metrics(trimesh.sample.sample_surface(mesh, SAMPLES, seed=1)[0],
                                     trimesh.sample.sample_surface(truth, SAMPLES, seed=2)[0], threshold=0.05)
            line += f"  {to_truth['fscore']:.4f} (P {to_truth['prec']:.4f}, R {to_truth['recall']:.4f})"
        print(line)
    if len(rows) == 2:
        m = agreement(rows[0][2], rows[1][2])
        print(f"speed ratio ours / open3d: {rows[0][1] / rows[1][1]:.2f}")
        print(f"mesh agreement ours vs open3d: F-score@2cm {m['fscore']:.4f} (precision {m['prec']:.4f}, "
              f"recall {m['recall']:.4f}), Chamfer {m['chamfer'] * 1000:.2f} mm")


if __name__ == "__main__":
    main()
