"""Batch renormalization (Ioffe 2017) as CoReNet's released PyTorch code runs it.

Rule source: google-research/corenet, src/corenet/model/batch_renorm.py. In evaluation mode the
layer is a plain affine batch norm over the running statistics,
``(x - running_mean) / sqrt(running_var + eps) * weight + bias``; every CoReNet layer uses
eps = 1e-3 (not torch's 1e-5). In training mode it normalizes with the batch statistics and
corrects towards the running ones with r (clipped to [1/r_max, r_max]) and d (clipped to
[-d_max, d_max]), whose limits grow with the number of batches seen: r_max from 1 to 3 between
batches 5,000 and 40,000, d_max from 0 to 5 between batches 5,000 and 25,000. The running
statistics move by `momentum` towards the batch's; as in the original, the batch variance is
made "unbiased" with the factor C / (C - 1), C being the channel count (not the number of values
per channel), which is kept so that imported checkpoints go on training as they would have.
"""

from __future__ import annotations

import torch
from torch import nn

# Schedules of the correction limits, in batches seen (the original's constants).
R_MAX_START, R_MAX_END, R_MAX_LIMIT = 5000, 40000, 3.0
D_MAX_START, D_MAX_END, D_MAX_LIMIT = 5000, 25000, 5.0


class BatchRenorm(nn.Module):
    """Batch renormalization over axis 1 of an input [B, C, ...] (any number of trailing axes).

    State (names as in the original, so its state dicts load unchanged): weight [C], bias [C]
    (parameters), running_mean [C], running_var [C] (float32 buffers), num_batches_tracked
    (int64 scalar buffer). Output: same shape and dtype as the input.
    """

    def __init__(self, num_channels: int, eps: float = 1e-3, momentum: float = 0.01):
        super().__init__()
        self.num_channels = num_channels
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.register_buffer("running_mean", torch.zeros(num_channels))
        self.register_buffer("running_var", torch.ones(num_channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.int64))

    def extra_repr(self) -> str:
        return f"{self.num_channels}, eps={self.eps}, momentum={self.momentum}"

    def _limits(self) -> tuple[torch.Tensor, torch.Tensor]:
        seen = self.num_batches_tracked.to(torch.float32)
        r_max = 1.0 + ((R_MAX_LIMIT - 1.0) * (seen - R_MAX_START) / (R_MAX_END - R_MAX_START)).clamp(0.0, R_MAX_LIMIT - 1.0)
        d_max = (D_MAX_LIMIT * (seen - D_MAX_START) / (D_MAX_END - D_MAX_START)).clamp(0.0, D_MAX_LIMIT)
        return r_max, d_max

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"BatchRenorm({self.num_channels}) got input of shape {tuple(x.shape)}")
        shape = (1, -1) + (1,) * (x.dim() - 2)
        running_std = (self.running_var + self.eps).sqrt()
        if self.training:
            axes = [a for a in range(x.dim()) if a != 1]
            batch_mean = x.mean(axes)
            batch_var = x.var(axes, unbiased=False)
            batch_std = (batch_var + self.eps).sqrt()
            r_max, d_max = self._limits()
            r = (batch_std.detach() / running_std).clamp(1.0 / r_max, r_max)
            d = ((batch_mean.detach() - self.running_mean) / running_std).clamp(-d_max, d_max)
            x = (x - batch_mean.view(shape)) / batch_std.view(shape) * r.view(shape) + d.view(shape)
            with torch.no_grad():
                channels = x.shape[1]
                unbiased_var = batch_var.detach() * channels / (channels - 1)
                self.running_var += self.momentum * (unbiased_var - self.running_var)
                self.running_mean += self.momentum * (batch_mean.detach() - self.running_mean)
                self.num_batches_tracked += 1
        else:
            x = (x - self.running_mean.view(shape)) / running_std.view(shape)
        return self.weight.view(shape) * x + self.bias.view(shape)
