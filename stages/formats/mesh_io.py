"""Triangle meshes as the pipeline holds them, their validation, and loading by file extension."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class MeshError(ValueError):
    """A mesh file that cannot be read; `reason` is short enough for a quarantine table row."""

    def __init__(self, reason: str, source: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.source = source


@dataclass(frozen=True, eq=False)
class TriangleMesh:
    """An indexed triangle mesh.

    vertices: float64 [N, 3] positions.
    faces: int64 [M, 3] 0-based vertex indices; they are not checked here, so that a file's
        content can be held and reported on (see `validate_mesh`) rather than refused on sight.
    """

    vertices: np.ndarray
    faces: np.ndarray

    def __post_init__(self) -> None:
        for name, dtype in (("vertices", np.float64), ("faces", np.int64)):
            array = np.ascontiguousarray(getattr(self, name), dtype=dtype)
            if array.size == 0:
                array = array.reshape(0, 3)
            if array.ndim != 2 or array.shape[1] != 3:
                raise ValueError(f"TriangleMesh.{name} must have shape [n, 3], got {array.shape}")
            # A view, so that freezing it never makes the caller's own array read-only.
            array = array.view()
            array.flags.writeable = False
            object.__setattr__(self, name, array)


def triangles(mesh: TriangleMesh) -> np.ndarray:
    """The triangle soup: float64 [M, 3, 3], corner positions of every face (indices must be valid)."""
    return mesh.vertices[mesh.faces]


# Relative to the squared size of the mesh: coordinates stored as decimal text make collinear
# corners come back with a cross product of rounding size, not exactly zero.
_DEGENERATE_AREA = 1e-12


def validate_mesh(mesh: TriangleMesh) -> str | None:
    """Why the mesh cannot be used downstream, or None when it can."""
    vertices, faces = mesh.vertices, mesh.faces
    if len(vertices) == 0:
        return "no vertices"
    if len(faces) == 0:
        return "no faces"
    if not np.isfinite(vertices).all():
        bad = int((~np.isfinite(vertices)).any(axis=1).sum())
        return f"non-finite vertex coordinates ({bad} of {len(vertices)} vertices)"
    if faces.min() < 0 or faces.max() >= len(vertices):
        return f"face index out of range (indices {faces.min()}..{faces.max()}, {len(vertices)} vertices)"
    corners = vertices[faces]
    doubled_area = np.linalg.norm(
        np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1
    )
    scale = float(np.ptp(vertices, axis=0).max())
    if (doubled_area <= _DEGENERATE_AREA * scale * scale).all():
        return f"all {len(faces)} faces are degenerate (zero area)"
    return None


_TRIMESH_FORMATS = {".ply", ".off", ".stl"}


def load_mesh(path: str | os.PathLike) -> TriangleMesh:
    """Read a mesh file, choosing the reader by extension (.obj, .ply, .off, .stl)."""
    # Imported here: obj.py builds TriangleMesh, so it imports this module at load time.
    from stages.formats.obj import read_obj

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".obj":
        return read_obj(path)
    if suffix not in _TRIMESH_FORMATS:
        raise MeshError(f"{path}: unknown mesh format {path.suffix!r}", str(path))
    if not path.is_file():
        raise MeshError(f"{path}: cannot read file: no such file", str(path))
    import trimesh

    try:
        loaded = trimesh.load(path, force="mesh", process=False)
        vertices = np.asarray(loaded.vertices, dtype=np.float64)
        faces = np.asarray(loaded.faces, dtype=np.int64)
    except Exception as err:  # trimesh's parsers raise whatever their parsing hits
        raise MeshError(f"{path}: trimesh could not load it: {type(err).__name__}: {err}", str(path)) from err
    if suffix == ".stl":
        vertices, faces = _merge_identical_vertices(vertices, faces)
    return TriangleMesh(vertices, faces)


def _merge_identical_vertices(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share corners with identical coordinates, numbered in order of first use.

    STL stores three private corners per triangle; sharing the identical ones gives the same
    connectivity as the OBJ of the same mesh, and changes no geometry.
    """
    if len(vertices) == 0:
        return vertices, faces
    _, first, inverse = np.unique(vertices, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return vertices[first[order]], rank[inverse.reshape(-1)][faces]
