"""Shadow mapping for a directional light: an orthographic depth map seen from the light.

Depths are stored in units of the scene's bounding radius along the light direction (smaller is
nearer to the light), so one bias works for scenes of any scale. Lookups use percentage-closer
filtering: a grid of taps, each a bilinear blend of four depth comparisons, so shadow edges are
soft and free of texel staircases.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from stages.camera import image_to_pixel, transform_points
from stages.rendering.rasterizer import project_and_clip, rasterize


@dataclass(frozen=True)
class ShadowMap:
    """Depth from the light: `world_to_map` maps world points to (texel x, texel y, depth)."""

    depth: np.ndarray  # [S, S] float64, +inf where no occluder
    world_to_map: np.ndarray  # 4x4, affine
    texel_size: float  # world units per texel

    @property
    def texel_depth(self) -> float:
        """One texel expressed in the depth units of `depth`."""
        return 2.0 / self.depth.shape[0]


def _light_frame(direction_to_light: np.ndarray) -> np.ndarray:
    forward = -direction_to_light / np.linalg.norm(direction_to_light)
    helper = np.array([1.0, 0.0, 0.0]) if abs(forward[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    right = np.cross(helper, forward)
    right /= np.linalg.norm(right)
    up = np.cross(forward, right)
    return np.stack([right, up, forward])


def build_shadow_map(
    vertices: np.ndarray, faces: np.ndarray, direction_to_light: np.ndarray, resolution: int
) -> ShadowMap:
    """Rasterise the occluders' depth seen along `direction_to_light` (unit, towards the light).

    The orthographic frustum is fitted to the bounding sphere of `vertices`, so every occluder
    lands on the map; receivers outside it (far floor) are simply lit.
    """
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    centre = (lo + hi) / 2
    radius = max(float(np.linalg.norm(hi - lo)) / 2 * 1.02, 1e-6)
    frame = _light_frame(np.asarray(direction_to_light, dtype=np.float64))
    to_light_box = np.eye(4)
    to_light_box[:3, :3] = frame / radius
    to_light_box[:3, 3] = -(frame @ centre) / radius
    # Flip y so the map's rows run like image rows; image_to_pixel expects y down.
    to_light_box[1] *= -1
    world_to_map = image_to_pixel(resolution, resolution) @ to_light_box
    pv, f, _ = project_and_clip(vertices, faces, world_to_map)
    depth, _, _ = rasterize(pv, f, resolution, resolution)
    return ShadowMap(depth, world_to_map, 2 * radius / resolution)


@njit(cache=True, nogil=True)
def _lit_fraction(depth, u, v, z):
    # Bilinear blend of the four nearest depth comparisons (texel centres at +0.5).
    size_y, size_x = depth.shape
    fu, fv = u - 0.5, v - 0.5
    c0, r0 = int(np.floor(fu)), int(np.floor(fv))
    wu, wv = fu - c0, fv - r0
    lit = 0.0
    for dr in range(2):
        for dc in range(2):
            r, c = r0 + dr, c0 + dc
            weight = (wu if dc else 1.0 - wu) * (wv if dr else 1.0 - wv)
            if r < 0 or c < 0 or r >= size_y or c >= size_x or depth[r, c] >= z:
                lit += weight
    return lit


@njit(cache=True, nogil=True)
def _pcf(depth, points, bias, radius_texels):
    n = points.shape[0]
    out = np.empty(n)
    for i in range(n):
        u, v, z = points[i, 0], points[i, 1], points[i, 2] - bias[i]
        total = 0.0
        for dy in (-1.0, 0.0, 1.0):
            for dx in (-1.0, 0.0, 1.0):
                total += _lit_fraction(depth, u + dx * radius_texels, v + dy * radius_texels, z)
        out[i] = total / 9.0
    return out


def light_visibility(
    shadow_map: ShadowMap,
    points: np.ndarray,
    normals: np.ndarray,
    direction_to_light: np.ndarray,
    softness_texels: float,
) -> np.ndarray:
    """Fraction in [0, 1] of the key light reaching each world point (1 = fully lit).

    Acne is avoided with a normal offset (the query moves one texel off the surface) plus a
    slope-scaled depth bias that covers the depth change across the filter footprint.
    """
    if len(points) == 0:
        return np.zeros(0)
    cos = np.clip(normals @ direction_to_light, 0.05, 1.0)
    tan = np.sqrt(1.0 - cos**2) / cos
    query = points + normals * shadow_map.texel_size
    mapped = np.ascontiguousarray(transform_points(shadow_map.world_to_map, query))
    bias = shadow_map.texel_depth * (1.0 + np.minimum(tan, 8.0) * (1.5 + softness_texels))
    return _pcf(shadow_map.depth, mapped, np.ascontiguousarray(bias), float(softness_texels))
