"""CoReNet's camera: 4x4 matrices for look-at and perspective projection, and point projection.

Conventions follow CoReNet's data documentation: a 4x4 matrix M maps a point p to
(M @ [p, 1])[:3] / w. The reconstruction space is the unit cube; `camera_transform` maps it to
image space where x points right, y points down, and the image spans [-1, 1] in both axes.
With the CoReNet camera, world +y appears upwards in the image and +z points away from the
camera, so voxel index k (depth) grows away from the viewer.
"""

from __future__ import annotations

import math

import numpy as np

CORENET_EYE = (0.5, 0.5, 0.5 - 1.3666666)
CORENET_CENTER = (0.5, 0.5, 0.5)
CORENET_UP = (0.0, -1.0, 0.0)
CORENET_FOV_Y_DEG = 60.0
CORENET_Z_NEAR = 0.0001
CORENET_Z_FAR = 10.0


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def look_at_rh(eye, center, up) -> np.ndarray:
    """Right-handed look-at matrix (world -> camera, camera looks down -z)."""
    eye, center, up = (np.asarray(a, dtype=np.float64) for a in (eye, center, up))
    f = _normalize(center - eye)
    s = _normalize(np.cross(f, up))
    u = np.cross(s, f)
    m = np.eye(4)
    m[0, :3], m[0, 3] = s, -s @ eye
    m[1, :3], m[1, 3] = u, -u @ eye
    m[2, :3], m[2, 3] = -f, f @ eye
    return m


def perspective_rh(fov_y: float, aspect: float, z_near: float, z_far: float) -> np.ndarray:
    """Right-handed OpenGL-style perspective projection (camera -> clip space)."""
    t = 1.0 / math.tan(fov_y / 2)
    m = np.zeros((4, 4))
    m[0, 0] = t / aspect
    m[1, 1] = t
    m[2, 2] = -(z_far + z_near) / (z_far - z_near)
    m[2, 3] = -(2 * z_far * z_near) / (z_far - z_near)
    m[3, 2] = -1.0
    return m


def corenet_camera_transform() -> np.ndarray:
    """The camera_transform used for every scene of CoReNet's released data."""
    proj = perspective_rh(math.radians(CORENET_FOV_Y_DEG), 1.0, CORENET_Z_NEAR, CORENET_Z_FAR)
    return proj @ look_at_rh(CORENET_EYE, CORENET_CENTER, CORENET_UP)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to [..., 3] points, with the perspective divide."""
    points = np.asarray(points, dtype=np.float64)
    homo = points @ matrix[:3, :3].T + matrix[:3, 3]
    w = points @ matrix[3, :3] + matrix[3, 3]
    return homo / w[..., None]


def homogeneous_w(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The w coordinate of points after `matrix` (positive in front of a perspective camera)."""
    return np.asarray(points, dtype=np.float64) @ matrix[3, :3] + matrix[3, 3]


def image_to_pixel(width: int, height: int) -> np.ndarray:
    """Image space ([-1, 1]^2, y down) -> pixel coordinates (0..width, 0..height)."""
    m = np.eye(4)
    m[0, 0], m[0, 3] = width / 2, width / 2
    m[1, 1], m[1, 3] = height / 2, height / 2
    return m


def world_to_voxel(view_transform: np.ndarray, resolution: int) -> np.ndarray:
    """World -> voxel space: voxel (i, j, k) spans [i, i+1] x [j, j+1] x [k, k+1]."""
    return np.diag([resolution, resolution, resolution, 1.0]) @ view_transform
