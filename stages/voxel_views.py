"""Pictures of voxel grids for qualitative results: each occupied voxel's exposed faces become
two triangles, shaded with the low-realism renderer from the input camera and from cameras
turned about the scene's vertical axis.
"""

from __future__ import annotations

import math

import numpy as np

from .camera import CORENET_CENTER, CORENET_EYE, CORENET_FOV_Y_DEG, CORENET_UP, look_at_rh, perspective_rh
from .rendering.shading import SceneObject, render_scene

# one colour per label (0 = void is never drawn); a fixed, distinguishable palette
PALETTE = np.array(
    [[0.5, 0.5, 0.5], [0.90, 0.10, 0.15], [0.24, 0.71, 0.29], [1.00, 0.88, 0.10], [0.00, 0.51, 0.78],
     [0.96, 0.51, 0.19], [0.57, 0.12, 0.71], [0.27, 0.94, 0.94], [0.94, 0.20, 0.90], [0.82, 0.96, 0.24],
     [0.98, 0.75, 0.83], [0.00, 0.50, 0.50], [0.67, 0.43, 0.16], [0.50, 0.00, 0.00]]
)

# per axis: the two in-plane axes used to span the face quad
_AXES = {0: (1, 2), 1: (2, 0), 2: (0, 1)}


def exposed_faces(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """labels [D, H, W] ([z, y, x], 0 empty) -> vertices [V, 3] in reconstruction space
    (x, y, z in [0, 1]), triangles [T, 3], label per triangle [T]."""
    labels = np.asarray(labels)
    res = np.array(labels.shape[::-1], dtype=np.float64)  # (W, H, D) = sizes along x, y, z
    occupied = labels > 0
    padded = np.pad(occupied, 1)
    verts, tris, tri_labels = [], [], []
    count = 0
    for axis_xyz in range(3):
        axis_grid = 2 - axis_xyz  # grid axis of x is 2, of y 1, of z 0
        for direction in (-1, 1):
            neighbour = np.roll(padded, -direction, axis=axis_grid)[1:-1, 1:-1, 1:-1]
            k, j, i = np.nonzero(occupied & ~neighbour)
            if not len(k):
                continue
            base = np.stack([i, j, k], axis=1).astype(np.float64)
            base[:, axis_xyz] += 1.0 if direction > 0 else 0.0
            u, v = _AXES[axis_xyz]
            du = np.zeros(3)
            dv = np.zeros(3)
            du[u], dv[v] = 1.0, 1.0
            quad = np.stack([base, base + du, base + du + dv, base + dv], axis=1)  # [n, 4, 3]
            verts.append((quad / res).reshape(-1, 3))
            idx = count + 4 * np.arange(len(k))[:, None]
            tris.append(np.concatenate([idx + [0, 1, 2], idx + [0, 2, 3]]))
            lab = labels[k, j, i]
            tri_labels.append(np.concatenate([lab, lab]))
            count += 4 * len(k)
    if not verts:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros(0, np.int64)
    return np.concatenate(verts), np.concatenate(tris).astype(np.int64), np.concatenate(tri_labels).astype(np.int64)


def orbit_camera(azimuth_deg: float, elevation_deg: float = 20.0) -> np.ndarray:
    """CoReNet's camera turned by `azimuth_deg` about the vertical axis through the cube centre
    and raised by `elevation_deg` (reconstruction -> image space)."""
    centre = np.array(CORENET_CENTER)
    offset = np.array(CORENET_EYE) - centre
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    dist = np.linalg.norm(offset)
    direction = np.array([math.sin(a) * math.cos(e), math.sin(e), -math.cos(a) * math.cos(e)])
    eye = centre + dist * direction
    proj = perspective_rh(math.radians(CORENET_FOV_Y_DEG), 1.0, 0.0001, 10.0)
    return proj @ look_at_rh(eye, centre, CORENET_UP)


def render_labels(labels: np.ndarray, camera_transform: np.ndarray, size: int) -> np.ndarray:
    """uint8 [size, size, 3] picture of a label grid seen through camera_transform."""
    verts, tris, tri_labels = exposed_faces(labels)
    objects = []
    for label in np.unique(tri_labels):
        chosen = tris[tri_labels == label]
        used, remapped = np.unique(chosen, return_inverse=True)
        objects.append(SceneObject(verts[used], remapped.reshape(-1, 3), PALETTE[label % len(PALETTE)]))
    if not objects:
        return np.full((size, size, 3), 255, np.uint8)
    return render_scene(objects, np.eye(4), camera_transform, size, size, "low")


def comparison_grid(image: np.ndarray, predicted: np.ndarray, truth: np.ndarray, camera: np.ndarray,
                    size: int = 128, azimuths=(60.0, -60.0)) -> np.ndarray:
    """One row: input | prediction from the input camera and orbit views | the same for truth."""
    from PIL import Image

    cameras = [camera] + [orbit_camera(a) for a in azimuths]
    tiles = [np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))]
    for grid in (predicted, truth):
        tiles += [render_labels(grid, cam, size) for cam in cameras]
    separator = np.full((size, 4, 3), 40, np.uint8)
    row = []
    for tile in tiles:
        row += [tile, separator]
    return np.concatenate(row[:-1], axis=1)
