"""What the camera sees: a scene's merged triangles, the visible surface point per pixel, rays.

World positions of visible surface points are recovered by unprojecting each pixel centre with
its rasterised NDC depth through the inverse world -> pixel matrix. This is exact for a
perspective camera (NDC z is affine in screen space), needs no per-face perspective-correct
barycentrics even for near-clipped triangles, and float64 keeps it accurate despite CoReNet's
tiny near plane (1e-4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.rendering.rasterizer import project_and_clip, rasterize


@dataclass(frozen=True)
class SceneGeometry:
    """All objects' triangles in one world-space mesh, remembering which object owns a face."""

    vertices: np.ndarray  # [N, 3]
    faces: np.ndarray  # [M, 3]
    face_object: np.ndarray  # [M] index of the owning object
    face_normals: np.ndarray  # [M, 3] unit, zero for degenerate faces
    colors: np.ndarray  # [objects, 3]

    @classmethod
    def from_objects(cls, objects) -> SceneGeometry:
        """Merge objects that have `vertices`, `faces` and `color` (e.g. SceneObject)."""
        vertices, faces, owner, colors = [], [], [], []
        offset = 0
        for index, obj in enumerate(objects):
            vertices.append(np.asarray(obj.vertices, dtype=np.float64).reshape(-1, 3))
            faces.append(np.asarray(obj.faces, dtype=np.int64).reshape(-1, 3) + offset)
            owner.append(np.full(len(faces[-1]), index, np.int64))
            colors.append(np.asarray(obj.color, dtype=np.float64).reshape(3))
            offset += len(vertices[-1])
        v = np.concatenate(vertices) if vertices else np.zeros((0, 3))
        f = np.concatenate(faces) if faces else np.zeros((0, 3), np.int64)
        normals = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        normals = np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)
        face_object = np.concatenate(owner) if owner else np.zeros(0, np.int64)
        return cls(v, f, face_object, normals, np.array(colors).reshape(-1, 3))


def camera_center(world_to_pixel: np.ndarray) -> np.ndarray:
    """World position of a perspective camera's eye."""
    # The eye is the one point that projects to x = y = w = 0.
    rows = world_to_pixel[[0, 1, 3]]
    return np.linalg.solve(rows[:, :3], -rows[:, 3])


def unproject(pixel_to_world: np.ndarray, x, y, z) -> np.ndarray:
    """World points [..., 3] at pixel coordinates (x, y) and NDC depth z."""
    h = np.stack([x, y, z, np.ones_like(x)], axis=-1) @ pixel_to_world.T
    return h[..., :3] / h[..., 3:]


def ray_basis(world_to_pixel: np.ndarray) -> np.ndarray:
    """3x3 B such that B @ (x, y, 1) is the (unnormalised) view ray through pixel point (x, y)."""
    # With Q, q the x, y, w rows of the projection, a world point X seen at pixel (x, y) obeys
    # Q X + q = w (x, y, 1), so X = eye + w Q^-1 (x, y, 1): ray directions are linear in the
    # pixel coordinates, and w > 0 in front of the camera fixes their sign.
    return np.linalg.inv(world_to_pixel[[0, 1, 3], :3])


def pixel_rays(basis: np.ndarray, x, y, normalize: bool = True) -> np.ndarray:
    """View rays [..., 3] through pixel points (x, y); see `ray_basis`."""
    rays = x[..., None] * basis[:, 0] + y[..., None] * basis[:, 1] + basis[:, 2]
    if normalize:
        rays /= np.sqrt(np.einsum("...i,...i->...", rays, rays))[..., None]
    return rays


def facing_camera(normals: np.ndarray, to_eye: np.ndarray) -> np.ndarray:
    """Flip normals towards the camera: surfaces are two-sided (ShapeNet winding is arbitrary)."""
    sign = np.where(np.einsum("ij,ij->i", normals, to_eye) < 0, -1.0, 1.0)
    return normals * sign[:, None]


@dataclass(frozen=True)
class VisibleSurfaces:
    """The nearest surface at each pixel centre."""

    face: np.ndarray  # [H, W] face of SceneGeometry per pixel, -1 where no object
    rows: np.ndarray  # [K] covered pixels
    cols: np.ndarray  # [K]
    points: np.ndarray  # [K, 3] world positions of the covered pixels


def visible_surfaces(
    geometry: SceneGeometry, world_to_pixel: np.ndarray, width: int, height: int
) -> VisibleSurfaces:
    """Rasterise `geometry` seen through `world_to_pixel` (world -> pixel x, y and NDC z)."""
    pv, faces, source = project_and_clip(geometry.vertices, geometry.faces, world_to_pixel)
    depth, face_id, _ = rasterize(pv, faces, width, height)
    face = np.full(face_id.shape, -1, np.int64)
    covered = face_id >= 0
    face[covered] = source[face_id[covered]]
    rows, cols = np.nonzero(covered)
    points = unproject(np.linalg.inv(world_to_pixel), cols + 0.5, rows + 0.5, depth[rows, cols])
    return VisibleSurfaces(face, rows, cols, points)
