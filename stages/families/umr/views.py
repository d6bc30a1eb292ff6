"""Pictures of a UMR prediction for the qualitative PNGs: the mesh shaded from three views and
the textured render under the predicted camera, with the soft rasterizer (no anti-aliasing)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ...models.umr import orthographic_project, to_ndc
from ...models.umr_losses import OFFSET_Z, render_hypotheses
from ...rendering.soft_rasterizer import SoftRasterSettings, soft_rasterize

PICTURE_SETTINGS = dict(sigma=1e-6, gamma=1e-4, dist_eps=1e-4)


def turned_camera(cam: torch.Tensor, degrees: float) -> torch.Tensor:
    """cam [7] composed with a turn of `degrees` about the image's vertical axis (after the
    predicted rotation), centred (translation 0)."""
    half = math.radians(degrees) / 2
    turn = cam.new_tensor([math.cos(half), 0.0, math.sin(half), 0.0])
    w1, v1 = turn[0], turn[1:]
    w2, v2 = cam[3], cam[4:7]
    quat = torch.cat([(w1 * w2 - (v1 * v2).sum())[None], w1 * v2 + w2 * v1 + torch.cross(v1, v2, dim=0)])
    return torch.cat([cam[:1], cam.new_zeros(2), quat])


def shaded_mesh(vertices: torch.Tensor, faces: torch.Tensor, cam: torch.Tensor, size: int) -> np.ndarray:
    """uint8 [size, size, 3]: the mesh [V, 3] under camera [7], faces Lambert-shaded by the
    cosine of their normal with the viewing direction, on white."""
    screen = orthographic_project(vertices[None], cam[None], OFFSET_Z)[0]
    tri = screen[faces]
    normal = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1)
    shade = normal[:, 2].abs() / normal.norm(dim=1).clamp_min(1e-12)
    colour = torch.stack([0.35 + 0.55 * shade, 0.45 + 0.5 * shade, 0.6 + 0.4 * shade], dim=1)
    settings = SoftRasterSettings(image_size=size, background=(1.0, 1.0, 1.0), **PICTURE_SETTINGS)
    image = soft_rasterize(to_ndc(screen)[None], faces, colour[None], settings, "face")[0]
    return (image[:3].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def textured(vertices: torch.Tensor, faces: torch.Tensor, cam: torch.Tensor, colours: torch.Tensor, size: int) -> np.ndarray:
    """uint8 [size, size, 3]: the mesh with its surface texture colours [F, T*T, 3] under cam."""
    settings = SoftRasterSettings(image_size=size, background=(1.0, 1.0, 1.0), **PICTURE_SETTINGS)
    image = render_hypotheses(vertices[None], faces, cam[None, None], settings, colours[None])[0, 0]
    return (image[:3].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def mask_picture(mask: np.ndarray) -> np.ndarray:
    grey = (np.clip(mask, 0, 1) * 255).round().astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def qualitative_row(image: torch.Tensor, truth: np.ndarray, silhouette: np.ndarray, vertices: torch.Tensor,
                    faces: torch.Tensor, cam: torch.Tensor, colours: torch.Tensor, size: int) -> np.ndarray:
    """input | ground-truth mask | predicted mask | mesh from the predicted camera and turned by
    90 and 180 degrees | textured render: uint8 [size, 7 x size + gaps, 3]."""
    from PIL import Image

    def fit(a: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(a).resize((size, size), Image.NEAREST))

    tiles = [fit((image.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)),
             fit(mask_picture(truth)), fit(mask_picture(silhouette))]
    tiles += [shaded_mesh(vertices, faces, c, size) for c in (cam, turned_camera(cam, 90), turned_camera(cam, 180))]
    tiles.append(textured(vertices, faces, cam, colours, size))
    gap = np.full((size, 4, 3), 40, np.uint8)
    row = []
    for tile in tiles:
        row += [tile, gap]
    return np.concatenate(row[:-1], axis=1)

