"""CoReNet's ray-traced skip connection: image features sampled at projected voxel centres.

Every voxel of a decoder grid (resolution r, covering the reconstruction space, the unit cube)
is projected into the input image with the scene's camera transform; the encoder feature map is
read at the pixel it lands on. Voxels that project outside the image, or lie behind the camera,
get zeros. Voxel (i, j, k) of an r^3 grid (stored [k, j, i] = [z, y, x]) is sampled at the point
((i, j, k) + offset) / r, so offset 0.5 is the voxel centre and other offsets query sub-voxel
positions (used to evaluate a 32^3 model at 128^3).
"""

from __future__ import annotations

import torch
from torch import nn


def sample_points(resolution: int, offset: torch.Tensor) -> torch.Tensor:
    """Reconstruction-space sample points of an r^3 grid: [B, r, r, r, 3] as (x, y, z), [z, y, x] order."""
    axis = torch.arange(resolution, dtype=torch.float32, device=offset.device)
    zz, yy, xx = torch.meshgrid(axis, axis, axis, indexing="ij")
    index = torch.stack([xx, yy, zz], dim=-1)  # [r, r, r, 3]
    return (index[None] + offset[:, None, None, None, :].to(torch.float32)) / resolution


def project_to_pixels(
    points: torch.Tensor, camera_transform: torch.Tensor, width: int, height: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Project [B, ..., 3] points with camera_transform [B, 4, 4] (reconstruction -> image space,
    image spanning [-1, 1]^2, y down). Returns integer pixel columns, rows, and whether the
    point is in front of the camera (w > 0)."""
    batch = points.shape[0]
    flat = points.reshape(batch, -1, 3)
    m = camera_transform.to(torch.float32)
    homo = torch.einsum("bij,bnj->bni", m[:, :, :3], flat) + m[:, None, :, 3]
    w = homo[..., 3]
    in_front = w > 0
    safe_w = torch.where(in_front, w, torch.ones_like(w))
    x = (homo[..., 0] / safe_w + 1) * (width / 2)
    y = (homo[..., 1] / safe_w + 1) * (height / 2)
    shape = points.shape[:-1]
    # floor, not truncation: a point just left of the image must stay outside it
    return (
        torch.floor(x).to(torch.int64).reshape(shape),
        torch.floor(y).to(torch.int64).reshape(shape),
        in_front.reshape(shape),
    )


def ray_traced_skip(
    features: torch.Tensor, camera_transform: torch.Tensor, resolution: int, offset: torch.Tensor
) -> torch.Tensor:
    """features [B, C, h, w] -> [B, C, r, r, r]: each voxel takes the feature at its pixel."""
    batch, channels, height, width = features.shape
    points = sample_points(resolution, offset)
    px, py, in_front = project_to_pixels(points, camera_transform, width, height)
    inside = in_front & (px >= 0) & (px < width) & (py >= 0) & (py < height)
    flat_index = (py.clamp(0, height - 1) * width + px.clamp(0, width - 1)).reshape(batch, 1, -1)
    gathered = torch.gather(
        features.reshape(batch, channels, height * width), 2, flat_index.expand(batch, channels, -1)
    )
    gathered = gathered * inside.reshape(batch, 1, -1).to(gathered.dtype)
    return gathered.reshape(batch, channels, resolution, resolution, resolution)


class RayTracedSkip(nn.Module):
    """Compress the encoder features with a 1x1 conv, then sample them into the voxel grid."""

    def __init__(self, in_channels: int, out_channels: int, resolution: int):
        super().__init__()
        # the sampling offset is appended to the features, as in CoReNet, so that the skipped
        # features know where inside the voxel they were taken
        self.compress = nn.Conv2d(in_channels + 3, out_channels, kernel_size=1)
        self.resolution = resolution

    def forward(self, features: torch.Tensor, camera_transform: torch.Tensor, offset: torch.Tensor):
        b, _, h, w = features.shape
        with_offset = torch.cat([features, offset[:, :, None, None].to(features.dtype).expand(b, 3, h, w)], 1)
        return ray_traced_skip(self.compress(with_offset), camera_transform, self.resolution, offset)
