"""3D-R2N2's sections of a model file (the network's are R2N2Config's, stages/models/configs.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...model_spec import Paper


@dataclass(frozen=True)
class R2N2TrainOptions:
    """max_views: training batches take 1..max_views views of each model (one count per batch)."""

    max_views: int = 5


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
    """by_views: the paper's mean IoU by number of views (at eval.threshold)."""

    by_views: dict[int, float] = field(default_factory=dict)
