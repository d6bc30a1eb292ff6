"""3D-R2N2's Res3D-GRU-3 (Choy et al. 2016): views -> 2D residual encoder -> 3D convolutional
GRU on a 4^3 grid, fed one view at a time -> residual 3D decoder -> 2-class logits on 32^3.

Paper-scale defaults are the released ResidualGRUNet (models/res_gru_net.py, lib/layers.py):

* encoder: six stages of two 'same' convolutions (7x7 then 3x3 in the first, 3x3 after) with
  leaky ReLU (slope 0.01), each followed by 2x2 max pooling with padding 1 (127 -> 64 -> 33 ->
  17 -> 9 -> 5 -> 3); widths 96, 128, 256, 256, 256, 256; residual shortcuts: none, 1x1 conv,
  1x1 conv, none, 1x1 conv, identity; then a fully connected layer to 1024 with leaky ReLU;
* GRU (the original's FCConv3DLayer): every gate is conv3d(state, 3^3, no bias) + fc(x)
  reshaped to the 128 x 4^3 grid + a per-channel bias; update u = sigmoid(.), reset r =
  sigmoid(.), candidate c = tanh(conv3d(r * state) + fc(x) + b), state' = u * state + (1 - u)
  * c, starting from zeros;
* decoder: three stages of zero-insertion unpooling (x2) then two 3^3 convolutions with leaky
  ReLU, widths 128, 128, 64, shortcuts identity, identity, 1x1 conv; a fourth stage at 32^3
  (width 32) whose shortcut is a third 3^3 convolution of its first activation; a final 3^3
  convolution to 2 channels (1 with `num_classes: 1`, the PaddlePaddle port's sigmoid output);
* initialisation: weights ~ N(0, 2 / ((fan_in + fan_out) / 2)) (the original's 'msra' filler),
  biases 0.1.

Inputs are views in [0, 1], as the released preprocessing scales them (the PaddlePaddle
port's variant normalises them to [-1, 1]: stages.families.r2n2.data). Differences, on purpose:
the gate fc output is laid out [C, D, H, W] (Theano's was [D, C, H, W]; a relabelling of a
learned matrix); max pooling pads with -inf (Theano's padded pooling, with zeros, differs only
where a whole window is negative). `norm="batch"` (the small scale only) adds batch norm after
every block convolution: measured on the embedded default, without it 150 steps at lr 1e-3
blow the encoder's features up until the GRU gates saturate and the output stops depending on
the views, and at 3e-4 the model is still at the mean shape; with it, IoU@0.4 reaches about
0.2 (1 view) to 0.3 (5 views) in those 150 steps. Output grids are indexed
[z, y, x] like every grid of the pipeline (stages.r2n2_views).
"""

from __future__ import annotations

import math


import torch
import torch.nn.functional as F
from torch import nn

from .configs import R2N2Config  # noqa: F401

# Convolutions run channels-last: measured on two CPU cores, the 32^3 decoder's forward and
# backward take 4x less time than in the default layout (and cuDNN favours it too).
CHANNELS_LAST_2D = torch.channels_last
CHANNELS_LAST_3D = torch.channels_last_3d


class ResidualBlock(nn.Module):
    """Two 'same' convolutions with leaky ReLU and a shortcut, in 2D or 3D."""

    def __init__(
        self, dims: int, in_channels: int, out_channels: int, shortcut: str, leak: float, first_kernel: int = 3, norm: str = "none"
    ):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        batch_norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
        self.leak = leak
        self.kind = shortcut
        self.conv_a = conv(in_channels, out_channels, first_kernel, padding=first_kernel // 2)
        self.conv_b = conv(out_channels, out_channels, 3, padding=1)
        self.norm_a = batch_norm(out_channels) if norm == "batch" else nn.Identity()
        self.norm_b = batch_norm(out_channels) if norm == "batch" else nn.Identity()
        self.shortcut = {
            "conv": lambda: conv(in_channels, out_channels, 1),
            "mid": lambda: conv(out_channels, out_channels, 3, padding=1),
        }.get(shortcut, lambda: None)()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.leaky_relu(self.norm_a(self.conv_a(x)), self.leak)
        out = F.leaky_relu(self.norm_b(self.conv_b(a)), self.leak)
        if self.kind == "identity":
            return out + x
        if self.kind == "conv":
            return out + self.shortcut(x)
        if self.kind == "mid":
            return out + self.shortcut(a)
        return out


def unpool3d(x: torch.Tensor) -> torch.Tensor:
    """The original's Unpool3DLayer: each voxel to the first corner of a 2^3 block, zeros
    elsewhere (not nearest-neighbour upsampling). Keeps channels-last layout."""
    b, c, d, h, w = x.shape
    out = torch.empty(b, c, 2 * d, 2 * h, 2 * w, dtype=x.dtype, device=x.device, memory_format=CHANNELS_LAST_3D).zero_()
    out[:, :, ::2, ::2, ::2] = x
    return out


class FCConv3d(nn.Module):
    """One GRU gate's pre-activation: conv3d(state) + fc(x) on the state's grid + bias."""

    def __init__(self, in_features: int, channels: int, grid: int, kernel: int):
        super().__init__()
        self.shape = (channels, grid, grid, grid)
        self.conv = nn.Conv3d(channels, channels, kernel, padding=kernel // 2, bias=False)
        self.fc = nn.Linear(in_features, channels * grid**3, bias=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, state: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.conv(state) + self.fc(x).view(-1, *self.shape) + self.bias.view(1, -1, 1, 1, 1)


class Res3DGRU3(nn.Module):
    def __init__(self, config: R2N2Config = R2N2Config()):
        super().__init__()
        self.config = config
        c = config
        widths = (3,) + c.encoder_channels
        self.encoder = nn.ModuleList(
            ResidualBlock(2, widths[i], widths[i + 1], s, c.leak, c.first_kernel if i == 0 else 3, c.norm)
            for i, s in enumerate(c.encoder_shortcuts)
        )
        self.fc = nn.Linear(c.encoder_channels[-1] * c.encoder_output_size**2, c.fc_features)
        self.update_gate = FCConv3d(c.fc_features, c.hidden_channels, c.grid, c.gate_kernel)
        self.reset_gate = FCConv3d(c.fc_features, c.hidden_channels, c.grid, c.gate_kernel)
        self.candidate = FCConv3d(c.fc_features, c.hidden_channels, c.grid, c.gate_kernel)
        widths = (c.hidden_channels,) + c.decoder_channels
        self.decoder = nn.ModuleList(
            ResidualBlock(3, widths[i], widths[i + 1], s, c.leak, norm=c.norm) for i, s in enumerate(c.decoder_shortcuts)
        )
        self.classifier = nn.Conv3d(c.decoder_channels[-1], c.num_classes, 3, padding=1)
        self._init_weights()
        self.encoder.to(memory_format=CHANNELS_LAST_2D)
        self.decoder.to(memory_format=CHANNELS_LAST_3D)
        self.classifier.to(memory_format=CHANNELS_LAST_3D)

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.Linear)):
                receptive = module.weight[0, 0].numel() if module.weight.dim() > 2 else 1
                fan_in = module.weight.shape[1] * receptive
                fan_out = module.weight.shape[0] * receptive
                nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / ((fan_in + fan_out) / 2)))
                if module.bias is not None:
                    nn.init.constant_(module.bias, 0.1)
            elif isinstance(module, FCConv3d):
                nn.init.constant_(module.bias, 0.1)

    def encode(self, views: torch.Tensor) -> torch.Tensor:
        """views [B, V, 3, H, W] in [0, 1] -> per-view features [B, V, fc_features]."""
        b, v = views.shape[:2]
        x = views.reshape(b * v, *views.shape[2:]).contiguous(memory_format=CHANNELS_LAST_2D)
        for block in self.encoder:
            x = F.max_pool2d(block(x), 2, stride=2, padding=1)
        x = F.leaky_relu(self.fc(x.flatten(1)), self.config.leak)
        return x.view(b, v, -1)

    def initial_state(self, batch: int, device=None, dtype=None) -> torch.Tensor:
        c = self.config
        return torch.zeros(batch, c.hidden_channels, c.grid, c.grid, c.grid, device=device, dtype=dtype)

    def gru_step(self, x_feat: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """One view into the 3D GRU: features [B, fc_features], state [B, C, G, G, G] -> state."""
        update = torch.sigmoid(self.update_gate(state, x_feat))
        reset = torch.sigmoid(self.reset_gate(state, x_feat))
        candidate = torch.tanh(self.candidate(reset * state, x_feat))
        return update * state + (1.0 - update) * candidate

    def aggregate(self, views: torch.Tensor) -> torch.Tensor:
        """The GRU state after the views, fed in the given order: [B, C, G, G, G]."""
        features = self.encode(views)
        state = self.initial_state(views.shape[0], views.device, features.dtype)
        for view in range(features.shape[1]):
            state = self.gru_step(features[:, view], state)
        return state

    def decode(self, state: torch.Tensor) -> torch.Tensor:
        """GRU state [B, C, G, G, G] -> logits [B, num_classes, R, R, R]."""
        x = state.contiguous(memory_format=CHANNELS_LAST_3D)
        for index, block in enumerate(self.decoder):
            if index < self.config.unpool_stages:
                x = unpool3d(x)
            x = block(x)
        return self.classifier(x)

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        """views [B, V, 3, H, W] in [0, 1] -> logits [B, num_classes, R, R, R] ([z, y, x])."""
        if views.dim() != 5:
            raise ValueError(f"views must be [B, V, 3, H, W], got shape {tuple(views.shape)}")
        return self.decode(self.aggregate(views))


def r2n2_loss(logits: torch.Tensor, voxels: torch.Tensor) -> torch.Tensor:
    """Mean per-voxel loss; voxels [B, D, H, W] with 0 (empty) / 1 (occupied).

    logits [B, 2, D, H, W]: cross-entropy of the softmax (the original's SoftmaxWithLoss3D);
    logits [B, 1, D, H, W]: binary cross-entropy of the sigmoid (the PaddlePaddle port's
    paddle.nn.BCELoss on a sigmoid output, computed from the logit for numerical safety; the
    port's x10 weight is the family's `train.loss_weight`)."""
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], voxels.to(logits.dtype))
    return F.cross_entropy(logits, voxels.long())


def occupancy_probability(logits: torch.Tensor) -> torch.Tensor:
    """P(occupied) per voxel, [B, D, H, W]: softmax of [B, 2, D, H, W] logits (channel 1), or
    sigmoid of [B, 1, D, H, W] logits."""
    if logits.shape[1] == 1:
        return torch.sigmoid(logits[:, 0])
    return torch.softmax(logits, dim=1)[:, 1]
