"""Triangle-mesh parts for procedural, ShapeNet-like objects.

Every builder returns a ``Mesh``: ``(vertices, faces)`` as float64 ``[N, 3]`` and int64 ``[M, 3]``.
Every part is closed (watertight) and wound counter-clockwise seen from outside, so face normals
point outwards and the signed volume is positive. Objects are made by placing parts and
concatenating them; parts may overlap and intersect, as the CAD models in ShapeNet do, and no
boolean union is attempted.

Builders that have a natural axis (cylinder, cone, lathe, ...) build along +y from ``base`` and
accept ``axis`` (a letter or a 3-vector) to point that axis elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Placement helpers live in ``transforms``; they are re-exported so that one ``parts`` import
# serves a generator.
from stages.synthetic.transforms import (  # noqa: F401
    Mesh,
    apply_matrix,
    as_mesh,
    concatenate,
    flip,
    mirror,
    rotation,
    rotation_from_y,
    signed_volume,
    transform,
    translate,
)


def _outward(mesh: Mesh) -> Mesh:
    # The stitching below is locally consistent by construction; only the global sign depends
    # on the caller's ordering of points, which the enclosed volume reveals.
    return flip(mesh) if signed_volume(mesh) < 0 else mesh


# --------------------------------------------------------------------------- stitching

def _stitch(rings: Sequence[np.ndarray], loop: bool = False) -> Mesh:
    """Skin a stack of rings (each [k, 3], same k) or poles ([1, 3], only first or last).

    Open stacks are closed with a fan around each end ring's centroid, so the result is always
    watertight.
    """
    rings = [np.asarray(r, dtype=np.float64).reshape(-1, 3) for r in rings]
    if len(rings) < 2:
        raise ValueError("need at least two rings")
    k = max(len(r) for r in rings)
    if k < 3:
        raise ValueError("rings need at least three points")
    for i, r in enumerate(rings):
        if len(r) not in (1, k) or (len(r) == 1 and (loop or 0 < i < len(rings) - 1)):
            raise ValueError("only the first or last ring of an open stack may be a pole")

    verts, starts = [], []
    n = 0
    for r in rings:
        starts.append(n)
        verts.append(r)
        n += len(r)
    faces = []
    j = np.arange(k)
    jn = (j + 1) % k
    pairs = [(i, i + 1) for i in range(len(rings) - 1)]
    if loop:
        pairs.append((len(rings) - 1, 0))
    for a, b in pairs:
        sa, sb = starts[a], starts[b]
        if len(rings[a]) == 1:
            faces.append(np.stack([np.full(k, sa), sb + jn, sb + j], axis=1))
        elif len(rings[b]) == 1:
            faces.append(np.stack([sa + j, sa + jn, np.full(k, sb)], axis=1))
        else:
            faces.append(np.stack([sa + j, sa + jn, sb + jn], axis=1))
            faces.append(np.stack([sa + j, sb + jn, sb + j], axis=1))
    if not loop:
        first, last = rings[0], rings[-1]
        if len(first) > 1:
            verts.append(first.mean(axis=0, keepdims=True))
            faces.append(np.stack([np.full(k, n), starts[0] + jn, starts[0] + j], axis=1))
            n += 1
        if len(last) > 1:
            verts.append(last.mean(axis=0, keepdims=True))
            s = starts[-1]
            faces.append(np.stack([np.full(k, n), s + j, s + jn], axis=1))
            n += 1
    return _outward(as_mesh(np.concatenate(verts), np.concatenate(faces)))


def _place(mesh: Mesh, base, axis) -> Mesh:
    return transform(mesh, rotation=rotation_from_y(axis), translation=base)


# --------------------------------------------------------------------------- primitives

def hexahedron(corners) -> Mesh:
    """A six-sided solid from 8 corners: a bottom quad then a top quad, both in the same cyclic
    order (corner 4 above corner 0). Covers boxes, wedges, tapered and sheared blocks."""
    c = np.asarray(corners, dtype=np.float64).reshape(8, 3)
    quads = np.array([[3, 2, 1, 0], [4, 5, 6, 7], [0, 1, 5, 4],
                      [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]])
    faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    return _outward(as_mesh(c, faces))


def box(size, center=(0.0, 0.0, 0.0), rotation: np.ndarray | None = None) -> Mesh:
    """A box with edge lengths ``size`` centred at ``center``, optionally rotated about it."""
    hx, hy, hz = np.asarray(size, dtype=np.float64) / 2.0
    corners = np.array([[-hx, -hy, -hz], [hx, -hy, -hz], [hx, -hy, hz], [-hx, -hy, hz],
                        [-hx, hy, -hz], [hx, hy, -hz], [hx, hy, hz], [-hx, hy, hz]])
    return transform(hexahedron(corners), rotation=rotation, translation=center)


def box_between(lo, hi) -> Mesh:
    """The axis-aligned box spanning corner ``lo`` to corner ``hi``."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    return box(np.abs(hi - lo), (lo + hi) / 2.0)


def beam(start, end, width: float, depth: float | None = None) -> Mesh:
    """A square-section bar from ``start`` to ``end`` (legs, rails, struts at any angle)."""
    start, end = np.asarray(start, dtype=np.float64), np.asarray(end, dtype=np.float64)
    d = end - start
    length = float(np.linalg.norm(d))
    bar = box((width, length, width if depth is None else depth), (0.0, length / 2.0, 0.0))
    return _place(bar, start, d)


def lathe(profile, segments: int = 16, base=(0.0, 0.0, 0.0), axis="y") -> Mesh:
    """Surface of revolution of ``profile`` ([(radius, height), ...]) about the axis.

    An end point with radius 0 becomes a pole (cone tip, sphere pole); otherwise the ends get
    flat caps. Consecutive points must not coincide.
    """
    p = np.asarray(profile, dtype=np.float64).reshape(-1, 2)
    theta = 2.0 * np.pi * np.arange(segments) / segments
    cos, sin = np.cos(theta), np.sin(theta)
    rings = []
    for r, y in p:
        if r <= 1e-12:
            rings.append(np.array([[0.0, y, 0.0]]))
        else:
            rings.append(np.stack([r * cos, np.full(segments, y), r * sin], axis=1))
    return _place(_stitch(rings), base, axis)


def lathe_loop(profile, segments: int = 16, base=(0.0, 0.0, 0.0), axis="y") -> Mesh:
    """Revolve a closed profile polygon (all radii > 0): rings, tori, thick-walled tubes."""
    p = np.asarray(profile, dtype=np.float64).reshape(-1, 2)
    if np.any(p[:, 0] <= 0):
        raise ValueError("a closed profile must stay off the axis")
    theta = 2.0 * np.pi * np.arange(segments) / segments
    cos, sin = np.cos(theta), np.sin(theta)
    rings = [np.stack([r * cos, np.full(segments, y), r * sin], axis=1) for r, y in p]
    return _place(_stitch(rings, loop=True), base, axis)


def cylinder(radius: float, height: float, segments: int = 16, base=(0.0, 0.0, 0.0), axis="y") -> Mesh:
    """Capped cylinder from ``base`` along ``axis``."""
    return frustum(radius, radius, height, segments, base, axis)


def frustum(r_bottom: float, r_top: float, height: float, segments: int = 16,
            base=(0.0, 0.0, 0.0), axis="y") -> Mesh:
    """Capped truncated cone; a zero radius at either end makes it a cone."""
    return lathe([(r_bottom, 0.0), (r_top, height)], segments, base, axis)


def cone(radius: float, height: float, segments: int = 16, base=(0.0, 0.0, 0.0), axis="y") -> Mesh:
    """Cone with its disc at ``base`` and its tip ``height`` along ``axis``."""
    return frustum(radius, 0.0, height, segments, base, axis)


def hollow_frustum(r_bottom: float, r_top: float, height: float, wall: float, segments: int = 16,
                   base=(0.0, 0.0, 0.0), axis="y") -> Mesh:
    """A thick-walled open-ended frustum (lamp shade, speaker surround, exhaust)."""
    profile = [(r_bottom, 0.0), (r_top, height), (r_top - wall, height), (r_bottom - wall, 0.0)]
    return lathe_loop(profile, segments, base, axis)


def ellipsoid(radii, center=(0.0, 0.0, 0.0), segments: int = 16, rings: int = 8) -> Mesh:
    """UV ellipsoid with semi-axes ``radii`` (x, y, z)."""
    phi = np.linspace(0.0, np.pi, rings + 1)
    profile = np.stack([np.sin(phi), -np.cos(phi)], axis=1)
    profile[[0, -1], 0] = 0.0
    unit = lathe(profile, segments)
    return transform(unit, scale=radii, translation=center)


def sphere(radius: float, center=(0.0, 0.0, 0.0), segments: int = 16, rings: int = 8) -> Mesh:
    return ellipsoid((radius, radius, radius), center, segments, rings)


def torus(major_radius: float, minor_radius: float, segments: int = 24, tube_segments: int = 8,
          base=(0.0, 0.0, 0.0), axis="y") -> Mesh:
    """A ring around ``axis`` (tyres, rims, surrounds)."""
    t = 2.0 * np.pi * np.arange(tube_segments) / tube_segments
    profile = np.stack([major_radius + minor_radius * np.cos(t), minor_radius * np.sin(t)], axis=1)
    return lathe_loop(profile, segments, base, axis)


def loft(sections: Sequence[np.ndarray]) -> Mesh:
    """Skin a sequence of cross-sections (each [k, 3], same k, roughly convex), capping both
    ends: hulls, fuselages, car bodies, tapered slabs."""
    return _stitch(sections)


def rounded_rectangle(width: float, depth: float, radius: float, corner_segments: int = 4) -> np.ndarray:
    """Points [k, 2] of a rounded rectangle centred at the origin, counter-clockwise."""
    radius = float(np.clip(radius, 0.0, min(width, depth) / 2.0))
    hx, hz = width / 2.0 - radius, depth / 2.0 - radius
    pts = []
    for cx, cz, a0 in ((hx, hz, 0.0), (-hx, hz, 0.5 * np.pi), (-hx, -hz, np.pi), (hx, -hz, 1.5 * np.pi)):
        a = a0 + np.linspace(0.0, 0.5 * np.pi, corner_segments + 1)
        pts.append(np.stack([cx + radius * np.cos(a), cz + radius * np.sin(a)], axis=1))
    pts = np.concatenate(pts)
    # Drop repeated points where a corner radius (or a straight side) collapses to nothing.
    keep = np.linalg.norm(pts - np.roll(pts, 1, axis=0), axis=1) > 1e-9 * max(width, depth)
    return pts[keep]


def rounded_slab(width: float, depth: float, thickness: float, radius: float, corner_segments: int = 4,
                 base=(0.0, 0.0, 0.0), axis="y") -> Mesh:
    """A slab whose outline is a rounded rectangle (``width`` along x, ``depth`` along z before
    ``axis`` turns it), ``thickness`` along the axis: table tops, phones, screens, cushions."""
    outline = rounded_rectangle(width, depth, radius, corner_segments)
    rings = [np.stack([outline[:, 0], np.full(len(outline), y), outline[:, 1]], axis=1)
             for y in (0.0, thickness)]
    return _place(_stitch(rings), base, axis)


def plate(width: float, height: float, thickness: float, center=(0.0, 0.0, 0.0),
          rotation: np.ndarray | None = None) -> Mesh:
    """A thin panel in the x-y plane (doors, screens, backrests), ``thickness`` along z."""
    return box((width, height, thickness), center, rotation)


def wing(root_chord: float, tip_chord: float, span: float, sweep: float = 0.0,
         thickness: float = 0.12, dihedral: float = 0.0, tip_thickness: float | None = None) -> Mesh:
    """A tapered, swept lifting surface with a lens-like section.

    The root lies in the plane x = 0 with its leading edge at the origin and the chord along +z;
    the tip sits at x = ``span``, its leading edge moved back by ``span * tan(sweep)`` and up by
    ``span * tan(dihedral)``. ``thickness`` is relative to the chord. Mirror it for the other side,
    rotate it for fins, keels and sails.
    """
    # Section as fractions of chord: leading edge, upper surface, trailing edge, lower surface.
    u = np.array([0.0, 0.25, 0.65, 1.0, 0.65, 0.25])
    w = np.array([0.0, 0.5, 0.3, 0.0, -0.25, -0.4])
    tip_t = thickness if tip_thickness is None else tip_thickness

    def section(x, chord, t, z0, y0):
        return np.stack([np.full(6, x), y0 + w * t * chord, z0 + u * chord], axis=1)

    root = section(0.0, root_chord, thickness, 0.0, 0.0)
    tip = section(span, tip_chord, tip_t, span * np.tan(sweep), span * np.tan(dihedral))
    return loft([root, tip])
