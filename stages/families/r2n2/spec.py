"""3D-R2N2's sections of a model file (the network's are R2N2Config's, stages/models/configs.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...model_spec import Paper


AUGMENTATIONS = ("r2n2", "pix2vox")
VIEW_COUNTS = ("random", "fixed")
LOSSES = ("cross_entropy", "bce")
SPLITS = ("any", "original", "pix2vox")


@dataclass(frozen=True)
class R2N2TrainOptions:
    """The family's keys of `scale.<s>.train`; the defaults are the released 3D-R2N2's.

    max_views: views per training example, at most; view_count: "random" (every batch draws
    its count in 1..max_views, the original) or "fixed" (always max_views, the PaddlePaddle
    port's N_VIEWS_RENDERING 5); loss: "cross_entropy" (2-class softmax, needs network
    num_classes 2) or "bce" (sigmoid, num_classes 1); loss_weight: factor on the loss (the port
    multiplies its BCE by 10); augmentation: "r2n2" (lib/data_augmentation.py: random crop of
    `crop` px, flip, random background) or "pix2vox" (hzxie/Pix2Vox utils/data_transforms.py as
    the port composes it: centre crop of `crop` px resized to network.input_size, random
    background, colour jitter, PCA lighting noise, normalisation, per-view flip, RGB
    permutation); crop: side (px) taken from each view before any resize (test: the centre);
    color_jitter: (brightness, contrast, saturation) amplitudes d, each factor ~ U[1-d, 1+d];
    lighting_std: standard deviation of the PCA lighting coefficients (images in [0, 1]);
    permute_rgb: shuffle the channels (one permutation per example); mean, std: inputs become
    (x - mean) / std with x in [0, 1]; split: the view table split the model is meant for
    ("any", or "original"/"pix2vox": the workflow refuses other `r2n2.split` settings).
    color_jitter, lighting_std and permute_rgb only act with augmentation "pix2vox"."""

    max_views: int = 5
    view_count: str = "random"
    loss: str = "cross_entropy"
    loss_weight: float = 1.0
    augmentation: str = "r2n2"
    crop: int = 127
    color_jitter: tuple[float, float, float] = (0.0, 0.0, 0.0)
    lighting_std: float = 0.0
    permute_rgb: bool = False
    mean: float = 0.0
    std: float = 1.0
    split: str = "any"

    def __post_init__(self):
        for key, allowed in (("view_count", VIEW_COUNTS), ("loss", LOSSES), ("augmentation", AUGMENTATIONS),
                             ("split", SPLITS)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key} must be one of {', '.join(allowed)}, got {getattr(self, key)!r}")
        if self.max_views < 1:
            raise ValueError(f"max_views must be >= 1, got {self.max_views}")
        if not self.loss_weight > 0 or not self.std > 0:
            raise ValueError("loss_weight and std must be > 0")
        if min(self.color_jitter) < 0 or max(self.color_jitter) >= 1 or self.lighting_std < 0:
            raise ValueError("color_jitter amplitudes must be in [0, 1) and lighting_std >= 0")


@dataclass(frozen=True)
class R2N2Eval:
    """thresholds: occupancy thresholds IoU is computed at (the paper's 0.2..0.5); views: the
    view counts evaluated (the first n views of each test model); threshold: the one the
    headline and the training statistic use (the released test code's TEST.VOXEL_THRESH)."""

    thresholds: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5)
    views: tuple[int, ...] = (1, 2, 3, 4, 5)
    threshold: float = 0.4

    def __post_init__(self):
        if self.threshold not in self.thresholds:
            raise ValueError(f"eval.threshold {self.threshold} must be one of eval.thresholds {list(self.thresholds)}")
        if not self.views or min(self.views) < 1:
            raise ValueError(f"eval.views must be view counts >= 1, got {list(self.views)}")


@dataclass(frozen=True)
class R2N2Paper(Paper):
    """by_views: the published mean IoU by number of views (at eval.threshold); by_class: the
    published per-class IoU with the most views at eval.threshold; baseline_by_class: the
    per-class figures per_class.csv shows as "baseline" (the PaddlePaddle port's test table
    shows 3D-R2N2's own per-class 5-view IoU there, from Pix2Vox's ShapeNet.json); falls back to
    by_class; baseline_source: where those come from."""

    by_views: dict[int, float] = field(default_factory=dict)
    by_class: dict[str, float] = field(default_factory=dict)
    baseline_by_class: dict[str, float] = field(default_factory=dict)
    baseline_source: str = ""
