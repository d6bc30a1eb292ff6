"""A configurable ResNet image encoder in plain torch (no torchvision).

At paper scale it is ResNet-50 (bottleneck blocks, 3-4-6-3, widths 64..512 times 4); a small
scale (basic blocks, one per stage, narrow) trains on a laptop CPU. The encoder returns the
feature map of every stage (strides 4, 8, 16, 32), which CoReNet's ray-traced skip
connections sample, and the global average of the last one.

A `ResNetStyle` (default: this project's own encoder) can reproduce the Keras/Caffe-style
ResNet-50 of CoReNet's release (google-research/corenet, src/corenet/model/resnet50.py): batch
renormalization with eps 1e-3, a bias on every convolution, the stride of a downsampling
bottleneck on its first 1x1 convolution (and on the 1x1 shortcut), stage features taken before
the last block's ReLU, and the original's input preprocessing (see `preprocess_corenet`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .batch_renorm import BatchRenorm
from .configs import ResNetConfig

NORMS = ("batch", "batch_renorm")
PREPROCESSING = ("imagenet", "corenet")
# Added to the B, G, R channels by the original's preprocess_image_caffe (added, not subtracted).
CORENET_CHANNEL_OFFSETS_BGR = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class ResNetStyle:
    """How the encoder's layers are built (the sizes come from ResNetConfig).

    norm: "batch" (torch batch norm, eps 1e-5) or "batch_renorm" (CoReNet's, eps 1e-3);
    conv_bias: whether convolutions carry a bias; stride_on_1x1: a downsampling bottleneck
    strides its first 1x1 conv (Keras/Caffe, CoReNet) instead of its 3x3 conv (torchvision);
    features_before_relu: the stage features handed out are the last block's output before its
    final ReLU (CoReNet) instead of after it (the pooled feature is always taken after it);
    preprocess: "imagenet" (image in [0, 1], ImageNet mean/std) or "corenet" (the original's:
    see `preprocess_corenet`)."""

    norm: str = "batch"
    conv_bias: bool = False
    stride_on_1x1: bool = False
    features_before_relu: bool = False
    preprocess: str = "imagenet"

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ValueError(f"resnet norm must be one of {NORMS}, got {self.norm!r}")
        if self.preprocess not in PREPROCESSING:
            raise ValueError(f"resnet preprocess must be one of {PREPROCESSING}, got {self.preprocess!r}")


OWN_STYLE = ResNetStyle()
CORENET_STYLE = ResNetStyle(
    norm="batch_renorm", conv_bias=True, stride_on_1x1=True, features_before_relu=True, preprocess="corenet"
)


def norm2d(kind: str, channels: int) -> nn.Module:
    """The normalization layer `kind` ("batch" or "batch_renorm", see ResNetConfig) over C channels."""
    return nn.BatchNorm2d(channels) if kind == "batch" else BatchRenorm(channels, eps=1e-3)


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, width: int, stride: int, style: ResNetStyle):
        super().__init__()
        bias, norm = style.conv_bias, style.norm
        self.conv1 = nn.Conv2d(in_ch, width, 3, stride, 1, bias=bias)
        self.bn1 = norm2d(norm, width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=bias)
        self.bn2 = norm2d(norm, width)
        self.shortcut = _shortcut(in_ch, width, stride, style)

    def pre_relu(self, x):
        """The block's output before its final ReLU."""
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return y + self.shortcut(x)

    def forward(self, x):
        return torch.relu(self.pre_relu(x))


class Bottleneck(nn.Module):
    def __init__(self, in_ch: int, width: int, stride: int, style: ResNetStyle):
        super().__init__()
        bias, norm = style.conv_bias, style.norm
        stride_1x1, stride_3x3 = (stride, 1) if style.stride_on_1x1 else (1, stride)
        out_ch = width * 4
        self.conv1 = nn.Conv2d(in_ch, width, 1, stride_1x1, bias=bias)
        self.bn1 = norm2d(norm, width)
        self.conv2 = nn.Conv2d(width, width, 3, stride_3x3, 1, bias=bias)
        self.bn2 = norm2d(norm, width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=bias)
        self.bn3 = norm2d(norm, out_ch)
        self.shortcut = _shortcut(in_ch, out_ch, stride, style)

    def pre_relu(self, x):
        """The block's output before its final ReLU."""
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return y + self.shortcut(x)

    def forward(self, x):
        return torch.relu(self.pre_relu(x))


def _shortcut(in_ch: int, out_ch: int, stride: int, style: ResNetStyle) -> nn.Module:
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=style.conv_bias), norm2d(style.norm, out_ch))


def preprocess_corenet(image: torch.Tensor) -> torch.Tensor:
    """The original's input preprocessing (resnet50.preprocess_image_caffe in CoReNet's release).

    image: [B, 3, H, W] RGB, uint8 (0..255) or floating in [0, 1] (then scaled by 255 and rounded,
    which recovers the 8-bit values exactly). Returns float32 [B, 3, H, W] in BGR order with
    103.939, 116.779, 123.68 *added* to B, G, R (the release adds the Caffe means instead of
    subtracting them; the trained weights expect that, so it is kept).
    """
    if image.dtype == torch.uint8:
        values = image.to(torch.float32)
    else:
        values = torch.round(image.to(torch.float32) * 255.0)
    offsets = values.new_tensor(CORENET_CHANNEL_OFFSETS_BGR).view(1, 3, 1, 1)
    return values.flip(1) + offsets


class ResNetEncoder(nn.Module):
    """Image [B, 3, H, W] RGB in [0, 1] (or uint8 with preprocess "corenet") -> ([stage features
    at strides 4, 8, 16, 32, each [B, C_s, H / s, W / s]], pooled [B, C_last])."""

    def __init__(self, config: ResNetConfig, style: ResNetStyle = OWN_STYLE):
        super().__init__()
        if style.stride_on_1x1 and config.block != "bottleneck":
            raise ValueError("stride_on_1x1 needs bottleneck blocks (basic blocks have no 1x1 conv)")
        self.config = config
        self.style = style
        block = Bottleneck if config.block == "bottleneck" else BasicBlock
        self.stem = nn.Sequential(
            nn.Conv2d(3, config.stem_width, 7, 2, 3, bias=style.conv_bias),
            norm2d(style.norm, config.stem_width),
            nn.ReLU(inplace=True),
            # zero padding here equals the original's: the input is non-negative after the ReLU
            nn.MaxPool2d(3, 2, 1),
        )
        stages = []
        in_ch = config.stem_width
        for index, (count, width) in enumerate(zip(config.layers, config.widths)):
            blocks = []
            for b in range(count):
                stride = 2 if (b == 0 and index > 0) else 1
                blocks.append(block(in_ch, width, stride, style))
                in_ch = width * config.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        # ImageNet statistics: a reasonable fixed normalisation for natural-looking renders.
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        if self.style.preprocess == "corenet":
            return preprocess_corenet(image)
        return (image - self.mean) / self.std

    def forward(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        x = self.stem(self.preprocess(image))
        features = []
        for stage in self.stages:
            if self.style.features_before_relu:
                for block in stage[:-1]:
                    x = block(x)
                before = stage[-1].pre_relu(x)
                x = torch.relu(before)
                features.append(before)
            else:
                x = stage(x)
                features.append(x)
        return features, x.mean(dim=(2, 3))
