"""The CoReNet model family: ResNet encoder, 3D transposed-convolution decoder from a 4^3 grid
with ray-traced skip connections after each stage, per-voxel class logits.

Two layouts (`layout_of(config)`):

- "uniform" (this project's own, used by the small scale): one stage per grid from 4^3 up to
  the native resolution (norm, ReLU, 3^3 conv, norm, ReLU, then a 4^3 stride-2 transposed conv
  or, at the native grid, a 1x1 conv to the logits); batch norm; skips sampled with "floor"
  arithmetic.
- "corenet": the released PyTorch decoder layer for layer (google-research/corenet,
  src/corenet/model/reconstruction_decoder.py): stages of ReLU, norm, conv (3^3 on the 4^3 grid,
  5^3 after), ReLU, norm, transposed conv (3^3 then 7^3, stride 2; the last one produces the
  logits and upsamples by `last_upscale_factor`), skips after the 8^3..64^3 stages fed from the
  encoder's stride 32..4 features and sampled with the original's arithmetic; batch
  renormalization everywhere and the encoder in CORENET_STYLE (stages.models.resnet). It
  computes what the original computes, so its released checkpoints import
  (stages.import_checkpoint).
"""

from __future__ import annotations

import torch
from torch import nn

from .batch_renorm import BatchRenorm
from .configs import (  # noqa: F401
    CORENET_CHANNELS,
    CORENET_ENCODER,
    INITIAL_GRID,
    LAYOUTS,
    CoReNetConfig,
    CoReNetLayoutConfig,
    ResNetConfig,
    last_upscale_factor,
    layout_of,
)
from .ray_traced_skip import RayTracedSkip, sample_points
from .resnet import CORENET_STYLE, OWN_STYLE, ResNetEncoder

CHANNELS_LAST = torch.channels_last_3d
TASKS = ("fg_bg", "semantic")
def corenet_release_config(resolution: int, num_classes: int, latent_channels: int, skip_fraction: float,
                           last_upscale_factor: int, input_size: int = 256) -> CoReNetLayoutConfig:
    """The released network for an original DecoderConfig (cubic `resolution`)."""
    return CoReNetLayoutConfig(
        encoder=CORENET_ENCODER, resolution=resolution, num_classes=num_classes, latent_channels=latent_channels,
        channels=CORENET_CHANNELS, skip_fraction=skip_fraction, input_size=input_size,
        layout="corenet", last_upscale_factor=last_upscale_factor,
    )


def skip_sources(config: CoReNetConfig) -> dict[int, int]:
    """{skipped grid: encoder stage it samples (0: stride 4 ... 3: stride 32)}.

    The uniform layout hands its finest skipped grid the coarsest (stride-32) features, and so
    on (kept as it is: the small scale's trained behaviour depends on it); the corenet layout
    does the reverse, as the original: 8^3 <- stride 32, 16^3 <- 16, 32^3 <- 8, 64^3 <- 4."""
    if layout_of(config) == "corenet":
        return {g: 3 - i for i, g in enumerate(config.grids[1:])}
    return {g: 3 - i for i, g in enumerate(reversed(config.skip_grids))}


def _norm_act(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm3d(channels), nn.ReLU(inplace=True)]


def norm3d(kind: str, channels: int) -> nn.Module:
    """The decoder's normalization layer ("batch" or "batch_renorm") over C channels."""
    return nn.BatchNorm3d(channels) if kind == "batch" else BatchRenorm(channels, eps=1e-3)


def _relu_norm(kind: str, channels: int) -> list[nn.Module]:
    """The original's order: ReLU first, then the normalization."""
    return [nn.ReLU(), norm3d(kind, channels)]


class CoReNet(nn.Module):
    """The network: image, camera, offset -> per-voxel class logits.

    image: [B, 3, S, S] RGB in [0, 1] (or uint8 with the encoder's "corenet" preprocessing);
    camera_transform: [B, 4, 4] reconstruction space (the unit cube) -> clip space;
    offset: [B, 3] (x, y, z) sample position inside each voxel, in cells (0.5: centres).
    Returns logits [B, num_classes, R, R, R] indexed [z, y, x] (channel 0: void / empty).
    """

    def __init__(self, config: CoReNetConfig):
        super().__init__()
        self.config = config
        corenet = layout_of(config) == "corenet"
        self.encoder = ResNetEncoder(config.encoder, CORENET_STYLE if corenet else OWN_STYLE)
        self.latent = nn.Linear(config.encoder.out_channels[-1], config.latent_channels)
        self._skip_stage = skip_sources(config)
        if corenet:
            self._build_corenet_decoder(config)
        else:
            self._build_uniform_decoder(config)
        # channels-last 3D layout: 2-3x faster 3D convolutions with oneDNN on CPU, and the
        # layout cuDNN prefers for bf16 on GPU
        for module in self.modules():
            if isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
                module.to(memory_format=CHANNELS_LAST)

    def _skip(self, config: CoReNetConfig, grid: int, width: int, arithmetic: str) -> int:
        """Register the skip of `grid` (main width `width`); returns its channel count."""
        enc_channels = config.encoder.out_channels
        if arithmetic == "corenet":
            skip_ch = round(width * config.skip_fraction)
        else:
            skip_ch = max(1, round(width * config.skip_fraction))
        self.skips[str(grid)] = RayTracedSkip(enc_channels[self._skip_stage[grid]], skip_ch, grid, arithmetic)
        return skip_ch

    def _build_uniform_decoder(self, config: CoReNetConfig) -> None:
        c0 = config.channels[0]
        self.initial = nn.ConvTranspose3d(config.latent_channels + 3, c0, INITIAL_GRID, stride=INITIAL_GRID)
        skip_stage = self._skip_stage
        self.skips = nn.ModuleDict()
        self.blocks = nn.ModuleList()
        for index, (grid, width) in enumerate(zip(config.grids, config.channels)):
            in_ch = width
            if grid in skip_stage:
                in_ch += self._skip(config, grid, width, "floor") + (3 if config.position_channels else 0)
            layers = [*_norm_act(in_ch), nn.Conv3d(in_ch, width, 3, padding=1), *_norm_act(width)]
            if index + 1 < len(config.grids):
                layers.append(nn.ConvTranspose3d(width, config.channels[index + 1], 4, stride=2, padding=1))
            else:
                layers.append(nn.Conv3d(width, config.num_classes, 1))
            self.blocks.append(nn.Sequential(*layers))

    def _build_corenet_decoder(self, config: CoReNetConfig) -> None:
        norm, latent = "batch_renorm", config.latent_channels + 3
        self.initial = nn.Sequential(
            *_relu_norm(norm, latent), nn.ConvTranspose3d(latent, config.channels[0], INITIAL_GRID, stride=INITIAL_GRID)
        )
        self.blocks = nn.ModuleList()
        self.skips = nn.ModuleDict()
        for index, (grid, width) in enumerate(zip(config.grids, config.channels)):
            in_ch = width
            if grid in self._skip_stage:
                in_ch += self._skip(config, grid, width, "corenet")
            last = index + 1 == len(config.grids)
            out_ch = config.num_classes if last else config.channels[index + 1]
            stride = last_upscale_factor(config) if last else 2
            if index == 0:
                conv = nn.Conv3d(in_ch, width, 3, padding=1)
                up = nn.ConvTranspose3d(width, out_ch, 3, stride=stride, padding=1, output_padding=stride - 1)
            else:
                conv = nn.Conv3d(in_ch, width, 5, padding=2)
                up = nn.ConvTranspose3d(width, out_ch, 7, stride=stride, padding=3, output_padding=stride - 1)
            self.blocks.append(nn.Sequential(*_relu_norm(norm, in_ch), conv, *_relu_norm(norm, width), up))

    def encode(self, image: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """image -> ([stage features at strides 4, 8, 16, 32], pooled [B, C])."""
        return self.encoder(image)

    def decode(self, encoded, camera_transform: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """Encoder output, camera [B, 4, 4], offset [B, 3] -> logits [B, C, R, R, R] ([z, y, x])."""
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
