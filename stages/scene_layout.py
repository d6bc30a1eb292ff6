"""CoReNet-style scene layouts: objects rotated about the vertical axis, scaled and placed on a
common floor inside the unit cube, without intersecting each other.

World space is CoReNet's reconstruction space (view_transform is the identity): the unit cube,
+y up (it appears upwards through the CoReNet camera), +z away from the camera. ShapeNet meshes
are normalised with +y up, so an object only turns about y. Non-intersection is guaranteed
conservatively: the axis-aligned footprints (x-z rectangles of the rotated bounding boxes) of two
objects never overlap, and every object rests on the floor, so their volumes are disjoint.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

FLOOR_Y = 0.05  # the floor sits just above the cube's bottom face so it stays inside the grid
MARGIN = 0.02  # distance kept between objects and the cube's side faces


@dataclass(frozen=True)
class LayoutConfig:
    """Size range of an object's largest rotated horizontal or vertical extent, per scene size."""

    min_extent: float
    max_extent: float
    max_tries: int = 200


# Larger objects when alone, as in CoReNet's single-object scenes; pairs and triplets share space.
LAYOUTS = {
    1: LayoutConfig(0.65, 0.9),
    2: LayoutConfig(0.38, 0.55),
    3: LayoutConfig(0.3, 0.45),
}


@dataclass(frozen=True)
class MeshBounds:
    lo: np.ndarray  # float64 [3], in the mesh's own (normalised) coordinates
    hi: np.ndarray


def rotation_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    m = np.eye(4)
    m[0, 0], m[0, 2], m[2, 0], m[2, 2] = c, s, -s, c
    return m


def _footprint(bounds: MeshBounds, angle: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """x-z extent (half sizes) and centre offset of the rotated, scaled bounding box."""
    corners = np.array(
        [[x, z] for x in (bounds.lo[0], bounds.hi[0]) for z in (bounds.lo[2], bounds.hi[2])]
    )
    c, s = math.cos(angle), math.sin(angle)
    # rotation_y maps (x, z) to (c x + s z, -s x + c z)
    rotated = np.stack([c * corners[:, 0] + s * corners[:, 1], -s * corners[:, 0] + c * corners[:, 1]], 1)
    lo, hi = rotated.min(0) * scale, rotated.max(0) * scale
    return lo, hi


def place_objects(bounds: list[MeshBounds], rng: np.random.Generator) -> list[np.ndarray]:
    """Object-to-world 4x4 transforms for a scene of len(bounds) objects (non-intersecting).

    Draws a turn about y and a size for each object, then positions on the floor by rejection;
    when a draw does not fit, the sizes shrink by 10% and the placement is drawn again.
    """
    config = LAYOUTS.get(len(bounds), LAYOUTS[3])
    angles = rng.uniform(0, 2 * math.pi, len(bounds))
    extents = rng.uniform(config.min_extent, config.max_extent, len(bounds))
    shrink = 1.0
    for _ in range(50):
        placed: list[tuple[np.ndarray, np.ndarray]] = []
        transforms: list[np.ndarray] = []
        for b, angle, extent in zip(bounds, angles, extents):
            size = np.max(b.hi - b.lo)
            scale = extent * shrink / size
            fp_lo, fp_hi = _footprint(b, angle, scale)
            height = (b.hi[1] - b.lo[1]) * scale
            room_lo = MARGIN - fp_lo
            room_hi = 1 - MARGIN - fp_hi
            if np.any(room_hi < room_lo) or FLOOR_Y + height > 1 - MARGIN:
                break
            for _ in range(config.max_tries):
                xz = rng.uniform(room_lo, room_hi)
                box = (xz + fp_lo, xz + fp_hi)
                if all(np.any(box[0] >= o_hi) or np.any(box[1] <= o_lo) for o_lo, o_hi in placed):
                    break
            else:
                break
            placed.append(box)
            m = np.eye(4)
            m[0, 3], m[1, 3], m[2, 3] = xz[0], FLOOR_Y - b.lo[1] * scale, xz[1]
            transforms.append(m @ rotation_y(angle) @ np.diag([scale, scale, scale, 1.0]))
        else:
            return transforms
        shrink *= 0.9
    raise RuntimeError(f"could not place {len(bounds)} objects without overlap")


def world_bounds(bounds: MeshBounds, object_to_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World-space axis-aligned box of a placed object's bounding box (for checks and tests)."""
    corners = np.array(
        [[x, y, z, 1.0] for x in (bounds.lo[0], bounds.hi[0]) for y in (bounds.lo[1], bounds.hi[1]) for z in (bounds.lo[2], bounds.hi[2])]
    )
    world = corners @ object_to_world.T
    return world[:, :3].min(0), world[:, :3].max(0)
