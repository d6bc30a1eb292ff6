"""CoReNet's sections of a model file, and the network configuration a spec describes."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...model_spec import ModelSpec
from ...models.configs import CoReNetConfig, CoReNetLayoutConfig, ResNetConfig
from ...taxonomy import SYNSETS

# summary.json's `source` of a model imported from the original's release (stages.import_checkpoint
# marks its files `released`; evaluate writes it, the report labels the model by it); a model
# trained here has no `source`.
RELEASED_CHECKPOINT = "released checkpoint"

TASKS = ("fg_bg", "semantic")


@dataclass(frozen=True)
class CorenetNetwork:
    """scale.<scale>.network: the encoder (a ResNet) and the decoder widths; the meaning of
    every key is CoReNetConfig's (stages/models/configs.py). layout "corenet" (with
    last_upscale_factor) is the released network layer for layer (CoReNetLayoutConfig), which
    released checkpoints import into; "uniform" is this project's own (the small scale)."""

    encoder: ResNetConfig = field(default_factory=ResNetConfig)
    latent_channels: int = 512
    channels: tuple[int, ...] = (256, 128, 64, 32, 16, 16)
    skip_fraction: float = 0.5
    skip_final: bool = False
    position_channels: bool = False
    layout: str = "uniform"
    last_upscale_factor: int = 1


@dataclass(frozen=True)
class CorenetTrainOptions:
    """object_weight: cross-entropy weight of object voxels relative to void (semantic task)."""

    object_weight: float = 1.0


def num_classes(spec: ModelSpec) -> int:
    """2 (void, object) for FG_BG; the 13 classes + void for SEMANTIC."""
    return 2 if spec.task == "fg_bg" else len(SYNSETS) + 1


def network_config(spec: ModelSpec) -> CoReNetConfig:
    """The CoReNetConfig of `spec`'s network at its native resolution and input size."""
    net = spec.network
    layout = {} if net.layout == "uniform" and net.last_upscale_factor == 1 else {
        "layout": net.layout, "last_upscale_factor": net.last_upscale_factor}
    return (CoReNetLayoutConfig if layout else CoReNetConfig)(
        **layout,
        encoder=net.encoder,
        resolution=spec.resolution,
        num_classes=num_classes(spec),
        latent_channels=net.latent_channels,
        channels=net.channels,
        skip_fraction=net.skip_fraction,
        skip_final=net.skip_final,
        input_size=spec.input_size,
        position_channels=net.position_channels,
    )
