"""Network configurations of the model families, as frozen dataclasses without torch.

The networks (`resnet`, `corenet`, `r2n2`, `umr`) are built from these; the model files' `network`
sections are parsed straight into them (`stages.model_spec.parse_section`), so that the workflow
checks a model file when it builds the DAG without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

INITIAL_GRID = 4  # CoReNet's decoder starts from a 4^3 grid
SHORTCUTS = ("none", "identity", "conv", "mid")  # 3D-R2N2 residual shortcuts
NORMS = ("none", "batch")  # 3D-R2N2 normalisation
CAMERA_INITS = ("identity", "azimuths")  # UMR camera hypotheses at initialisation


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


LAYOUTS = ("uniform", "corenet")
# The released network: ResNet-50 and decoder widths on the grids 4^3..64^3 (reconstruction_decoder.py).
CORENET_ENCODER = ResNetConfig(block="bottleneck", layers=(3, 4, 6, 3), widths=(64, 128, 256, 512), stem_width=64)
CORENET_CHANNELS = (256, 128, 64, 32, 16)


def layout_of(config: CoReNetConfig) -> str:
    """The config's decoder layout; "uniform" for a CoReNetConfig without a `layout` field."""
    return getattr(config, "layout", "uniform")


def last_upscale_factor(config: CoReNetConfig) -> int:
    """Upsampling of the corenet layout's last transposed conv (1 where the config has none)."""
    return getattr(config, "last_upscale_factor", 1)


@dataclass(frozen=True)
class CoReNetLayoutConfig(CoReNetConfig):
    """CoReNetConfig plus the choice of layout (see the module docstring).

    layout: "uniform" or "corenet". With "corenet", `channels` has one entry per grid 4, 8, 16,
    32, 64 (5 entries), every grid after the first gets a skip, and the last transposed conv
    upsamples by last_upscale_factor (1 or 2) to `resolution` = 64 * last_upscale_factor; the
    encoder must be ResNet-50 (CORENET_ENCODER). Raises ValueError on any other combination.
    """

    layout: str = "corenet"
    last_upscale_factor: int = 2

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.layout == "uniform":
            if self.last_upscale_factor != 1:
                raise ValueError("last_upscale_factor is an option of the corenet layout only")
            super().__post_init__()
            return
        if self.num_classes < 2:
            raise ValueError("num_classes must be at least 2 (void + one class)")
        if len(self.channels) != len(CORENET_CHANNELS):
            raise ValueError(f"the corenet layout needs {len(CORENET_CHANNELS)} channel entries (grids 4..64), got {len(self.channels)}")
        if self.last_upscale_factor not in (1, 2):
            raise ValueError(f"last_upscale_factor must be 1 or 2, got {self.last_upscale_factor}")
        if self.resolution != self.grids[-1] * self.last_upscale_factor:
            raise ValueError(f"the corenet layout with last_upscale_factor {self.last_upscale_factor} has native "
                             f"resolution {self.grids[-1] * self.last_upscale_factor}, got {self.resolution}")
        if self.encoder != CORENET_ENCODER:
            raise ValueError("the corenet layout needs the ResNet-50 encoder (bottleneck, 3-4-6-3, widths 64..512)")
        if self.skip_final or self.position_channels or not self.skip_fraction > 0:
            raise ValueError("the corenet layout has no final skip, no position channels and skip_fraction > 0")


@dataclass(frozen=True)
class R2N2Config:
    """input_size: square view side; encoder_channels/encoder_shortcuts: per encoder stage
    (shortcut "none", "identity", "conv" = 1x1 convolution of the stage input); first_kernel:
    the first convolution's kernel; fc_features: the per-view feature vector; hidden_channels,
    grid, gate_kernel: the GRU state [hidden_channels, grid^3] and its convolution kernels;
    decoder_channels/decoder_shortcuts: per decoder stage, the first log2(resolution / grid) of
    which unpool x2 first ("mid" = a 3^3 convolution of the stage's first activation);
    resolution: output grid side; num_classes: 2 (empty, occupied logits: softmax, the
    original) or 1 (one occupancy logit: sigmoid, the PaddlePaddle port's BCE variant); leak:
    leaky ReLU slope;
    norm: "none" (the original) or "batch" (batch norm after every block convolution, which
    the small scale needs to learn in a few hundred steps without its activations drifting
    into the GRU's saturated range)."""

    input_size: int = 127
    encoder_channels: tuple[int, ...] = (96, 128, 256, 256, 256, 256)
    encoder_shortcuts: tuple[str, ...] = ("none", "conv", "conv", "none", "conv", "identity")
    first_kernel: int = 7
    fc_features: int = 1024
    hidden_channels: int = 128
    grid: int = 4
    gate_kernel: int = 3
    decoder_channels: tuple[int, ...] = (128, 128, 64, 32)
    decoder_shortcuts: tuple[str, ...] = ("identity", "identity", "conv", "mid")
    resolution: int = 32
    num_classes: int = 2
    leak: float = 0.01
    norm: str = "none"

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        if self.num_classes not in (1, 2):
            raise ValueError(f"num_classes must be 1 (sigmoid occupancy) or 2 (softmax), got {self.num_classes}")
        if len(self.encoder_channels) != len(self.encoder_shortcuts):
            raise ValueError("encoder_channels and encoder_shortcuts need one entry per stage")
        if len(self.decoder_channels) != len(self.decoder_shortcuts):
            raise ValueError("decoder_channels and decoder_shortcuts need one entry per stage")
        if not set(self.encoder_shortcuts + self.decoder_shortcuts) <= set(SHORTCUTS):
            raise ValueError(f"shortcuts must be among {SHORTCUTS}")
        steps = math.log2(self.resolution / self.grid)
        if steps != int(steps) or steps < 0 or len(self.decoder_channels) < steps:
            raise ValueError(
                f"resolution {self.resolution} must be grid {self.grid} * 2^n with at least n decoder stages"
            )
        for widths, shortcuts in (
            ((3,) + self.encoder_channels, self.encoder_shortcuts),
            ((self.hidden_channels,) + self.decoder_channels, self.decoder_shortcuts),
        ):
            for stage, kind in enumerate(shortcuts):
                if kind == "identity" and widths[stage] != widths[stage + 1]:
                    raise ValueError(f"an identity shortcut needs equal widths, got {widths[stage]} -> {widths[stage + 1]}")
        if self.encoder_output_size < 1:
            raise ValueError(f"input_size {self.input_size} is too small for {len(self.encoder_channels)} poolings")

    @property
    def unpool_stages(self) -> int:
        return int(math.log2(self.resolution / self.grid))

    @property
    def encoder_output_size(self) -> int:
        size = self.input_size
        for _ in self.encoder_channels:
            size = size // 2 + 1  # 2x2 max pooling, stride 2, padding 1
        return size

    @classmethod
    def small(cls) -> "R2N2Config":
        """The embedded default's scale: the same architecture, narrow enough that a few hundred
        steps of batch 8 run in minutes on two CPU cores."""
        return cls(
            encoder_channels=(8, 16, 32, 32, 64, 64),
            fc_features=256,
            hidden_channels=32,
            decoder_channels=(32, 16, 8),
            decoder_shortcuts=("identity", "conv", "conv"),
            norm="batch",
        )


@dataclass(frozen=True)
class UMRConfig:
    """UMR's network (stages.models.umr; NVlabs/UMR nnutils/cub_mesh.py). image_size: input side
    (px, multiple of 64); resnet: encoder; conv_channels: the 4x4/2 conv after it; feature:
    encoder fc width (nz_feat); latent: z size; subdivisions / axis: the icosphere template and
    its mirror axis; hypotheses: camera hypotheses K; texture_size: T (samples per face side);
    uv_channels: first width of the UV flow decoder (nc_init); uv_upconvs: its upsampling steps.
    camera_init: "identity" (every hypothesis starts at the identity rotation, as the original)
    or "azimuths" (hypothesis k starts at the rotation that turns the mirror axis into the
    viewing direction, then by 360 k / K degrees about the template's up axis, so that short
    trainings begin with K distinct side views; `stages.models.umr.initial_quaternions`)."""

    image_size: int = 256
    resnet: ResNetConfig = field(default_factory=lambda: ResNetConfig("basic", (2, 2, 2, 2), (64, 128, 256, 512), 64))
    conv_channels: int = 256
    feature: int = 200
    latent: int = 350
    subdivisions: int = 3
    axis: int = 1
    hypotheses: int = 8
    texture_size: int = 6
    uv_channels: int = 256
    uv_upconvs: int = 5
    camera_init: str = "identity"

    def __post_init__(self):
        if self.image_size % 64 or self.image_size < 64:
            raise ValueError(f"image_size must be a positive multiple of 64, got {self.image_size}")
        if self.hypotheses < 1 or self.subdivisions < 1 or self.texture_size < 1:
            raise ValueError("hypotheses, subdivisions and texture_size must be >= 1")
        if self.axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2, got {self.axis}")
        if self.camera_init not in CAMERA_INITS:
            raise ValueError(f"camera_init must be one of {', '.join(CAMERA_INITS)}, got {self.camera_init!r}")
