"""The UMR network of a spec (`stages.models.umr.UMR`) with the semantic template as buffers.

`UMRNet` adds to UMR's network what stage 2 needs and what a checkpoint must carry so that a
run resumed after the stage boundary continues exactly: `semantic_ready` (0 until the template
is computed), `vertex_parts` [V] and `face_parts` [F] (part labels 1 head, 2 neck, 3 back,
4 belly; 0 where no training image saw the vertex or face). The template itself is UMR's
`mean_v` buffer, updated once at the stage boundary (see `task.compute_semantic_template`).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import torch

from ...errors import StageError
from ...models.configs import UMRConfig
from ...models.umr import UMR, load_resnet18_weights
from .spec import UMRNetwork

NUM_RENDERED_PARTS = 4  # head, neck, back, belly (umr_losses.part_map_loss's rendered channels)


def umr_config(network: UMRNetwork) -> UMRConfig:
    """The network config of a model file's network section (its fields less `pretrained`)."""
    return UMRConfig(**{f.name: getattr(network, f.name) for f in fields(UMRConfig)})


class UMRNet(UMR):
    """UMR's network plus the semantic template buffers (module docstring)."""

    def __init__(self, config: UMRConfig):
        super().__init__(config)
        self.register_buffer("semantic_ready", torch.zeros((), dtype=torch.uint8))
        self.register_buffer("vertex_parts", torch.zeros(len(self.template.vertices), dtype=torch.int64))
        self.register_buffer("face_parts", torch.zeros(len(self.template.faces), dtype=torch.int64))

    def part_textures(self, batch: int) -> torch.Tensor:
        """One-hot SoftRas surface textures [B, F, T*T, 4] of the face part labels (channels head,
        neck, back, belly; unlabelled faces all zero)."""
        onehot = torch.nn.functional.one_hot(self.face_parts, NUM_RENDERED_PARTS + 1)[:, 1:].to(self.mean_v.dtype)
        t2 = self.uv_sampler.shape[1]
        return onehot[None, :, None, :].expand(batch, -1, t2, -1)

    def part_vertices(self) -> list[torch.Tensor]:
        """Vertex indices of head, belly, neck, back (umr_losses.VERTEX_PART_WEIGHTS's order)."""
        return [torch.nonzero(self.vertex_parts == p).squeeze(1) for p in (1, 4, 2, 3)]


def build_model(spec, pretrained: bool = False) -> UMRNet:
    """The network of `spec`, initialised from torch's current seed. With `pretrained` (training
    starts) and network.pretrained set, the encoder's ResNet-18 weights come from that local file
    (stages.models.umr.load_resnet18_weights); a missing or unfitting file is a StageError."""
    model = UMRNet(umr_config(spec.network))
    path = spec.network.pretrained
    if pretrained and path:
        if not Path(path).is_file():
            raise StageError(f"{path}: no such ResNet-18 weights file (network.pretrained)")
        try:
            load_resnet18_weights(model.encoder.resnet, path)
        except ValueError as err:
            raise StageError(str(err)) from None
    return model
