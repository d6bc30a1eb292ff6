"""render_views: 3D-R2N2's training data for every mesh of a meshes shard, in the exact layout of
the released ShapeNetRendering and ShapeNetVox32 archives (see `stages.r2n2_views`).

    python -m stages.render_views --meshes SHARD.parquet --rendering-out DIR --voxels-out DIR \\
        [--views 24 --size 137 --seed 0]

Views. Every view's pose is drawn from (seed, synset, model_id, view) alone, as 3D-R2N2's
renderer drew it: azimuth U[0, 360), elevation U[25, 30), in-plane rotation 0, distance ratio
U[0.65, 0.95); the file stores the ratio, the camera stands at ratio * 1.75 from the origin and
looks at it, +y up. The camera position in the mesh frame, (d cos el cos az, d sin el, d cos el
sin az), is the released renderer's: it parents the camera at (d, 0, 0) to an empty rotated by
(0, -el, -az) (lib/blender_renderer.py), and Blender imports an OBJ's (x, y, z) as (x, -z, y)
(the rotation meshrcnn and PyTorch3D fold into their R2N2 extrinsics). The metadata's fifth
column is 25, as in every released file, but that renderer never applied it: the images come
from Blender's default 35 mm lens on a 32 mm sensor, a 2 atan(16/35) = 49.13 degree field of view
(PyTorch3D's R2N2 intrinsic, 2.1875 = 35/16, is that lens), so that is the field of view used
here. The object is shaded like the `low` realism of `stages.render` (one flat colour per model,
Lambertian headlight); pixels it does not cover are transparent (alpha 0, RGB 0, as Blender's
transparent film leaves them).

Voxels. ShapeNetVox32 was made with `binvox -d 32 -cb` (3D-R2N2's lib/voxel.py): the grid spans
the mesh's bounding cube (side = the largest extent of its bounding box) centred on the box, and
binvox's x, y, z are the mesh's (meshrcnn and PyTorch3D align R2N2 voxels to ShapeNet meshes with
a per-axis scale and shift only, no axis swap). The grid here is that cube voxelized by
`stages.voxelization` (surface plus every voxel closed off from the outside) and written with
binvox's translate (the cube's corner) and scale (its side).

Each model's folder is written under a hidden temporary name and renamed when complete, so an
interrupted run leaves no half-written model; a model whose folder exists is skipped, so a rerun
resumes.
"""

from __future__ import annotations

import argparse
import io
import math
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from stages.atomic import atomic_path
from stages.camera import look_at_rh, perspective_rh
from stages.cli import run
from stages.errors import one_line
from stages.formats.binvox import write_binvox
from stages.formats.mesh import MeshError
from stages.parallel import add_dask_arguments, dask_options, map_partitions
from stages.r2n2_views import (
    BINVOX_FILE,
    MAX_CAMERA_DIST,
    METADATA_FILE,
    RENDERING_DIR,
    RENDERINGS_LIST,
    format_metadata_line,
)
from stages.render import object_colours
from stages.rendering.shading import SceneObject, render_object_ids, render_scene
from stages.sharding import stable_hash
from stages.tables import MESHES, iter_batches, unpack_array
from stages.voxelization import cube_to_voxel_space, voxelize_triangles

METADATA_FOV = 25.0  # what the released files write in the fifth column
BLENDER_FOV_DEG = math.degrees(2 * math.atan(16 / 35))  # what Blender rendered them with
BLENDER_Z_NEAR, BLENDER_Z_FAR = 0.1, 100.0  # Blender's default clip range
AZIMUTH = (0.0, 360.0)
ELEVATION = (25.0, 30.0)
DISTANCE_RATIO = (0.65, 0.95)
COLOUR_SALT = 1 << 20  # the model's colour stream, apart from the per-view streams


@dataclass(frozen=True)
class ViewPose:
    azimuth: float  # degrees
    elevation: float  # degrees
    inplane: float  # degrees, always 0
    distance_ratio: float  # camera distance / MAX_CAMERA_DIST
    fov: float  # the metadata column, 25

    def as_line(self) -> str:
        return format_metadata_line((self.azimuth, self.elevation, self.inplane, self.distance_ratio, self.fov))


def _model_key(synset: str, model_id: str) -> int:
    return stable_hash(f"r2n2/{synset}/{model_id}")


def view_pose(seed: int, synset: str, model_id: str, view: int) -> ViewPose:
    """The pose of one view, from (seed, synset, model_id, view) alone. Values are rounded to
    the text the metadata file holds, so images and file agree exactly."""
    rng = np.random.default_rng([seed, _model_key(synset, model_id), view])
    drawn = (rng.uniform(*AZIMUTH), rng.uniform(*ELEVATION), 0.0, rng.uniform(*DISTANCE_RATIO), METADATA_FOV)
    return ViewPose(*(float(f"{v:.12g}") for v in drawn))


def camera_position(pose: ViewPose) -> np.ndarray:
    """Camera centre in the mesh frame (+y up); see the module docstring for the derivation."""
    az, el = math.radians(pose.azimuth), math.radians(pose.elevation)
    d = pose.distance_ratio * MAX_CAMERA_DIST
    return d * np.array([math.cos(el) * math.cos(az), math.sin(el), math.cos(el) * math.sin(az)])


def world_to_image(pose: ViewPose) -> np.ndarray:
    """Mesh frame -> image space ([-1, 1]^2, y down, stages.camera's convention)."""
    view = look_at_rh(camera_position(pose), (0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    projection = perspective_rh(math.radians(BLENDER_FOV_DEG), 1.0, BLENDER_Z_NEAR, BLENDER_Z_FAR)
    # perspective_rh's clip space has y up; image rows grow downwards. Flipping y (and only y)
    # keeps the picture a camera's, not its mirror image.
    return np.diag([1.0, -1.0, 1.0, 1.0]) @ projection @ view


def render_view(obj: SceneObject, pose: ViewPose, size: int) -> np.ndarray:
    """uint8 RGBA [size, size, 4]: the shaded object, transparent elsewhere."""
    transform = world_to_image(pose)
    rgb = render_scene([obj], np.eye(4), transform, size, size, "low")
    covered = render_object_ids([obj], np.eye(4), transform, size, size) >= 0
    rgba = np.zeros((size, size, 4), np.uint8)
    rgba[covered, :3] = rgb[covered]
    rgba[covered, 3] = 255
    return rgba


def encode_png(rgba: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(out, format="PNG")
    return out.getvalue()


def shapenetvox_cube(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """binvox -cb's cube: (corner, side) with side = the largest bounding-box extent, centred
    on the bounding box."""
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    side = float((hi - lo).max())
    if not side > 0:
        raise ValueError("mesh has zero extent")
    return (lo + hi) / 2 - side / 2, side


def voxelize_mesh(vertices: np.ndarray, faces: np.ndarray, resolution: int, backend: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(bool grid [X, Y, Z] as binvox stores it, translate, scale)."""
    corner, side = shapenetvox_cube(vertices)
    triangles = cube_to_voxel_space(vertices[faces], corner, side, resolution)
    grid_zyx = voxelize_triangles(triangles, resolution, backend=backend)
    return grid_zyx.transpose(2, 1, 0), corner, side


@contextmanager
def _model_folder(folder: Path):
    """Yield an empty temporary folder that replaces `folder` when the block completes
    (stages.atomic); when another writer finished the same model first, theirs stands."""
    try:
        with atomic_path(folder) as tmp:
            shutil.rmtree(tmp, ignore_errors=True)  # left by a killed run of the same process id
            tmp.mkdir()
            yield tmp
    except OSError:
        if not folder.is_dir():
            raise


def write_rendering(folder: Path, synset: str, model_id: str, vertices, faces, views: int, size: int, seed: int) -> None:
    colour = object_colours(np.random.default_rng([seed, _model_key(synset, model_id), COLOUR_SALT]), 1)[0]
    obj = SceneObject(vertices, faces, colour)
    with _model_folder(folder) as tmp:
        images = tmp / RENDERING_DIR
        images.mkdir()
        names, lines = [], []
        for view in range(views):
            pose = view_pose(seed, synset, model_id, view)
            name = f"{view:02d}.png"
            (images / name).write_bytes(encode_png(render_view(obj, pose, size)))
            names.append(name)
            lines.append(pose.as_line())
        (images / RENDERINGS_LIST).write_text("".join(f"{n}\n" for n in names))
        (images / METADATA_FILE).write_text("".join(f"{line}\n" for line in lines))


def write_voxels(folder: Path, vertices, faces, resolution: int, backend: str) -> None:
    grid, translate, scale = voxelize_mesh(vertices, faces, resolution, backend)
    with _model_folder(folder) as tmp:
        write_binvox(tmp / BINVOX_FILE, grid, translate, scale)


@dataclass(frozen=True)
class Settings:
    rendering_out: Path
    voxels_out: Path
    views: int
    size: int
    seed: int
    resolution: int
    backend: str


def render_partition(meshes: pd.DataFrame, settings: Settings) -> tuple[int, int]:
    """Write every model of a partition of the meshes table: (models written, models skipped)."""
    written = skipped = 0
    for row in meshes.itertuples(index=False):
        rendering = settings.rendering_out / row.synset / row.mesh_id
        voxels = settings.voxels_out / row.synset / row.mesh_id
        if rendering.is_dir() and voxels.is_dir():
            skipped += 1
            continue
        vertices = unpack_array(row.vertices, "<f4", (-1, 3)).astype(np.float64)
        faces = unpack_array(row.faces, "<i4", (-1, 3)).astype(np.int64)
        try:
            if not rendering.is_dir():
                write_rendering(rendering, row.synset, row.mesh_id, vertices, faces, settings.views, settings.size, settings.seed)
            if not voxels.is_dir():
                write_voxels(voxels, vertices, faces, settings.resolution, settings.backend)
        except ValueError as err:
            raise MeshError(one_line(err), f"{row.synset}/{row.mesh_id}") from None
        written += 1
    return written, skipped


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.render_views", description=__doc__.split("\n\n")[0])
    parser.add_argument("--meshes", type=Path, nargs="+", required=True, help="meshes shard file(s) to render")
    parser.add_argument("--rendering-out", type=Path, required=True, help="ShapeNetRendering-layout folder to fill")
    parser.add_argument("--voxels-out", type=Path, required=True, help="ShapeNetVox32-layout folder to fill")
    parser.add_argument("--views", type=int, default=24, help="views per model (default 24)")
    parser.add_argument("--size", type=int, default=137, help="image side in pixels (default 137)")
    parser.add_argument("--seed", type=int, default=0, help="pose and colour seed (default 0)")
    parser.add_argument("--resolution", type=int, default=32, help="voxel grid side (default 32)")
    parser.add_argument("--backend", default="cpu", choices=["auto", "cpu", "cuda"], help="voxelizer (default cpu)")
    parser.add_argument("--partition-size", type=int, default=8, help="meshes per Dask partition (default 8)")
    add_dask_arguments(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.views <= 100:
        parser.error("--views must be in 1..100 (file names are two digits)")
    if args.size < 8 or args.resolution < 1 or args.seed < 0:
        parser.error("--size must be >= 8, --resolution >= 1, --seed >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    options = dask_options(args)
    settings = Settings(args.rendering_out, args.voxels_out, args.views, args.size, args.seed, args.resolution, args.backend)
    for out in (args.rendering_out, args.voxels_out):
        out.mkdir(parents=True, exist_ok=True)
    partitions = list(iter_batches(args.meshes, MESHES, batch_rows=args.partition_size))
    written = skipped = 0
    try:
        for done, kept in map_partitions(partial(render_partition, settings=settings), partitions, options, "render_views"):
            written += done
            skipped += kept
    except MeshError as err:
        raise SystemExit(f"render_views: {err}") from None
    print(
        f"render_views: {written} models rendered ({args.views} views at {args.size}px) and voxelized "
        f"at {args.resolution}^3, {skipped} already present -> {args.rendering_out}, {args.voxels_out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    run(main)
