"""`SparseUNet` (stages.models.sparse3d) computed by spconv 2.x on the active voxels only: the
network's `sparse_backend: spconv` (the paper scale's path on a GPU; spconv's CPU wheel runs
its forward too, which the tests compare with the dense masked form, but not its backward, which
needs a CUDA build of torch).

Same parameters, same numbers (up to float rounding): the UNet's dense modules keep the weights
(one state dict for both paths) and each spconv operation is called with them, re-laid out:
`nn.Conv3d` [out, in, kx, ky, kz] -> spconv [out, kx, ky, kz, in]; `nn.ConvTranspose3d`
[in, out, kx, ky, kz] -> spconv's inverse convolution [out, kx, ky, kz, in]. Equivalences
(stages.models.sparse3d's docstring): stride-1 convolutions are spconv's submanifold ones
(`SubMConv3d`), the kernel-2 stride-2 down-sampling `SparseConv3d` (its outputs: the coarse
voxels of the active ones), the up-sampling `SparseInverseConv3d` back to the cached finer
voxels, BatchNorm `F.batch_norm` on the [N_active, C] features. Spatial axes x, y, z map to
spconv's three index columns in that order; the grid is padded to multiples of 4 voxels, as the
dense form pads before each down-sampling. spconv's GPU kernels accumulate in an order that may
change the last bits from run to run (README, "Reproducibility").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import StageError

INSTALL_HINT = ("pip install spconv (CPU) or spconv-cu126 (CUDA 12.6 and later drivers); or set "
                "network.sparse_backend: dense")


def spconv_module():
    """spconv.pytorch, or StageError saying how to install it."""
    try:
        import spconv.pytorch as spconv
    except ImportError as err:
        raise StageError(f"network.sparse_backend spconv needs spconv 2.x ({err}): {INSTALL_HINT}") from None
    return spconv


class SpconvUNet:
    """Runs one SparseUNet's forward with spconv. Holds spconv's operation objects (their own
    weights unused), outside the network's modules so that its state dict stays the dense one."""

    def __init__(self, unet):
        self.unet = unet
        self.spconv = spconv_module()
        self.ops: dict[str, object] = {}

    def _op(self, name: str, kind: str, cin: int, cout: int, kernel: int, key: str):
        if name not in self.ops:
            sp = self.spconv
            make = {"subm": lambda: sp.SubMConv3d(cin, cout, kernel, bias=False, indice_key=key),
                    "down": lambda: sp.SparseConv3d(cin, cout, kernel, stride=2, bias=False, indice_key=key),
                    "up": lambda: sp.SparseInverseConv3d(cin, cout, kernel, bias=False, indice_key=key)}[kind]
            self.ops[name] = make()
        return self.ops[name]

    def _conv(self, name, kind, conv: torch.nn.Module, t, key):
        if kind == "subm" and conv.weight.shape[-1] == 1:
            # a 1x1 submanifold convolution is a per-voxel linear map (spconv's own 1x1 path reads
            # its weight in another layout than its other kernels)
            return t.replace_feature(t.features @ conv.weight[:, :, 0, 0, 0].t())
        if kind == "up":  # ConvTranspose3d: [in, out, kx, ky, kz]
            cin, cout = conv.weight.shape[:2]
            weight = conv.weight.permute(1, 2, 3, 4, 0)
        else:
            cout, cin = conv.weight.shape[:2]
            weight = conv.weight.permute(0, 2, 3, 4, 1)
        op = self._op(name, kind, cin, cout, conv.weight.shape[-1], key)
        return op._conv_forward(self.unet.training, t, weight.contiguous(), None, name=op.name,
                                sparse_unique_name=op._sparse_unique_name)

    def _norm(self, bn, t, relu: bool = False):
        """MaskedBatchNorm's numbers on the active features (its parameters and buffers)."""
        training = bn.training and t.features.shape[0] > 1
        if training:
            with torch.no_grad():
                bn.num_batches_tracked += 1
        y = F.batch_norm(t.features, bn.running_mean, bn.running_var, bn.weight, bn.bias, training,
                         bn.momentum, bn.eps)
        return t.replace_feature(torch.relu(y) if relu else y)

    def _residual(self, name, block, t, key):
        y = self._norm(block.norm1, self._conv(f"{name}.conv1", "subm", block.conv1.conv, t, key), relu=True)
        y = self._norm(block.norm2, self._conv(f"{name}.conv2", "subm", block.conv2.conv, y, key))
        skip = t if block.shortcut is None else self._norm(
            block.shortcut_norm, self._conv(f"{name}.shortcut", "subm", block.shortcut.conv, t, key))
        return y.replace_feature(torch.relu(y.features + skip.features))

    @staticmethod
    def _cat(a, b):
        if not torch.equal(a.indices, b.indices):  # spconv returns the cached order: a bug if not
            raise RuntimeError("spconv: an up-sampled tensor's voxels differ from its skip connection's")
        return a.replace_feature(torch.cat([a.features, b.features], 1))

    def __call__(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, cin, X, Y, Z], mask bool [B, 1, X, Y, Z] -> (logits, features), dense, zero
        outside the mask: SparseUNet._forward's layers on the active voxels."""
        u = self.unet
        if x.device.type == "cpu" and torch.is_grad_enabled() and any(p.requires_grad for p in u.parameters()):
            raise StageError("network.sparse_backend spconv trains on a CUDA device only (spconv's CPU "
                             "backward needs a CUDA build of torch); on the CPU set network.sparse_backend: dense")
        B, dims = x.shape[0], tuple(x.shape[2:])
        shape = [-(-n // 4) * 4 for n in dims]
        indices = mask[:, 0].nonzero().int().contiguous()
        features = x.permute(0, 2, 3, 4, 1)[mask[:, 0]].contiguous()
        t = self.spconv.SparseConvTensor(features, indices, shape, B)
        x0 = t
        for i, layer in enumerate(u.stem):
            x0 = self._norm(layer.norm, self._conv(f"stem{i}", "subm", layer.conv.conv, x0, "subm0"), relu=True)
        x1 = self._norm(u.down1_norm, self._conv("down1", "down", u.down1.conv, x0, "down1"), relu=True)
        x1 = self._residual("block1", u.block1, x1, "subm1")
        x2 = self._norm(u.down2_norm, self._conv("down2", "down", u.down2.conv, x1, "down2"), relu=True)
        x2 = self._residual("block2", u.block2, x2, "subm2")
        y1 = self._norm(u.up1_norm, self._conv("up1", "up", u.up1.conv, x2, "down2"), relu=True)
        y1 = self._residual("block3", u.block3, self._cat(y1, x1), "subm1")
        y0 = self._norm(u.up2_norm, self._conv("up2", "up", u.up2.conv, y1, "down1"), relu=True)
        y0 = self._residual("block4", u.block4, self._cat(y0, x0), "subm0")
        logits = self._conv("head", "subm", u.head.conv, y0, "subm0")
        return (self._dense(logits.features + u.head_bias, indices, B, dims),
                self._dense(y0.features, indices, B, dims))

    @staticmethod
    def _dense(features: torch.Tensor, indices: torch.Tensor, B: int, dims) -> torch.Tensor:
        out = features.new_zeros((B, *dims, features.shape[1]))
        i = indices.long()
        out[i[:, 0], i[:, 1], i[:, 2], i[:, 3]] = features
        return out.permute(0, 4, 1, 2, 3)
