"""`python -m stages.voxelize mesh`: voxelize one mesh file into .binvox or .npy."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

from stages.voxelization import (
    BACKENDS,
    cube_to_voxel_space,
    grid_shape,
    mesh_to_voxel_transform,
    voxelize_triangles,
)

MESH_SUFFIXES = (".obj", ".ply", ".off", ".stl")
OUTPUT_SUFFIXES = (".binvox", ".npy")

HELP = """\
Voxelize a mesh: a voxel is occupied when a triangle touches it or when it is enclosed (cannot
be reached from outside the grid through empty voxels), so non-watertight meshes fill too.

The grid is a cube given by binvox's translate and scale: by default the mesh's bounding cube
(translate = the min corner of its bounding box, scale = its largest extent), or --cube.
Voxel (x, y, z) covers translate + scale * [x, x+1] / R (and likewise for y, z).

Output by extension:
  .binvox  binvox 1 file, grid in binvox's x, y, z order with the cube's translate and scale
  .npy     numpy bool array of shape (R, R, R) in (z, y, x) order, i.e. grid[z, y, x]
"""


def voxelize_mesh_file(in_path, resolution, out_path, cube=None, backend: str = "auto") -> np.ndarray:
    """Voxelize the mesh at in_path into out_path (.binvox or .npy); returns the bool (D, H, W)
    grid. cube: (tx, ty, tz, scale) as binvox's translate and scale, or None for the mesh's
    bounding cube."""
    from stages.formats.mesh_io import load_mesh, triangles

    in_path, out_path = Path(in_path), Path(out_path)
    if in_path.suffix.lower() not in MESH_SUFFIXES:
        raise ValueError(f"{in_path}: mesh must be one of {', '.join(MESH_SUFFIXES)}")
    suffix = out_path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ValueError(f"{out_path}: output must be .binvox or .npy")
    shape = grid_shape(resolution)
    mesh = load_mesh(in_path)
    if cube is None:
        translate, scale = mesh_to_voxel_transform(mesh.vertices, shape)
    else:
        if len(cube) != 4:
            raise ValueError(f"cube must be (tx, ty, tz, scale), got {cube!r}")
        translate, scale = np.asarray(cube[:3], dtype=np.float64), float(cube[3])
        if not (np.isfinite(translate).all() and np.isfinite(scale) and scale > 0):
            raise ValueError(f"cube translate must be finite and scale positive, got {cube!r}")
    tris = cube_to_voxel_space(triangles(mesh), translate, scale, shape)
    grid = voxelize_triangles(tris, shape, backend=backend)
    if suffix == ".binvox":
        from stages.formats.binvox import write_binvox

        write_binvox(out_path, grid.transpose(2, 1, 0), translate, scale)
    else:
        fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, grid)
            os.replace(tmp, out_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return grid


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
    """Run the `mesh` subcommand from parsed arguments; returns the exit status."""
    grid = voxelize_mesh_file(args.mesh, args.resolution, args.out, cube=args.cube, backend=args.backend)
    print(f"{args.out}: {int(grid.sum())} of {grid.size} voxels occupied")
    return 0
