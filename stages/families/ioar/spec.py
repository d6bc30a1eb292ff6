"""IOAR's sections of a model file (config/models/ioar.yaml; keys in config/README.md). Torch-free:
the workflow reads them when it builds the DAG."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...model_spec import Paper

BACKBONES = ("mnasnet", "small")
FUSIONS = ("transformer", "mean")
GROUND_TRUTHS = ("scan", "fused")
SPARSE_BACKENDS = ("dense", "spconv")


@dataclass(frozen=True)
class IOARNetwork:
    """The network (stages.models.ioar.IOARNet).

    backbone: "mnasnet" (MNASNet-1.0 + FPN, the original) or "small" (a narrow CNN);
    backbone_weights: a local torchvision mnasnet1_0 ImageNet state dict (never downloaded; ""
    = random initialisation); feature_channels: FPN widths at strides 16/8/4 (coarse, medium,
    fine; the original's 80/40/24); image_size: (width, height) pixels the views are resized to;
    voxel_sizes: metres per voxel, coarse to fine, each half the previous; fusion: per level
    "transformer" (2-layer, 2-head, the original's at every level) or "mean"; unet_base: the
    sparse UNets' base widths (the original's 32/16/8); view_frequencies: L of the view-direction
    encoding; max_voxels: training caps of active voxels per crop at the medium and fine levels
    (2^14, 2^16); fine_occupancy: also run the fine occupancy branch (the original computes it
    and gives it no loss); sparse_backend: "dense" (sparse convolutions as masked dense ones, any
    device) or "spconv" (spconv 2.x on the active voxels only: the paper scale's, on a GPU; the
    same numbers, stages.models.sparse3d_spconv)."""

    backbone: str = "small"
    backbone_weights: str = ""
    feature_channels: tuple[int, int, int] = (32, 24, 16)
    image_size: tuple[int, int] = (160, 120)
    voxel_sizes: tuple[float, float, float] = (0.32, 0.16, 0.08)
    fusion: tuple[str, str, str] = ("mean", "mean", "mean")
    unet_base: tuple[int, int, int] = (16, 12, 8)
    view_frequencies: int = 4
    transformer_layers: int = 2
    transformer_heads: int = 2
    max_voxels: tuple[int, int] = (16384, 65536)
    fine_occupancy: bool = False
    sparse_backend: str = "dense"

    def __post_init__(self):
        if self.sparse_backend not in SPARSE_BACKENDS:
            raise ValueError(f"sparse_backend must be one of {', '.join(SPARSE_BACKENDS)}, got {self.sparse_backend!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {self.backbone!r}")
        if self.backbone_weights and self.backbone != "mnasnet":
            raise ValueError("backbone_weights is only for the mnasnet backbone")
        for kind in self.fusion:
            if kind not in FUSIONS:
                raise ValueError(f"fusion entries must be one of {', '.join(FUSIONS)}, got {kind!r}")
        coarse, medium, fine = self.voxel_sizes
        if not (fine > 0 and abs(medium - 2 * fine) < 1e-9 and abs(coarse - 2 * medium) < 1e-9):
            raise ValueError(f"voxel_sizes must halve from level to level, got {list(self.voxel_sizes)}")
        for c, kind in zip(self.feature_channels, self.fusion):
            if kind == "transformer" and c % self.transformer_heads:
                raise ValueError(f"feature channels {c} not divisible by transformer_heads {self.transformer_heads}")
        if min(self.image_size) < 16 or min(self.max_voxels) < 1 or min(self.unet_base) < 1:
            raise ValueError("image_size >= 16 pixels, max_voxels and unet_base >= 1")


@dataclass(frozen=True)
class IOARTrainOptions:
    """crop: fine voxels (x, y, z) of a training crop, multiples of 4 (the original's 96 x 96 x
    48); views: frames per crop, drawn from the keyframes that see it (20); augment: random
    quarter turns about z and mirror flips of crop and cameras; color_jitter: the amplitude of
    the per-view brightness and contrast factors (1 +- jitter); freeze_trunk: before the
    fine-tuning phase (train.finetune_share) the backbone's trunk gets no gradient (its
    BatchNorms still update their running statistics), and in the phase it trains except for its
    BatchNorm weights, as the original under pytorch-lightning 1.5 (it freezes MNASNet's ImageNet
    layers in its phase 1; pointless for a randomly initialised trunk). The fine-tuning phase
    (IOAR's phase 2) also turns on the occupancy-weighted fusion
    (stages.models.ioar.IOARNet.set_training_phase)."""

    crop: tuple[int, int, int] = (32, 32, 24)
    views: int = 10
    augment: bool = True
    color_jitter: float = 0.2
    freeze_trunk: bool = False

    def __post_init__(self):
        if any(c < 4 or c % 4 for c in self.crop):
            raise ValueError(f"crop must be multiples of 4 voxels, got {list(self.crop)}")
        if self.views < 1 or not 0 <= self.color_jitter < 1:
            raise ValueError("views >= 1 and 0 <= color_jitter < 1")


@dataclass(frozen=True)
class IOAREval:
    """tile: fine voxels (x, y, z) of an inference tile, multiples of 4 (the original's 64 x 64 x
    48); views: at most this many frames per tile (60), evenly spaced over the keyframes that see
    it; frame_stride: every n-th frame is rendered for the depth metrics and the VoRTX culling;
    qualitative_frames: frames per qualitative image; ground_truth: the mesh scored against, "scan"
    (the scan's own mesh, SCANS mesh_path: ScanNet's vh_clean_2.ply, as the original) or "fused"
    (the marching-cubes mesh of the fused 4 cm TSDF, rule fuse_tsdf_test: for synthetic rooms,
    whose scan mesh is the generator's low-poly boxes, a few vertices per wall, and includes
    faces no camera saw; ScanNet's own mesh is itself a dense fusion of what the sensor saw)."""

    tile: tuple[int, int, int] = (48, 48, 24)
    views: int = 15
    frame_stride: int = 1
    qualitative_frames: int = 3
    ground_truth: str = "scan"

    def __post_init__(self):
        if self.ground_truth not in GROUND_TRUTHS:
            raise ValueError(f"ground_truth must be one of {', '.join(GROUND_TRUTHS)}, got {self.ground_truth!r}")
        if any(c < 4 or c % 4 for c in self.tile):
            raise ValueError(f"tile must be multiples of 4 voxels, got {list(self.tile)}")
        if self.views < 1 or self.frame_stride < 1 or self.qualitative_frames < 1:
            raise ValueError("views, frame_stride and qualitative_frames must be >= 1")


@dataclass(frozen=True)
class IOARPaper(Paper):
    """references: published scene-reconstruction figures shown beside the results for scale
    (label -> F-score on ScanNet), with where they come from in the label."""

    references: dict[str, float] = field(default_factory=dict)
