"""Triangle meshes as the pipeline holds them: the one mesh type, its error, and its checks.

Readers of every mesh format (stages.formats.obj, .off, .ply, and the dispatch in
stages.formats.load) build a `TriangleMesh` or raise `MeshError`; nothing here reads files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.errors import StageError


class MeshError(StageError):
    """A mesh that cannot be read or used.

    `reason` says what is wrong without naming the file (short and bounded, for a quarantine
    table row whose other columns name the file); `source` names the file (or model) where it is
    known. `str(err)` is `"<source>: <reason>"`, or the reason alone when the source is unknown.
    """

    def __init__(self, reason: str, source: str | None = None) -> None:
        self.reason = reason
        self.source = source
        super().__init__(f"{source}: {reason}" if source else reason)

    def __reduce__(self):
        # Rebuilt from both fields when it crosses a process boundary (Dask workers).
        return type(self), (self.reason, self.source)


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


def drop_unused_vertices(mesh: TriangleMesh) -> tuple[TriangleMesh, int]:
    """(the mesh with only the vertices its faces use, how many were dropped).

    Kept vertices stay in their order and faces are renumbered to match, so a mesh without
    unused vertices comes back unchanged. Bounds, normalisation and placement must see only the
    geometry faces use: a stray `v` line far from the faces would otherwise shrink the model and
    lift it off the floor. Face indices must be valid (see `validate_mesh`).
    """
    used = np.zeros(len(mesh.vertices), dtype=bool)
    used[mesh.faces.reshape(-1)] = True
    dropped = int(len(used) - used.sum())
    if dropped == 0:
        return mesh, 0
    renumber = np.cumsum(used) - 1
    return TriangleMesh(mesh.vertices[used], renumber[mesh.faces]), dropped


# Relative to the squared size of the mesh: coordinates stored as decimal text make collinear
# corners come back with a cross product of rounding size, not exactly zero.
_DEGENERATE_AREA = 1e-12


def validate_mesh(mesh: TriangleMesh) -> str | None:
    """Why the mesh cannot be used downstream, or None when it can.

    Only vertices that faces use are checked for finite coordinates: an unused vertex changes
    nothing downstream (see `drop_unused_vertices`).
    """
    vertices, faces = mesh.vertices, mesh.faces
    if len(vertices) == 0:
        return "no vertices"
    if len(faces) == 0:
        return "no faces"
    if faces.min() < 0 or faces.max() >= len(vertices):
        return f"face index out of range (indices {faces.min()}..{faces.max()}, {len(vertices)} vertices)"
    used = vertices[np.unique(faces)]
    finite = np.isfinite(used).all(axis=1)
    if not finite.all():
        return f"non-finite vertex coordinates ({int((~finite).sum())} of {len(used)} used vertices)"
    corners = vertices[faces]
    doubled_area = np.linalg.norm(
        np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1
    )
    scale = float(np.ptp(used, axis=0).max())
    if (doubled_area <= _DEGENERATE_AREA * scale * scale).all():
        return f"all {len(faces)} faces are degenerate (zero area)"
    return None
