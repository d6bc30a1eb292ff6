"""CoReNet's ray-traced skip connection: image features sampled at projected voxel centres.

Every voxel of a decoder grid (resolution r, covering the reconstruction space, the unit cube)
is projected into the input image with the scene's camera transform; the encoder feature map is
read at the pixel it lands on. Voxels that project outside the image, or lie behind the camera,
get zeros. Voxel (i, j, k) of an r^3 grid (stored [k, j, i] = [z, y, x]) is sampled at the point
((i, j, k) + offset) / r, so offset 0.5 is the voxel centre and other offsets query sub-voxel
positions (used to evaluate a 32^3 model at 128^3).

Two arithmetics, chosen per skip: "floor" (this project's own: reconstruction-space points,
pixel = floor, in front = w > 0) and "corenet", which repeats the original's operations one by
one (google-research/corenet, src/corenet/model/ray_traced_skip_connection.py and
reconstruction_decoder._apply_skip): voxel-space points (i, j, k) + offset, a per-layer matrix,
pixel = truncation toward zero, and a voxel is dropped when its clip-space z (not w) is
negative. An imported checkpoint needs the latter: a pixel index that moves by one for a
voxel whose projection lies within rounding error of a pixel edge changes that voxel's logits.
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


def corenet_pixels(
    resolution: int, offset: torch.Tensor, camera_transform: torch.Tensor, width: int, height: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pixels of an r^3 grid's sample points as the original computes them.

    resolution: r, a power of two; offset [B, 3] (x, y, z) in cells; camera_transform [B, 4, 4]
    (reconstruction space, the unit cube, -> clip space). Returns (columns, rows, keep), each
    [B, r, r, r] in [z, y, x] order: columns/rows int64 (truncated toward zero), keep True where
    the pixel lies in the width x height map and the clip-space z is >= 0.

    The original multiplies its voxel projection matrix (camera . scale(1 / R)) by the layer's
    scale(R / r); for power-of-two R and r every factor is a power of two, so that product is
    exactly camera . scale(1 / r), which is what is formed here.
    """
    batch = offset.shape[0]
    axis = torch.arange(resolution, dtype=torch.float32, device=offset.device)
    zz, yy, xx = torch.meshgrid(axis, axis, axis, indexing="ij")
    cells = torch.stack([xx, yy, zz], dim=-1)  # [r, r, r, 3]
    points = cells[None].expand(batch, -1, -1, -1, -1) + offset.to(torch.float32)[:, None, None, None, :]
    points = torch.nn.functional.pad(points.reshape(batch, -1, 3), (0, 1), value=1.0)  # [B, N, 4]
    scale = camera_transform.new_tensor([1.0 / resolution] * 3 + [1.0], dtype=torch.float32)
    matrix = camera_transform.to(torch.float32) * scale[None, None, :]
    clip = torch.einsum("bnm,bvm->bvn", matrix, points)  # [B, N, 4]
    uv = (clip[..., :3] / clip[..., 3:4])[..., :2] / 2 + 0.5
    pixel = uv * uv.new_tensor([width, height])
    finite = torch.isfinite(pixel).all(-1)
    index = torch.where(finite[..., None], pixel, torch.zeros_like(pixel)).to(torch.int64)
    columns, rows = index.unbind(-1)
    keep = finite & (columns >= 0) & (columns < width) & (rows >= 0) & (rows < height) & (clip[..., 2] >= 0)
    shape = (batch, resolution, resolution, resolution)
    return columns.reshape(shape), rows.reshape(shape), keep.reshape(shape)


def ray_traced_skip_corenet(
    features: torch.Tensor, camera_transform: torch.Tensor, resolution: int, offset: torch.Tensor
) -> torch.Tensor:
    """features [B, C, h, w] -> [B, C, r, r, r] ([z, y, x]) sampled at `corenet_pixels`; 0 where
    a voxel is not kept."""
    batch, channels, height, width = features.shape
    columns, rows, keep = corenet_pixels(resolution, offset, camera_transform, width, height)
    flat_index = (rows.clamp(0, height - 1) * width + columns.clamp(0, width - 1)).reshape(batch, 1, -1)
    gathered = torch.gather(
        features.reshape(batch, channels, height * width), 2, flat_index.expand(batch, channels, -1)
    )
    gathered = torch.where(keep.reshape(batch, 1, -1), gathered, torch.zeros_like(gathered))
    return gathered.reshape(batch, channels, resolution, resolution, resolution)


ARITHMETICS = {"floor": ray_traced_skip, "corenet": ray_traced_skip_corenet}


class RayTracedSkip(nn.Module):
    """Compress the encoder features with a 1x1 conv, then sample them into the voxel grid.

    features [B, in_channels, h, w], camera_transform [B, 4, 4], offset [B, 3] ->
    [B, out_channels, r, r, r]. arithmetic: "floor" or "corenet" (see the module docstring).
    """

    def __init__(self, in_channels: int, out_channels: int, resolution: int, arithmetic: str = "floor"):
        super().__init__()
        if arithmetic not in ARITHMETICS:
            raise ValueError(f"skip arithmetic must be one of {tuple(ARITHMETICS)}, got {arithmetic!r}")
        # the sampling offset is appended to the features, as in CoReNet, so that the skipped
        # features know where inside the voxel they were taken
        self.compress = nn.Conv2d(in_channels + 3, out_channels, kernel_size=1)
        self.resolution = resolution
        self._sample = ARITHMETICS[arithmetic]

    def forward(self, features: torch.Tensor, camera_transform: torch.Tensor, offset: torch.Tensor):
        b, _, h, w = features.shape
        with_offset = torch.cat([features, offset[:, :, None, None].to(features.dtype).expand(b, 3, h, w)], 1)
        return self._sample(self.compress(with_offset), camera_transform, self.resolution, offset)
