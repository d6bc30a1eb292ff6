"""Linear radiance of a high-realism image: floor, sky, key light with cast shadows, fill light.

The floor is not rasterised: it is an infinite plane (world y = lowest object point) intersected
analytically with each pixel's view ray, which extends it to the horizon without near-plane
trouble and also gives the exact footprint of the pixel on the floor for texture filtering.
Objects do not receive fog (they sit within a few units of the camera); the floor fades into the
horizon colour so its far edge never shows.
"""

from __future__ import annotations

import numpy as np

from stages.camera import image_to_pixel
from stages.rendering.environment import HighRealismLook, floor_albedo, sky_color
from stages.rendering.shadows import build_shadow_map, light_visibility
from stages.rendering.surfaces import (
    SceneGeometry,
    camera_center,
    facing_camera,
    pixel_rays,
    ray_basis,
    visible_surfaces,
)

SPECULAR = 0.12
SHININESS = 24.0
FLOOR_MAX_DISTANCE = 60.0


def _floor_hits(eye, rays, floor_y):
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (floor_y - eye[1]) / rays[..., 1]
    return np.where((rays[..., 1] < 0) & np.isfinite(t), t, np.inf)


def _floor_footprint(basis, eye, floor_y, width, height) -> np.ndarray:
    """World extent (dx, dz) [H, W, 2] of each pixel on the floor: the box around the floor hits
    of its four corner rays (capped at 1e6 where a corner ray misses the floor)."""
    corner_x, corner_y = np.meshgrid(np.arange(width + 1.0), np.arange(height + 1.0))
    rays = pixel_rays(basis, corner_x, corner_y, normalize=False)
    t = _floor_hits(eye, rays, floor_y)
    footprint = np.empty((height, width, 2))
    for k, axis in enumerate((0, 2)):
        with np.errstate(invalid="ignore"):
            hit = np.where(np.isfinite(t), eye[axis] + t * rays[..., axis], np.inf)
            corners = (hit[:-1, :-1], hit[:-1, 1:], hit[1:, :-1], hit[1:, 1:])
            extent = np.maximum.reduce(corners) - np.minimum.reduce(corners)
        # Capped: beyond this every texture has averaged out, and inf would breed NaNs.
        footprint[..., k] = np.minimum(np.nan_to_num(extent, nan=np.inf), 1e6)
    return footprint


def high_realism_radiance(
    geometry: SceneGeometry,
    world_to_image: np.ndarray,
    width: int,
    height: int,
    look: HighRealismLook,
    shadows: bool = True,
) -> np.ndarray:
    """Linear RGB radiance [H, W, 3] (before exposure) sampled at pixel centres."""
    world_to_pixel = image_to_pixel(width, height) @ world_to_image
    eye = camera_center(world_to_pixel)
    visible = visible_surfaces(geometry, world_to_pixel, width, height)
    basis = ray_basis(world_to_pixel)
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    rays = pixel_rays(basis, cols, rows)
    image = sky_color(look, rays[..., 1])

    key = look.key_direction / np.linalg.norm(look.key_direction)
    shadow_map = None
    if shadows and len(geometry.faces):
        # About two shadow texels per supersampled pixel on objects near the image centre.
        resolution = int(np.clip(2 * max(width, height), 256, 2048))
        shadow_map = build_shadow_map(geometry.vertices, geometry.faces, key, resolution)

    def key_visibility(points, normals):
        if shadow_map is None:
            return np.ones(len(points))
        return light_visibility(shadow_map, points, normals, key, look.shadow_softness)

    object_distance = np.full((height, width), np.inf)
    object_distance[visible.rows, visible.cols] = np.linalg.norm(visible.points - eye, axis=1)
    object_pixels = np.ones(len(visible.rows), bool)

    # A camera below the floor would see its underside hide everything: no floor then.
    if len(geometry.vertices) and eye[1] > geometry.vertices[:, 1].min():
        floor_y = geometry.vertices[:, 1].min()
        t = _floor_hits(eye, rays, floor_y)
        on_floor = (t < FLOOR_MAX_DISTANCE) & (t < object_distance)
        fr, fc = np.nonzero(on_floor)
        distance = t[fr, fc]
        hits = eye + rays[fr, fc] * distance[:, None]
        footprint = _floor_footprint(basis, eye, floor_y, width, height)[fr, fc]
        albedo = floor_albedo(look, hits[:, 0], hits[:, 2], footprint)
        up = np.ascontiguousarray(np.broadcast_to([0.0, 1.0, 0.0], hits.shape))
        direct = max(key[1], 0.0) * key_visibility(hits, up)
        head = (eye[1] - floor_y) / distance
        light = look.ambient + look.key_color * direct[:, None] + look.headlight * head[:, None]
        fog = np.exp(-np.maximum(distance - look.fog_start, 0.0) / look.fog_length)[:, None]
        image[fr, fc] = fog * albedo * light + (1 - fog) * look.sky_horizon
        object_pixels = ~on_floor[visible.rows, visible.cols]

    rows, cols = visible.rows[object_pixels], visible.cols[object_pixels]
    points = visible.points[object_pixels]
    face = visible.face[rows, cols]
    to_eye = eye - points
    to_eye /= np.linalg.norm(to_eye, axis=1, keepdims=True)
    normals = facing_camera(geometry.face_normals[face], to_eye)
    cos_key = np.maximum(normals @ key, 0.0)
    lit = cos_key > 0
    visibility = np.zeros(len(points))
    visibility[lit] = key_visibility(points[lit], normals[lit])
    half = to_eye + key
    half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-12)
    specular = SPECULAR * np.maximum(np.einsum("ij,ij->i", normals, half), 0.0) ** SHININESS
    head = np.abs(np.einsum("ij,ij->i", normals, to_eye))
    albedo = geometry.colors[geometry.face_object[face]]
    diffuse = cos_key * visibility
    light = look.ambient + look.key_color * diffuse[:, None] + look.headlight * head[:, None]
    image[rows, cols] = albedo * light + look.key_color * (specular * visibility)[:, None]
    return image
