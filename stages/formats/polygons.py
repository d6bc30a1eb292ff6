"""Faces with more than three corners, as OBJ, OFF and PLY files hold them, cut into triangles.

A fan from the first corner is only right for polygons that corner can see whole (convex ones,
among others); an L-shaped cap fanned from the wrong corner covers its own notch. Here:

- triangles are kept as they are;
- a quad is split along the diagonal from its first corner when that diagonal lies inside it (the
  fan, as before, so every convex quad comes out unchanged), else along the other diagonal. This is
  exact for every simple quad, planar or warped: a warped quad has no one true surface and either
  diagonal that lies inside it is a reading of it, so quads are not held to the planarity test;
- a polygon of five or more corners is projected onto its best-fit plane (Newell's normal, the
  plane of its vector area) and cut by ear clipping (mapbox_earcut, as trimesh does);
- a polygon whose corners stray from that plane by more than PLANARITY_TOLERANCE of its size,
  that crosses itself, or whose parts cancel out (zero net area without lying on one line) is
  refused with `PolygonError`: no triangulation of it would be right. A polygon whose corners
  all lie on one line has no surface, and becomes zero-area triangles (the fan), as does one with
  non-finite corners (left to `validate_mesh`, which says which).

Triangles keep the polygon's winding (the side its corners turn around), so normals agree with
the file's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.formats.mesh import TriangleMesh

# Largest distance of a corner from the polygon's best-fit plane, as a fraction of the polygon's
# largest axis-aligned extent; exporters' planar n-gons stray by rounding (1e-6), not by 5 %.
PLANARITY_TOLERANCE = 0.05
# Areas below this fraction of the squared size are zero (decimal text leaves rounding behind).
_EPSILON = 1e-9
# Rows of the pairwise edge test done at once, so a 10,000-corner cap stays in bounded memory.
_EDGE_BLOCK = 256


class PolygonError(ValueError):
    """A polygon that cannot be triangulated; `polygon` is its 0-based position in the file's
    polygon list, so a reader can name its line, and `reason` says why."""

    def __init__(self, polygon: int, reason: str) -> None:
        super().__init__(reason)
        self.polygon = polygon
        self.reason = reason

    def __reduce__(self):
        return type(self), (self.polygon, self.reason)


@dataclass(frozen=True, eq=False)
class PolygonMesh:
    """Polygons as a file lists them.

    vertices: float64 [N, 3] positions.
    corners: int64 [K] 0-based vertex indices of every polygon, one polygon after another; they
        must be valid indices into `vertices`.
    counts: int64 [P] corners per polygon, each >= 3, summing to K.
    """

    vertices: np.ndarray
    corners: np.ndarray
    counts: np.ndarray

    def __post_init__(self) -> None:
        vertices = np.asarray(self.vertices, dtype=np.float64).reshape(-1, 3)
        corners = np.asarray(self.corners, dtype=np.int64).reshape(-1)
        counts = np.asarray(self.counts, dtype=np.int64).reshape(-1)
        if int(counts.sum()) != len(corners) or (len(counts) and counts.min() < 3):
            raise ValueError("PolygonMesh.counts must be >= 3 each and sum to len(corners)")
        object.__setattr__(self, "vertices", vertices)
        object.__setattr__(self, "corners", corners)
        object.__setattr__(self, "counts", counts)


def triangulate(mesh: PolygonMesh) -> TriangleMesh:
    """The triangle mesh of a polygon mesh: faces int64 [M, 3] in polygon order.

    Raises PolygonError naming the first polygon (by position) that no triangulation fits (see
    the module docstring).
    """
    vertices, corners, counts = mesh.vertices, mesh.corners, mesh.counts
    if len(counts) == 0 or (counts == 3).all():
        return TriangleMesh(vertices, corners.reshape(-1, 3))
    starts = np.cumsum(counts) - counts
    ids, faces = [], []
    small = np.flatnonzero(counts == 3)
    ids.append(small)
    faces.append(corners[starts[small, None] + np.arange(3)])
    quads = np.flatnonzero(counts == 4)
    if len(quads):
        ids.append(np.repeat(quads, 2))
        faces.append(_split_quads(vertices, corners[starts[quads, None] + np.arange(4)], quads))
    for polygon in np.flatnonzero(counts > 4):
        ring = corners[starts[polygon] : starts[polygon] + counts[polygon]]
        triangles = _clip_polygon(vertices, ring, int(polygon))
        ids.append(np.full(len(triangles), polygon))
        faces.append(triangles)
    order = np.argsort(np.concatenate(ids), kind="stable")
    return TriangleMesh(vertices, np.concatenate(faces)[order])


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", a, b)


def _split_quads(vertices: np.ndarray, quads: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """int64 [2Q, 3]: each quad's two triangles, one after the other."""
    a, b, c, d = (vertices[quads[:, k]] for k in range(4))
    with np.errstate(invalid="ignore", over="ignore"):
        # Twice the vector area; its direction is the side the corners turn around.
        normal = np.cross(c - a, d - b)
        area2 = np.linalg.norm(normal, axis=1)
        size = np.ptp(np.stack([a, b, c, d]), axis=0).max(axis=1)
        zero = _EPSILON * size * size
        # A diagonal lies inside the quad exactly when both its triangles turn the quad's way.
        tolerance = zero * area2
        fan = (_dot(np.cross(b - a, c - a), normal) >= -tolerance) & (
            _dot(np.cross(c - a, d - a), normal) >= -tolerance
        )
        other = (_dot(np.cross(c - b, d - b), normal) >= -tolerance) & (
            _dot(np.cross(d - b, a - b), normal) >= -tolerance
        )
        flat = area2 <= zero
        on_a_line = (np.linalg.norm(np.cross(b - a, c - a), axis=1) <= zero) & (
            np.linalg.norm(np.cross(c - a, d - a), axis=1) <= zero
        )
        finite = np.isfinite(np.stack([a, b, c, d])).all(axis=(0, 2))
    use_fan = ~finite | np.where(flat, on_a_line, fan)
    use_other = finite & ~flat & ~fan & other
    bad = ~(use_fan | use_other)
    if bad.any():
        first = int(np.argmax(bad))
        why = "its two halves cancel out" if flat[first] else "its edges cross"
        raise PolygonError(int(ids[first]), f"quad crosses itself ({why})")
    pattern = np.where(use_other[:, None, None], [[1, 2, 3], [1, 3, 0]], [[0, 1, 2], [0, 2, 3]])
    return np.take_along_axis(quads[:, None, :], pattern, axis=2).reshape(-1, 3)


def _fan(ring: np.ndarray) -> np.ndarray:
    k = np.arange(1, len(ring) - 1)
    return np.stack([np.full(len(k), ring[0]), ring[k], ring[k + 1]], axis=1)


def _clip_polygon(vertices: np.ndarray, ring: np.ndarray, polygon: int) -> np.ndarray:
    """int64 [T, 3]: one polygon of five or more corners cut into triangles (see the module doc)."""
    import mapbox_earcut

    n = len(ring)
    points = vertices[ring]
    if not np.isfinite(points).all():
        return _fan(ring)
    centred = points - points.mean(axis=0)
    size = float(np.ptp(points, axis=0).max())
    normal = np.cross(centred, np.roll(centred, -1, axis=0)).sum(axis=0)  # Newell: 2 x vector area
    area2 = float(np.linalg.norm(normal))
    if area2 <= _EPSILON * size * size:
        spread = np.linalg.svd(centred, compute_uv=False)
        if spread[1] <= _EPSILON * max(size, 1e-300) * np.sqrt(n):
            return _fan(ring)  # all on one line: no surface to get wrong
        raise PolygonError(polygon, f"polygon of {n} corners crosses itself (its parts cancel out)")
    axis = normal / area2
    off_plane = float(np.abs(centred @ axis).max())
    if off_plane > PLANARITY_TOLERANCE * size:
        raise PolygonError(
            polygon,
            f"polygon of {n} corners is not planar: a corner lies {off_plane / size:.0%} of its size "
            f"off its best-fit plane (tolerance {PLANARITY_TOLERANCE:.0%})",
        )
    u = np.cross(axis, np.eye(3)[int(np.argmin(np.abs(axis)))])
    u /= np.linalg.norm(u)
    # (u, v, axis) is right-handed, so the corners turn counter-clockwise in (u, v).
    flat = np.stack([centred @ u, centred @ np.cross(axis, u)], axis=1)
    if _crosses_itself(flat, _EPSILON * size * size):
        raise PolygonError(polygon, f"polygon of {n} corners crosses itself")
    triangles = mapbox_earcut.triangulate_float64(flat, np.array([n], dtype=np.uint32))
    triangles = triangles.astype(np.int64).reshape(-1, 3)
    p, q, r = (flat[triangles[:, k]] for k in range(3))
    turn = (q[:, 0] - p[:, 0]) * (r[:, 1] - p[:, 1]) - (q[:, 1] - p[:, 1]) * (r[:, 0] - p[:, 0])
    triangles[turn < 0] = triangles[turn < 0][:, [0, 2, 1]]
    # The projected polygon's area is half the Newell length; the triangles must cover it once.
    if abs(float(np.abs(turn).sum()) - area2) > 1e-6 * area2:
        raise PolygonError(polygon, f"polygon of {n} corners could not be cut into triangles (it touches itself)")
    return ring[triangles]


def _crosses_itself(points: np.ndarray, zero: float) -> bool:
    """Whether two edges of the closed 2-D polyline cross at a point inside both.

    Edges that only touch (at a shared corner, or end on each other) do not count: ear clipping
    copes with those, and the area check after it catches what it cannot.
    """
    start, end = points, np.roll(points, -1, axis=0)

    def side(p, q, r):
        turn = (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])
        return np.where(np.abs(turn) <= zero, 0, np.sign(turn))

    for first in range(0, len(points), _EDGE_BLOCK):
        a, b = start[first : first + _EDGE_BLOCK, None], end[first : first + _EDGE_BLOCK, None]
        c, d = start[None], end[None]
        if ((side(a, b, c) * side(a, b, d) < 0) & (side(c, d, a) * side(c, d, b) < 0)).any():
            return True
    return False
