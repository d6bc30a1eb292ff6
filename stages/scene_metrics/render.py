"""Render a triangle mesh into a depth map of a pinhole camera (K, camera-to-world).

Replaces the pyrender/OpenGL renderer of VoRTX's scripts/evaluate.py with our CPU z-buffer
(`stages.rendering.rasterizer`), so no EGL/OSMesa is needed.
"""

from __future__ import annotations

import numpy as np
import trimesh

from stages.rendering.rasterizer import project_and_clip, rasterize

NEAR = 0.01  # metres: geometry closer to the camera is clipped
FAR = 100.0  # metres


def world_to_clip(K: np.ndarray, cam_to_world: np.ndarray, near: float = NEAR, far: float = FAR) -> np.ndarray:
    """float64 [4, 4]: world point -> homogeneous (rasterizer pixel x, pixel y, NDC z, w = depth).

    Camera axes are OpenCV's (x right, y down, z forward) and K's pixel centres sit at integer
    coordinates, while the rasterizer samples pixel c at c + 0.5: hence the +0.5 on cx, cy.
    NDC z is -1 at `near` and +1 at `far`.
    """
    R = np.asarray(cam_to_world, dtype=np.float64)[:3, :3]
    t = np.asarray(cam_to_world, dtype=np.float64)[:3, 3]
    extrinsic = np.eye(4)
    extrinsic[:3, :3] = R.T
    extrinsic[:3, 3] = -R.T @ t
    a = (far + near) / (far - near)
    b = -2.0 * far * near / (far - near)
    projection = np.array(
        [
            [K[0, 0], K[0, 1], K[0, 2] + 0.5, 0.0],
            [0.0, K[1, 1], K[1, 2] + 0.5, 0.0],
            [0.0, 0.0, a, b],
            [0.0, 0.0, 1.0, 0.0],
        ]
    )
    return projection @ extrinsic


def render_depth(mesh: trimesh.Trimesh, K: np.ndarray, cam_to_world: np.ndarray, width: int,
                 height: int, near: float = NEAR, far: float = FAR) -> np.ndarray:
    """float64 [height, width] camera depth z (metres) of the nearest surface, 0 where none.

    mesh: world metres (both windings drawn); K: [3, 3] pixels; cam_to_world: [4, 4]. Pixel
    (row r, column c) is sampled on the ray through (u, v) = (c, r) of K.
    """
    if len(mesh.faces) == 0:
        return np.zeros((height, width))
    pixels, faces, _ = project_and_clip(mesh.vertices, mesh.faces, world_to_clip(K, cam_to_world, near, far))
    ndc, _, _ = rasterize(pixels, faces, width, height)
    a = (far + near) / (far - near)
    b = -2.0 * far * near / (far - near)
    hit = np.isfinite(ndc)
    depth = np.zeros((height, width))
    depth[hit] = b / (ndc[hit] - a)
    return depth
