"""Reading a mesh file of any format the pipeline accepts, chosen by the file's extension."""

from __future__ import annotations

import os
from pathlib import Path

from stages.formats.mesh import MeshError, TriangleMesh
from stages.formats.obj import read_obj
from stages.formats.off import read_off
from stages.formats.ply import read_ply
from stages.formats.stl import read_stl

MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl")


def load_mesh(path: str | os.PathLike) -> TriangleMesh:
    """Read a mesh file (.obj, .off, .ply or .stl, any case) as a triangle mesh.

    Polygons are cut into triangles (stages.formats.polygons); STL's per-triangle corners are
    shared where their coordinates are identical. Raises MeshError, with `source` the path, for
    an unknown extension, a file that cannot be read, and malformed content. The mesh is not
    validated (see stages.formats.mesh.validate_mesh).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".obj":
        return read_obj(path)
    if suffix == ".off":
        return read_off(path)
    if suffix == ".ply":
        return read_ply(path)
    if suffix == ".stl":
        return read_stl(path)
    raise MeshError(f"unknown mesh format {path.suffix!r} (expected one of {', '.join(MESH_SUFFIXES)})", str(path))
