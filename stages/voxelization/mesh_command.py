"""`python -m stages.voxelize mesh`: voxelize one mesh file into .binvox or .npy."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from stages.atomic import atomic_write
from stages.cli import describe
from stages.errors import StageError
from stages.voxelization import (
    BACKENDS,
    cube_to_voxel_space,
    grid_shape,
    mesh_to_voxel_transform,
    voxelize_triangles,
)

OUTPUT_SUFFIXES = (".binvox", ".npy")

HELP = """\
Voxelize a mesh: a voxel is occupied when a triangle touches it or when it is enclosed (cannot
be reached from outside the grid through empty voxels), so non-watertight meshes fill too.

The grid is a cube given by binvox's translate and scale: by default the mesh's bounding cube
(translate = the min corner of the bounding box of the vertices its faces use, scale = its
largest extent), or --cube.
Voxel (x, y, z) covers translate + scale * [x, x+1] / R (and likewise for y, z).

Output by extension:
  .binvox  binvox 1 file, grid in binvox's x, y, z order with the cube's translate and scale
  .npy     numpy bool array of shape (R, R, R) in (z, y, x) order, i.e. grid[z, y, x]
"""


def voxelize_mesh_file(in_path, resolution, out_path, cube=None, backend: str = "auto") -> np.ndarray:
    """Voxelize the mesh at in_path into out_path (.binvox or .npy, written atomically).

    Returns the bool (D, H, W) grid, indexed [z, y, x]. cube: (tx, ty, tz, scale) as binvox's
    translate and scale, in the mesh's units, or None for the bounding cube of the vertices the
    faces use (a stray vertex no face uses does not stretch the grid). Raises MeshError for a mesh
    that cannot be read or used (stages.formats.load, validate_mesh), StageError for a bad output
    suffix or cube.
    """
    from stages.formats.load import load_mesh
    from stages.formats.mesh import MeshError, drop_unused_vertices, triangles, validate_mesh

    in_path, out_path = Path(in_path), Path(out_path)
    suffix = out_path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise StageError(f"{out_path}: output must be .binvox or .npy")
    try:
        shape = grid_shape(resolution)
    except ValueError as err:
        raise StageError(f"--resolution: {err}") from None
    mesh = load_mesh(in_path)
    reason = validate_mesh(mesh)
    if reason is not None:
        raise MeshError(reason, str(in_path))
    mesh, _ = drop_unused_vertices(mesh)
    if cube is None:
        translate, scale = mesh_to_voxel_transform(mesh.vertices, shape)
    else:
        if len(cube) != 4:
            raise StageError(f"cube must be (tx, ty, tz, scale), got {cube!r}")
        translate, scale = np.asarray(cube[:3], dtype=np.float64), float(cube[3])
        if not (np.isfinite(translate).all() and np.isfinite(scale) and scale > 0):
            raise StageError(f"cube translate must be finite and scale positive, got {cube!r}")
    tris = cube_to_voxel_space(triangles(mesh), translate, scale, shape)
    grid = voxelize_triangles(tris, shape, backend=backend)
    if suffix == ".binvox":
        from stages.formats.binvox import write_binvox

        write_binvox(out_path, grid.transpose(2, 1, 0), translate, scale)
    else:
        atomic_write(out_path, lambda tmp: _save_npy(tmp, grid))
    return grid


def _save_npy(path: Path, grid: np.ndarray) -> None:
    # Through an open file: np.save appends ".npy" to a path that does not end in it.
    with open(path, "wb") as f:
        np.save(f, grid)


def add_mesh_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of the `mesh` subcommand; sets the parser's description to HELP."""
    parser.description = HELP
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("mesh", type=Path, help="input mesh: .obj, .ply, .off or .stl")
    parser.add_argument("--resolution", "-r", type=int, required=True, help="voxels per side R")
    parser.add_argument(
        "--cube", type=float, nargs=4, metavar=("TX", "TY", "TZ", "SCALE"), default=None,
        help="grid cube as binvox's translate and scale (default: the mesh's bounding cube)",
    )
    parser.add_argument(
        "--out", "-o", type=Path, required=True,
        help=".binvox (x, y, z order, with translate/scale) or .npy (bool, (z, y, x) order)",
    )
    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="voxelizer backend (default: auto)")
    return parser


def run_mesh_command(args: argparse.Namespace) -> int:
    """Run the `mesh` subcommand from parsed arguments; returns the exit status.

    Bad input (an unreadable or unusable mesh, a bad output path) raises SystemExit with one line
    naming the file and the reason, which `python -m` prints alone and exits 1 on, as does
    stages.cli.run.
    """
    try:
        grid = voxelize_mesh_file(args.mesh, args.resolution, args.out, cube=args.cube, backend=args.backend)
    except (StageError, OSError) as err:
        raise SystemExit(f"voxelize: {describe(err)}") from None
    print(f"{args.out}: {int(grid.sum())} of {grid.size} voxels occupied")
    return 0
