"""Stage `synthesize_rooms`: furnished synthetic rooms scanned by a hand-held RGB-D camera,
written in ScanNet's SensReader export layout so that `stages.convert_scannet` reads them as it
reads the real release.

    python -m stages.synthesize_rooms --out DIR --scenes-train N --scenes-val N --scenes-test N \\
        [--frames 40] [--width 160] [--height 120] [--color-scale 2] [--seed 0]

writes (layout: `stages.formats.scannet`)

    DIR/scannetv2_{train,val,test}.txt
    DIR/scans/synthXXXX_00/       train and val rooms;  DIR/scans_test/synthXXXX_00/  test rooms
        color/<i>.jpg             colour camera, (color-scale x width) x (color-scale x height)
        depth/<i>.png             uint16 millimetres, width x height, 0 where no surface
        pose/<i>.txt              4x4 camera-to-world, OpenCV axes, world z-up, '%f' values
        intrinsic/intrinsic_{color,depth}.txt, extrinsic_{color,depth}.txt   4x4
        synthXXXX_00_vh_clean_2.ply   the room mesh (binary PLY, vertex colours)

Real ScanNet ids are sceneXXXX_YY; ours are synthXXXX_00, numbered over train, val, test in that
order, so the two never collide. Room k depends only on (seed, k): the same seed gives the same
files, and adding scenes to a split leaves the rooms before it unchanged.

Cameras. Like ScanNet's (colour 1296x968, fx 1170; depth 640x480, fx 577), colour and depth
have different sizes and intrinsics: depth K has fx = fy = 0.9025 * width (ScanNet's 577.6 /
640) and its principal point at the image centre; the colour camera is `color-scale` times
larger, sees a 3 % wider field and has its principal point 1 % of the width off centre, so the
converter's warp K_color K_depth^-1 is not a plain resize. Both share the pose (identity
extrinsics). Poses are rounded to the six decimals the pose files hold before rendering, so the
files agree with the images exactly.

Rendering: the project's z-buffer rasteriser (`stages.rendering.rasterizer`), depth = z of the
nearest surface along the optical axis; colour = albedo per object (the floor tiled in 0.5 m
squares, walls and furniture in a 3D checker of 0.2 m cells at +-10 %) lit by ambient, a fixed
sky direction and a headlight.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from tqdm import tqdm

from stages.atomic import atomic_path, write_bytes
from stages.cli import run
from stages.formats import scannet as layout
from stages.rendering.rasterizer import project_and_clip, rasterize
from stages.rendering.surfaces import SceneGeometry
from stages.scannet_tables import encode_color, encode_depth
from stages.synthetic.rooms import RoomConfig, camera_walk, generate_room
from stages.tables import SPLITS

NEAR, FAR = 0.05, 30.0  # metres: the rasteriser's clip planes
DEPTH_FOCAL = 577.590698 / 640.0  # ScanNet's depth fx per pixel of width
COLOR_FOV_GAIN = 1.03  # the colour camera sees a 3 % wider field than the depth camera
COLOR_PRINCIPAL_SHIFT = 0.01  # colour principal point off centre by 1 % of the width
LIGHT = np.array([0.3, 0.5, 1.0]) / np.linalg.norm([0.3, 0.5, 1.0])
AMBIENT, SKY, HEADLIGHT = 0.35, 0.4, 0.25
FLOOR_TILE = 0.5  # metres
# Walls and furniture: a 3D checker of SOLID_TILE cells (lattice shifted by SOLID_SHIFT so that
# no wall or top lies on a cell boundary) modulating the albedo by +-SOLID_CONTRAST, so that
# every surface has texture for multi-view matching (real rooms do; flat walls give none).
SOLID_TILE = 0.2  # metres
SOLID_SHIFT = 0.0137  # metres
SOLID_CONTRAST = 0.1


# Cameras ------------------------------------------------------------------------------------


def depth_intrinsics(width: int, height: int) -> np.ndarray:
    """float64 [3, 3] K of the depth camera (pixels; pixel centres at integer coordinates)."""
    f = DEPTH_FOCAL * width
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def color_intrinsics(width: int, height: int) -> np.ndarray:
    """float64 [3, 3] K of the colour camera of size width x height (see the module docstring)."""
    f = DEPTH_FOCAL * width / COLOR_FOV_GAIN
    cx = (width - 1) / 2.0 + COLOR_PRINCIPAL_SHIFT * width
    return np.array([[f, 0.0, cx], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def world_to_clip(cam_to_world: np.ndarray, K: np.ndarray, near: float = NEAR, far: float = FAR) -> np.ndarray:
    """float64 [4, 4] mapping a world point to the rasteriser's homogeneous coordinates: after
    the divide (pixel x, pixel y, NDC z). The rasteriser samples pixel c at c + 0.5, OpenCV puts
    its centre at c, hence the half-pixel shift; NDC z = A + B / z_camera, -1 at near, 1 at far."""
    A = (far + near) / (far - near)
    B = -2.0 * far * near / (far - near)
    projection = np.array(
        [
            [K[0, 0], K[0, 1], K[0, 2] + 0.5, 0.0],
            [0.0, K[1, 1], K[1, 2] + 0.5, 0.0],
            [0.0, 0.0, A, B],
            [0.0, 0.0, 1.0, 0.0],
        ]
    )
    return projection @ np.linalg.inv(cam_to_world)


def render_depth(geometry: SceneGeometry, cam_to_world: np.ndarray, K: np.ndarray, width: int,
                 height: int) -> tuple[np.ndarray, np.ndarray]:
    """Depth along the optical axis (float64 [H, W] metres, 0 where no surface within FAR) and
    the visible face (int32 [H, W], index into geometry.faces, -1 where none) of a pinhole
    camera: cam_to_world [4, 4] with OpenCV axes, K [3, 3] in pixels."""
    pixels, faces, source = project_and_clip(geometry.vertices, geometry.faces, world_to_clip(cam_to_world, K))
    ndc, face, _ = rasterize(pixels, faces, width, height)
    hit = face >= 0
    depth = np.zeros((height, width))
    A = (FAR + NEAR) / (FAR - NEAR)
    B = -2.0 * FAR * NEAR / (FAR - NEAR)
    depth[hit] = B / (ndc[hit] - A)
    visible = np.full((height, width), -1, np.int32)
    visible[hit] = source[face[hit]]
    return depth, visible


def shade(geometry: SceneGeometry, depth: np.ndarray, face: np.ndarray, cam_to_world: np.ndarray,
          K: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] colour from render_depth's output: object albedo (object 0, the floor,
    tiled in FLOOR_TILE squares; everything else in a 3D checker of SOLID_TILE cells) times
    ambient + sky (two-sided Lambert) + headlight; black where no surface."""
    height, width = depth.shape
    rows, cols = np.nonzero(face >= 0)
    rays = np.linalg.inv(K) @ np.stack([cols, rows, np.ones_like(cols)]).astype(np.float64)
    points_cam = rays * depth[rows, cols]
    points = (cam_to_world[:3, :3] @ points_cam).T + cam_to_world[:3, 3]
    normals = geometry.face_normals[face[rows, cols]]
    to_eye = cam_to_world[:3, 3] - points
    to_eye /= np.maximum(np.linalg.norm(to_eye, axis=1, keepdims=True), 1e-12)
    light = AMBIENT + SKY * np.abs(normals @ LIGHT) + HEADLIGHT * np.abs(np.einsum("ij,ij->i", normals, to_eye))
    owner = geometry.face_object[face[rows, cols]]
    albedo = geometry.colors[owner].copy()
    tiles = (np.floor(points[:, 0] / FLOOR_TILE) + np.floor(points[:, 1] / FLOOR_TILE)) % 2
    albedo[owner == 0] *= np.where(tiles[owner == 0] > 0, 0.85, 1.05)[:, None]
    cells = np.floor((points + SOLID_SHIFT) / SOLID_TILE).sum(1) % 2
    albedo[owner != 0] *= np.where(cells[owner != 0] > 0, 1.0 - SOLID_CONTRAST, 1.0 + SOLID_CONTRAST)[:, None]
    image = np.zeros((height, width, 3))
    image[rows, cols] = albedo * light[:, None]
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


# One scan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanSettings:
    """Frames per scan, depth image size (pixels) and the colour size as a multiple of it."""

    frames: int = 40
    width: int = 160
    height: int = 120
    color_scale: int = 2


def scene_id(index: int) -> str:
    """synthXXXX_00: the id of room `index` (never a real ScanNet id, which start 'scene')."""
    return f"synth{index:04d}_00"


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of room `index` under `seed` (independent of the other rooms)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def as_written(pose: np.ndarray) -> np.ndarray:
    """The pose as a pose file gives it back (six decimals, SensorData.save_mat_to_file)."""
    return layout.parse_matrix(layout.format_matrix(pose), "pose")


def write_scan(scan: Path, seed: int, index: int, settings: ScanSettings = ScanSettings(),
               config: RoomConfig = RoomConfig()) -> np.ndarray:
    """Generate room `index` and write its scan folder `scan` atomically (replacing an old one).
    Returns the camera-to-world poses written, float64 [frames, 4, 4]."""
    rng = scene_rng(seed, index)
    room = generate_room(rng, config)
    poses = np.stack([as_written(p) for p in camera_walk(room, rng, settings.frames, config)])
    geometry = SceneGeometry.from_objects(room.objects())
    w, h = settings.width, settings.height
    cw, ch = w * settings.color_scale, h * settings.color_scale
    K_depth, K_color = depth_intrinsics(w, h), color_intrinsics(cw, ch)
    with atomic_path(scan) as tmp:
        for kind in ("color", "depth", "pose"):
            (tmp / kind).mkdir(parents=True)
        layout.write_intrinsics(tmp, K_color, K_depth)
        for i, pose in enumerate(poses):
            depth, _ = render_depth(geometry, pose, K_depth, w, h)
            color_depth, color_face = render_depth(geometry, pose, K_color, cw, ch)
            color = shade(geometry, color_depth, color_face, pose, K_color)
            (tmp / "depth" / f"{i}.png").write_bytes(encode_depth(depth))
            (tmp / "color" / f"{i}.jpg").write_bytes(encode_color(color))
            (tmp / "pose" / f"{i}.txt").write_text(layout.format_matrix(pose))
        vertices, faces, colors = room.mesh()
        ply = trimesh.Trimesh(vertices, faces, vertex_colors=colors, process=False).export(file_type="ply")
        # Named after the final folder, not the temporary one.
        (tmp / layout.mesh_file(scan).name).write_bytes(ply)
        if scan.exists():
            shutil.rmtree(scan)
    return poses


def synthesize_rooms(out: str | Path, counts: dict[str, int], seed: int,
                     settings: ScanSettings = ScanSettings(), progress: bool = True) -> dict[str, list[str]]:
    """Write counts[split] rooms per split under `out` (layout in the module docstring); the
    split files are written last. Returns the scene ids per split."""
    out = Path(out)
    scenes: dict[str, list[str]] = {}
    jobs = []
    index = 0
    for split in SPLITS:
        scenes[split] = []
        for _ in range(counts.get(split, 0)):
            scenes[split].append(scene_id(index))
            jobs.append((split, index))
            index += 1
    for split, k in tqdm(jobs, desc="synthesize_rooms", unit="room", disable=not progress,
                         mininterval=1.0, file=sys.stderr):
        write_scan(layout.scan_dir(out, split, scene_id(k)), seed, k, settings)
    for split in SPLITS:
        layout.write_split_file(out, split, scenes[split])
    return scenes


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.synthesize_rooms", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="root of the ScanNet-layout output")
    for split in SPLITS:
        p.add_argument(f"--scenes-{split}", type=int, default=0, help=f"rooms in the {split} split")
    p.add_argument("--frames", type=int, default=ScanSettings.frames, help="frames per scan")
    p.add_argument("--width", type=int, default=ScanSettings.width, help="depth image width (pixels)")
    p.add_argument("--height", type=int, default=ScanSettings.height, help="depth image height (pixels)")
    p.add_argument("--color-scale", type=int, default=ScanSettings.color_scale,
                   help="colour image size as a multiple of the depth size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    counts = {s: getattr(args, f"scenes_{s}") for s in SPLITS}
    for name, value, least in [("--frames", args.frames, 1), ("--width", args.width, 8),
                               ("--height", args.height, 8), ("--color-scale", args.color_scale, 1),
                               *[(f"--scenes-{s}", counts[s], 0) for s in SPLITS]]:
        if value < least:
            raise SystemExit(f"{name} must be at least {least}, got {value}")
    if sum(counts.values()) > 10000:
        raise SystemExit("at most 10000 rooms: scene ids have four digits")
    start = time.perf_counter()
    settings = ScanSettings(args.frames, args.width, args.height, args.color_scale)
    scenes = synthesize_rooms(args.out, counts, args.seed, settings, progress=not args.no_progress)
    total = sum(len(v) for v in scenes.values())
    seconds = time.perf_counter() - start
    print(f"synthesize_rooms: wrote {total} rooms ({', '.join(f'{s} {len(scenes[s])}' for s in SPLITS)}) "
          f"of {args.frames} frames to {args.out} in {seconds:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run(main)
