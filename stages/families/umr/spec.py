"""UMR's sections of a model file, torch-free (the workflow reads them when it builds the DAG).

network: the fields of `stages.models.configs.UMRConfig` (plus a local ResNet-18 weights file);
train: the two stages' lengths, loss weights, crop and rasteriser settings; eval: PCK alphas,
keypoint-transfer pairs and sampling; paper: the published numbers (left empty where they
cannot be cited).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...model_spec import Paper
from ...models.configs import UMRConfig

# Loss weights. Stage 2: NVlabs/UMR experiments/train_s2.py flags (lines 49-60; equal to
# stages.models.umr_losses.STAGE2_WEIGHTS, which a test checks). Stage 1: train_s1.py flags (lines
# 46-56): mask 3.0, laplacian 0.15, flatten 4e-4, texture 3.0, texture cycle 0.5, deform 5.0 (the
# original only after epoch 5); no semantic terms; the entropy term is this project's, since
# stage 1 here keeps UMR's camera hypotheses (see the README).
LOSS_TERMS = ("mask", "laplacian", "flatten", "deform", "texture", "texture_cycle", "entropy", "part", "vertex")
STAGE1_WEIGHTS = {"mask": 3.0, "laplacian": 0.15, "flatten": 4e-4, "deform": 5.0, "texture": 3.0,
                  "texture_cycle": 0.5, "entropy": 0.05, "part": 0.0, "vertex": 0.0}
STAGE2_WEIGHTS = {"mask": 2.5, "laplacian": 0.15, "flatten": 5e-4, "deform": 1.0, "texture": 3.0,
                  "texture_cycle": 1.0, "entropy": 0.05, "part": 5.0, "vertex": 10.0}


@dataclass(frozen=True)
class UMRNetwork(UMRConfig):
    """stages.models.configs.UMRConfig's fields (see there) and `pretrained`: a local torchvision
    ResNet-18 state dict loaded into the encoder when the model is built ("" = from scratch;
    nothing is downloaded)."""

    pretrained: str = ""


@dataclass(frozen=True)
class UMRTrainOptions:
    """stage1_steps: optimizer steps of stage 1 (shape, camera hypotheses and texture, no
    semantics); at that step the semantic template is computed and stage 2 (semantic part-map
    and vertex terms) runs to `steps`. render_size: side of the soft renders the losses compare
    (0 = the input size, as UMR). sigma, gamma, dist_eps: the soft rasterizer's (UMR: 1e-5,
    1e-4, 1e-10 at 256 px). jitter: bbox jitter fraction per side in training (UMR 0.05);
    mirror: random left-right mirror in training. stage1_weights / stage2_weights: loss weights
    that differ from the original's (STAGE1_WEIGHTS, STAGE2_WEIGHTS). part_points: pixels drawn
    per part for the vertex Chamfer term. template_images: training images the semantic template
    is computed from (0 = all). sample_camera: the texture and part renders use a camera drawn
    from the hypotheses' probabilities (UMR) rather than the most probable one."""

    stage1_steps: int = 0
    render_size: int = 0
    sigma: float = 1e-5
    gamma: float = 1e-4
    dist_eps: float = 1e-10
    jitter: float = 0.05
    mirror: bool = True
    stage1_weights: dict[str, float] = field(default_factory=dict)
    stage2_weights: dict[str, float] = field(default_factory=dict)
    part_points: int = 64
    template_images: int = 0
    sample_camera: bool = True

    def __post_init__(self):
        for key, weights in (("stage1_weights", self.stage1_weights), ("stage2_weights", self.stage2_weights)):
            unknown = sorted(set(weights) - set(LOSS_TERMS))
            if unknown:
                raise ValueError(f"{key}: unknown loss terms {unknown} (known: {', '.join(LOSS_TERMS)})")
            if any(w < 0 for w in weights.values()):
                raise ValueError(f"{key}: weights must be >= 0")
        if self.stage1_steps < 0 or self.render_size < 0 or self.part_points < 1 or self.template_images < 0:
            raise ValueError("stage1_steps, render_size and template_images must be >= 0, part_points >= 1")
        if not 0 <= self.jitter < 0.5:
            raise ValueError(f"jitter must be in [0, 0.5), got {self.jitter}")

    def weights(self, stage: int) -> dict[str, float]:
        """The loss weights of stage 1 or 2: the original's with this file's overrides."""
        base, over = (STAGE1_WEIGHTS, self.stage1_weights) if stage == 1 else (STAGE2_WEIGHTS, self.stage2_weights)
        return {**base, **over}


@dataclass(frozen=True)
class UMREval:
    """alphas: PCK thresholds as fractions of the longer side of the tight bbox (UMR: 0.1, 0.15);
    pairs: keypoint-transfer image pairs per scale (test_kp.py: 10,000; both directions scored),
    drawn with replacement from RandomState(pair_seed) (None: the number of test images, as the
    original). sampling: false scores the latent mean and the most probable camera without
    mirroring (deterministic); true reproduces the original's random latent, multinomial
    camera and random test-time mirror (seeded). heatmap_sigma: the texture-flow transfer's
    Gaussian in pixels at a 256 px input (test_kp.py: 3), scaled with the input size.
    baseline_images: training images whose predicted cameras average into the mean-template
    baseline's camera (0 = all)."""

    alphas: tuple[float, ...] = (0.1, 0.15)
    pairs: dict[str, int] = field(default_factory=lambda: {"paper": 10000, "small": 300})
    pair_seed: int | None = None
    sampling: bool = False
    heatmap_sigma: float = 3.0
    baseline_images: int = 500

    def __post_init__(self):
        if not self.alphas or min(self.alphas) <= 0:
            raise ValueError(f"alphas must be positive fractions, got {list(self.alphas)}")
        if any(n < 1 for n in self.pairs.values()):
            raise ValueError("pairs must be >= 1")
        if self.heatmap_sigma <= 0 or self.baseline_images < 0:
            raise ValueError("heatmap_sigma must be > 0 and baseline_images >= 0")


@dataclass(frozen=True)
class UMRPaper(Paper):
    """The UMR paper's CUB figures (mean_iou: mask IoU; pck: {alpha: PCK} of keypoint
    transfer), only as read in its table; empty when they could not be read and cited."""

    pck: dict[float, float] = field(default_factory=dict)
