"""A configurable ResNet image encoder in plain torch (no torchvision).

At paper scale it is ResNet-50 (bottleneck blocks, 3-4-6-3, widths 64..512 times 4); a small
scale (basic blocks, one per stage, narrow) trains on a laptop CPU. The encoder returns the
feature map of every stage (strides 4, 8, 16, 32), which CoReNet's ray-traced skip
connections sample, and the global average of the last one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ResNetConfig:
    """block: "bottleneck" (ResNet-50 style, output 4x width) or "basic" (two 3x3 convs).
    layers: blocks per stage (4 stages); widths: inner width per stage; stem_width: first conv."""

    block: str = "bottleneck"
    layers: tuple[int, ...] = (3, 4, 6, 3)
    widths: tuple[int, ...] = (64, 128, 256, 512)
    stem_width: int = 64

    def __post_init__(self):
        if self.block not in ("bottleneck", "basic"):
            raise ValueError(f"resnet block must be 'bottleneck' or 'basic', got {self.block!r}")
        if len(self.layers) != 4 or len(self.widths) != 4:
            raise ValueError("resnet needs 4 stages: layers and widths must have 4 entries")

    @property
    def expansion(self) -> int:
        return 4 if self.block == "bottleneck" else 1

    @property
    def out_channels(self) -> tuple[int, ...]:
        return tuple(w * self.expansion for w in self.widths)


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.shortcut = _shortcut(in_ch, width, stride)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.shortcut(x))


class Bottleneck(nn.Module):
    def __init__(self, in_ch: int, width: int, stride: int):
        super().__init__()
        out_ch = width * 4
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.shortcut = _shortcut(in_ch, out_ch, stride)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + self.shortcut(x))


def _shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))


class ResNetEncoder(nn.Module):
    """Image [B, 3, H, W] in [0, 1] -> ([stage features at strides 4, 8, 16, 32], pooled)."""

    def __init__(self, config: ResNetConfig):
        super().__init__()
        self.config = config
        block = Bottleneck if config.block == "bottleneck" else BasicBlock
        self.stem = nn.Sequential(
            nn.Conv2d(3, config.stem_width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(config.stem_width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages = []
        in_ch = config.stem_width
        for index, (count, width) in enumerate(zip(config.layers, config.widths)):
            blocks = []
            for b in range(count):
                stride = 2 if (b == 0 and index > 0) else 1
                blocks.append(block(in_ch, width, stride))
                in_ch = width * config.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        # ImageNet statistics: a reasonable fixed normalisation for natural-looking renders.
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        x = self.stem((image - self.mean) / self.std)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features, x.mean(dim=(2, 3))
