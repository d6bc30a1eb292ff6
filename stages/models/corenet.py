"""The CoReNet model family: ResNet encoder, 3D transposed-convolution decoder from a 4^3 grid
with ray-traced skip connections after each stage, per-voxel class logits.

Differences from the released code, on purpose: batch norm instead of batch renorm, and the
decoder's stage list is derived from the native resolution (4^3 doubling up to 32, 64 or 128)
instead of being written out for 128^3, so that one class serves h5/h7/m7/m9 (128^3), y1
(32^3) and the small CPU scale.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from .ray_traced_skip import RayTracedSkip, sample_points
from .resnet import ResNetConfig, ResNetEncoder

INITIAL_GRID = 4
CHANNELS_LAST = torch.channels_last_3d
TASKS = ("fg_bg", "semantic")


@dataclass(frozen=True)
class CoReNetConfig:
    """resolution: native output grid (a power of two >= 8); num_classes: 2 for FG_BG, object
    classes + 1 for SEMANTIC; channels: decoder width per grid from 4^3 up to `resolution`
    (one entry per grid); skip_fraction: skip channels as a fraction of the grid's width;
    skip_final: whether the native-resolution grid also gets a skip (CoReNet's 128^3 model has
    none there; it is cheap and useful at 32^3); input_size: square input image side;
    position_channels: append each voxel's sample position (x, y, z in the unit cube) to the
    skipped features (not in CoReNet: the skip gives every voxel of a ray the same features, so
    where along the ray the surface lies is otherwise only known through the convolutions'
    receptive field; the small scale, with few layers, learns depth much faster with it)."""

    encoder: ResNetConfig = field(default_factory=ResNetConfig)
    resolution: int = 128
    num_classes: int = 2
    latent_channels: int = 512
    channels: tuple[int, ...] = (256, 128, 64, 32, 16, 16)
    skip_fraction: float = 0.5
    skip_final: bool = False
    input_size: int = 256
    position_channels: bool = False

    def __post_init__(self):
        steps = math.log2(self.resolution / INITIAL_GRID)
        if self.resolution < 8 or steps != int(steps):
            raise ValueError(f"native resolution must be 4 * 2^n >= 8, got {self.resolution}")
        if len(self.channels) != int(steps) + 1:
            raise ValueError(
                f"decoder channels need one entry per grid 4..{self.resolution} "
                f"({int(steps) + 1}), got {len(self.channels)}"
            )
        if self.num_classes < 2:
            raise ValueError("num_classes must be at least 2 (void + one class)")

    @property
    def grids(self) -> tuple[int, ...]:
        return tuple(INITIAL_GRID * 2**i for i in range(len(self.channels)))

    @property
    def skip_grids(self) -> tuple[int, ...]:
        """Grids that receive a skip, finest last; at most one per encoder stage."""
        candidates = self.grids if self.skip_final else self.grids[:-1]
        return candidates[-4:]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "CoReNetConfig":
        data = dict(data)
        encoder = data.pop("encoder", {})
        encoder = ResNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in encoder.items()})
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(encoder=encoder, **data)


def _norm_act(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm3d(channels), nn.ReLU(inplace=True)]


class CoReNet(nn.Module):
    """image [B, 3, S, S] in [0, 1], camera_transform [B, 4, 4], offset [B, 3] -> logits
    [B, num_classes, R, R, R] indexed [z, y, x]."""

    def __init__(self, config: CoReNetConfig):
        super().__init__()
        self.config = config
        self.encoder = ResNetEncoder(config.encoder)
        enc_channels = config.encoder.out_channels
        c0 = config.channels[0]
        self.latent = nn.Linear(enc_channels[-1], config.latent_channels)
        self.initial = nn.ConvTranspose3d(config.latent_channels + 3, c0, INITIAL_GRID, stride=INITIAL_GRID)
        # encoder stage per skipped grid: the finest skipped grid samples the stride-4 features
        skip_stage = {g: 3 - i for i, g in enumerate(reversed(config.skip_grids))}
        self.skips = nn.ModuleDict()
        self.blocks = nn.ModuleList()
        for index, (grid, width) in enumerate(zip(config.grids, config.channels)):
            in_ch = width
            if grid in skip_stage:
                skip_ch = max(1, round(width * config.skip_fraction))
                self.skips[str(grid)] = RayTracedSkip(enc_channels[skip_stage[grid]], skip_ch, grid)
                in_ch += skip_ch + (3 if config.position_channels else 0)
            layers = [*_norm_act(in_ch), nn.Conv3d(in_ch, width, 3, padding=1), *_norm_act(width)]
            if index + 1 < len(config.grids):
                layers.append(nn.ConvTranspose3d(width, config.channels[index + 1], 4, stride=2, padding=1))
            else:
                layers.append(nn.Conv3d(width, config.num_classes, 1))
            self.blocks.append(nn.Sequential(*layers))
        self._skip_stage = skip_stage
        # channels-last 3D layout: 2-3x faster 3D convolutions with oneDNN on CPU, and the
        # layout cuDNN prefers for bf16 on GPU
        for module in self.modules():
            if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
                module.to(memory_format=CHANNELS_LAST)

    def encode(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        return self.encoder(image)

    def decode(self, encoded, camera_transform: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        features, pooled = encoded
        x = torch.cat([self.latent(pooled), offset.to(pooled.dtype)], 1)
        x = self.initial(x[:, :, None, None, None]).contiguous(memory_format=CHANNELS_LAST)
        for grid, block in zip(self.config.grids, self.blocks):
            if grid in self._skip_stage:
                skip = self.skips[str(grid)](features[self._skip_stage[grid]], camera_transform, offset)
                parts = [x, skip.to(x.dtype)]
                if self.config.position_channels:
                    parts.append(sample_points(grid, offset).permute(0, 4, 1, 2, 3).to(x.dtype))
                x = torch.cat(parts, 1).contiguous(memory_format=CHANNELS_LAST)
            x = block(x)
        return x.contiguous()

    def forward(self, image, camera_transform, offset):
        return self.decode(self.encode(image), camera_transform, offset)
