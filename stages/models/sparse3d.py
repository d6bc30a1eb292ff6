"""Sparse 3D convolutions as masked dense ones: what torchsparse v1.4 computes on an active set,
computed on a dense grid plus a boolean mask (runs on any torch device, CPU included).

A sparse tensor of torchsparse is a set of active voxel coordinates with one feature vector
each. Here it is a dense feature grid ``x`` float [B, C, X, Y, Z] (axis order x, y, z as the
TSDF tables) that is zero wherever ``mask`` bool [B, 1, X, Y, Z] is False. The equivalences
(torchsparse v1.4.0 nn/functional/conv.py:96-146; IOAR/VoRTX build their UNets from these):

* stride-1 convolution (`MaskedConv3d`): the output lives on the input's coordinates
  (submanifold); an inactive neighbour does not exist, i.e. contributes 0. So
  ``conv3d(x * mask) * mask``.
* stride-2, kernel-2 down-sampling (`MaskedDown`): the output coordinates are the coarse voxels
  ``floor(c / 2)`` of the active ones, i.e. ``max_pool(mask, 2)``; each sums its (up to 8)
  active children through the kernel: ``conv3d(x * mask, k=2, s=2) * mask_coarse``.
* transposed kernel-2 up-sampling (`MaskedUp`): back to the cached finer coordinates, each fine
  voxel reading its parent: ``conv_transpose3d(x) * mask_fine``.
* BatchNorm over the active voxels only (`MaskedBatchNorm`): the mean and variance of each
  channel are taken over the active voxels of the whole batch (torchsparse applies
  nn.BatchNorm1d to the [N_active, C] feature matrix), running statistics as nn.BatchNorm1d.

The dense form costs memory and time for the inactive voxels too; spconv/torchsparse skip them.
At the crop sizes used here (at most 96 x 96 x 48) the dense form fits on one GPU and on a CPU.
Convolutions have no bias (torchsparse's default in SPVCNN blocks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x [B, C, X, Y, Z] with every inactive voxel (mask [B, 1, X, Y, Z] False) set to 0."""
    return x * mask.to(x.dtype)


def coarser_mask(mask: torch.Tensor) -> torch.Tensor:
    """bool [B, 1, ceil(X/2), ceil(Y/2), ceil(Z/2)]: coarse voxels with an active child."""
    pad = [0, mask.shape[-1] % 2, 0, mask.shape[-2] % 2, 0, mask.shape[-3] % 2]
    return F.max_pool3d(F.pad(mask.float(), pad), 2) > 0


def active_box(mask: torch.Tensor, align: int) -> list[tuple[int, int]] | None:
    """[(start, stop)] per spatial axis of the box holding every active voxel of mask [B, 1, ...]
    (over the batch), starts rounded down to multiples of `align`; None when nothing is active."""
    box = []
    for axis in range(2, mask.dim()):
        other = [d for d in range(mask.dim()) if d != axis]
        hit = mask.amax(dim=other).nonzero()
        if len(hit) == 0:
            return None
        box.append((int(hit[0]) // align * align, int(hit[-1]) + 1))
    return box


class MaskedBatchNorm(nn.Module):
    """nn.BatchNorm1d over the active voxels of [B, C, X, Y, Z]: training mode normalises with the
    biased variance of the active voxels and updates running_mean/running_var (the unbiased one)
    with `momentum`; eval mode uses the running statistics. Inactive voxels stay 0."""

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.to(x.dtype)
        shape = (1, -1, 1, 1, 1)
        n = m.sum()
        if self.training and n > 1:
            mean = (x * m).sum(dim=(0, 2, 3, 4)) / n
            var = (((x - mean.view(shape)) * m) ** 2).sum(dim=(0, 2, 3, 4)) / n
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * var * n / (n - 1))
                self.num_batches_tracked += 1
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return (y * self.weight.view(shape) + self.bias.view(shape)) * m


class MaskedConv3d(nn.Module):
    """Submanifold convolution, kernel k (odd), stride 1, padding k // 2, no bias."""

    def __init__(self, cin: int, cout: int, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked(self.conv(masked(x, mask)), mask)


class MaskedDown(nn.Module):
    """Kernel-2 stride-2 sparse convolution; returns (features, coarse mask)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, 2, stride=2, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pad = [0, x.shape[-1] % 2, 0, x.shape[-2] % 2, 0, x.shape[-3] % 2]
        coarse = coarser_mask(mask)
        return masked(self.conv(F.pad(masked(x, mask), pad)), coarse), coarse


class MaskedUp(nn.Module):
    """Kernel-2 stride-2 transposed sparse convolution onto the finer mask it came from."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.ConvTranspose3d(cin, cout, 2, stride=2, bias=False)

    def forward(self, x: torch.Tensor, fine_mask: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)[..., : fine_mask.shape[-3], : fine_mask.shape[-2], : fine_mask.shape[-1]]
        return masked(y, fine_mask)


class ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int = 3):
        super().__init__()
        self.conv = MaskedConv3d(cin, cout, kernel)
        self.norm = MaskedBatchNorm(cout)

    def forward(self, x, mask):
        return torch.relu(self.norm(self.conv(x, mask), mask))


class ResidualBlock(nn.Module):
    """SPVCNN's ResidualBlock: conv-BN-ReLU-conv-BN plus a (1x1 conv-BN where the width changes)
    shortcut, then ReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = MaskedConv3d(cin, cout)
        self.norm1 = MaskedBatchNorm(cout)
        self.conv2 = MaskedConv3d(cout, cout)
        self.norm2 = MaskedBatchNorm(cout)
        self.shortcut = None if cin == cout else MaskedConv3d(cin, cout, 1)
        self.shortcut_norm = None if cin == cout else MaskedBatchNorm(cout)

    def forward(self, x, mask):
        y = torch.relu(self.norm1(self.conv1(x, mask), mask))
        y = self.norm2(self.conv2(y, mask), mask)
        skip = x if self.shortcut is None else self.shortcut_norm(self.shortcut(x, mask), mask)
        return torch.relu(y + skip)


class SparseUNet(nn.Module):
    """The per-level 3D network of VoRTX/IOAR (cnn3d.py, SPVCNN's voxel branch): widths
    [1, 2, 4, 3, 3] x base; stem (two 3^3 conv-BN-ReLU), two down stages (kernel-2 stride-2 conv
    + residual block), two up stages (transposed conv back to the cached finer mask, concatenated
    with the skip, residual block), then a linear head of `out_channels`.

    Input x [B, cin, X, Y, Z], mask bool [B, 1, X, Y, Z]; returns (logits [B, out, X, Y, Z],
    features [B, 3 * base, X, Y, Z]), both zero outside the mask. SPVCNN's point branch (a
    per-point MLP beside the voxels) is left out: every point here is a voxel. backend:
    "dense" (the masked dense form, any device) or "spconv" (the same parameters run by spconv
    2.x on the active voxels only, stages.models.sparse3d_spconv).
    """

    def __init__(self, cin: int, base: int, out_channels: int, backend: str = "dense"):
        super().__init__()
        if backend not in ("dense", "spconv"):
            raise ValueError(f"sparse backend must be dense or spconv, got {backend!r}")
        self.backend = backend
        self._spconv = None
        if backend == "spconv":
            from .sparse3d_spconv import spconv_module

            spconv_module()  # a missing spconv is named now, not at the first forward
        c = [base * f for f in (1, 2, 4, 3, 3)]
        self.out_features = c[4]
        self.stem = nn.ModuleList([ConvBNReLU(cin, c[0]), ConvBNReLU(c[0], c[0])])
        self.down1 = MaskedDown(c[0], c[0])
        self.down1_norm = MaskedBatchNorm(c[0])
        self.block1 = ResidualBlock(c[0], c[1])
        self.down2 = MaskedDown(c[1], c[1])
        self.down2_norm = MaskedBatchNorm(c[1])
        self.block2 = ResidualBlock(c[1], c[2])
        self.up1 = MaskedUp(c[2], c[3])
        self.up1_norm = MaskedBatchNorm(c[3])
        self.block3 = ResidualBlock(c[3] + c[1], c[3])
        self.up2 = MaskedUp(c[3], c[4])
        self.up2_norm = MaskedBatchNorm(c[4])
        self.block4 = ResidualBlock(c[4] + c[0], c[4])
        self.head = MaskedConv3d(c[4], out_channels, 1)
        self.head_bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Runs on the box of the active voxels, its start rounded down to multiples of 4 voxels
        so that both down-sampling steps group the same voxels as on the whole grid: the result
        equals the whole grid's (inactive voxels contribute nothing and stay 0)."""
        box = active_box(mask, 4)
        if box is not None and self.backend == "spconv":
            if self._spconv is None:
                from .sparse3d_spconv import SpconvUNet

                self._spconv = SpconvUNet(self)
            return self._spconv(x, mask)
        if box is None:
            return x.new_zeros((x.shape[0], self.head.conv.out_channels, *x.shape[2:])), \
                x.new_zeros((x.shape[0], self.out_features, *x.shape[2:]))
        inner = (slice(None), slice(None)) + tuple(slice(a, b) for a, b in box)
        if all(a == 0 and b == n for (a, b), n in zip(box, mask.shape[2:])):
            return self._forward(x, mask)
        logits_box, features_box = self._forward(x[inner], mask[inner])
        logits = x.new_zeros((x.shape[0], logits_box.shape[1], *x.shape[2:]))
        features = x.new_zeros((x.shape[0], features_box.shape[1], *x.shape[2:]))
        logits[inner] = logits_box
        features[inner] = features_box
        return logits, features

    def _forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = x
        for layer in self.stem:
            x0 = layer(x0, mask)
        x1, m1 = self.down1(x0, mask)
        x1 = self.block1(torch.relu(self.down1_norm(x1, m1)), m1)
        x2, m2 = self.down2(x1, m1)
        x2 = self.block2(torch.relu(self.down2_norm(x2, m2)), m2)
        y1 = torch.relu(self.up1_norm(self.up1(x2, m1), m1))
        y1 = self.block3(torch.cat([y1, x1], 1), m1)
        y0 = torch.relu(self.up2_norm(self.up2(y1, mask), mask))
        y0 = self.block4(torch.cat([y0, x0], 1), mask)
        logits = self.head(y0, mask) + masked(self.head_bias.view(1, -1, 1, 1, 1).expand(
            y0.shape[0], -1, *y0.shape[2:]), mask)
        return logits, y0
