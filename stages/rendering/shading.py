"""Shaded input images of a scene at CoReNet's two realism levels, and per-pixel object ids.

Low realism: each object in one flat colour, Lambertian (face normals, two-sided) under a point
light at the camera (headlight) plus ambient, on a uniform background; no randomness.

High realism: the same objects on a textured floor (world y = lowest point of the objects) under
a procedural sky, lit by a random directional key light with shadow-mapped cast shadows, a
dimmed headlight as fill, ambient sky light, distance fog at the horizon, 2x2 supersampling and a
random exposure; everything random comes from `rng` (see `environment.sample_look`,
`high_realism.high_realism_radiance`).

Colours are treated as display values (no gamma curve), so a low-realism pixel is exactly
colour * (LOW_AMBIENT + LOW_DIFFUSE * cos(incidence)), rounded to 8 bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.camera import image_to_pixel
from stages.rendering.environment import HighRealismLook, sample_look
from stages.rendering.high_realism import high_realism_radiance
from stages.rendering.surfaces import SceneGeometry, camera_center, unproject, visible_surfaces

LOW_AMBIENT = 0.3
LOW_DIFFUSE = 0.6
LOW_BACKGROUND = (1.0, 1.0, 1.0)
HIGH_SUPERSAMPLING = 2
REALISMS = ("low", "high")


@dataclass
class SceneObject:
    """One object of a scene: a triangle mesh in world space and its flat RGB colour in [0, 1]."""

    vertices: np.ndarray  # [N, 3] float64, world space
    faces: np.ndarray  # [M, 3] int64
    color: np.ndarray  # [3] float

    def __post_init__(self):
        self.vertices = np.asarray(self.vertices, dtype=np.float64).reshape(-1, 3)
        self.faces = np.asarray(self.faces, dtype=np.int64).reshape(-1, 3)
        self.color = np.asarray(self.color, dtype=np.float64).reshape(3)
        if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= len(self.vertices)):
            raise ValueError("face index out of range")


def _world_to_image(view_transform, camera_transform) -> np.ndarray:
    return np.asarray(camera_transform, dtype=np.float64) @ np.asarray(
        view_transform, dtype=np.float64
    )


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def render_object_ids(
    objects, view_transform, camera_transform, width: int, height: int
) -> np.ndarray:
    """Index of the object visible at each pixel centre, -1 where none: int16 [H, W].

    Uses the same rasteriser and sampling as the low-realism image, so ids line up with it
    pixel for pixel.
    """
    geometry = SceneGeometry.from_objects(objects)
    world_to_pixel = image_to_pixel(width, height) @ _world_to_image(
        view_transform, camera_transform
    )
    visible = visible_surfaces(geometry, world_to_pixel, width, height)
    ids = np.full((height, width), -1, np.int16)
    ids[visible.rows, visible.cols] = geometry.face_object[visible.face[visible.rows, visible.cols]]
    return ids


def render_scene(
    objects,
    view_transform: np.ndarray,
    camera_transform: np.ndarray,
    width: int,
    height: int,
    realism: str = "low",
    rng: np.random.Generator | int | None = None,
    *,
    shadows: bool = True,
    look: HighRealismLook | None = None,
) -> np.ndarray:
    """Render `objects` (SceneObjects in world space) to a uint8 RGB image [H, W, 3].

    view_transform maps world -> reconstruction space and camera_transform reconstruction ->
    image space (a perspective camera), as stored in a scene row. `rng` (a Generator or a seed)
    drives the high-realism look and is unused at low realism. Keyword-only: `shadows=False`
    turns off cast shadows; `look` replaces the random look (then `rng` is not consumed).
    """
    if realism not in REALISMS:
        raise ValueError(f"realism must be one of {REALISMS}, got {realism!r}")
    if width <= 0 or height <= 0:
        raise ValueError("width and height must be positive")
    world_to_image = _world_to_image(view_transform, camera_transform)
    geometry = SceneGeometry.from_objects(objects)
    if realism == "low":
        return _to_uint8(_low_realism(geometry, world_to_image, width, height))
    if look is None:
        if rng is None:
            raise ValueError("high realism needs an rng (Generator or seed)")
        look = sample_look(np.random.default_rng(rng), _camera_forward_xz(world_to_image))
    ss = HIGH_SUPERSAMPLING
    radiance = high_realism_radiance(
        geometry, world_to_image, width * ss, height * ss, look, shadows
    )
    radiance = radiance.reshape(height, ss, width, ss, 3).mean(axis=(1, 3))
    return _to_uint8(radiance * look.exposure)


def _camera_forward_xz(world_to_image: np.ndarray) -> np.ndarray | None:
    # Pixel (1, 1) of a 2x2 image is the image centre.
    world_to_pixel = image_to_pixel(2, 2) @ world_to_image
    centre = unproject(np.linalg.inv(world_to_pixel), 1.0, 1.0, 0.5)
    forward = (centre - camera_center(world_to_pixel))[[0, 2]]
    return forward if np.linalg.norm(forward) > 1e-9 else None


def _low_realism(geometry: SceneGeometry, world_to_image, width, height) -> np.ndarray:
    world_to_pixel = image_to_pixel(width, height) @ world_to_image
    visible = visible_surfaces(geometry, world_to_pixel, width, height)
    image = np.empty((height, width, 3))
    image[:] = LOW_BACKGROUND
    face = visible.face[visible.rows, visible.cols]
    to_eye = camera_center(world_to_pixel) - visible.points
    to_eye /= np.linalg.norm(to_eye, axis=1, keepdims=True)
    # |cos| makes faces two-sided: the headlight always lights the side the camera sees.
    cos = np.abs(np.einsum("ij,ij->i", geometry.face_normals[face], to_eye))
    shade = LOW_AMBIENT + LOW_DIFFUSE * cos
    image[visible.rows, visible.cols] = geometry.colors[geometry.face_object[face]] * shade[:, None]
    return image
