"""The papers' numbers, measured on real ShapeNet (this pipeline's default data is synthetic).

Shown next to a model that mirrors a paper model, always labelled as the paper's number on real
ShapeNet: they say whether a reimplementation is in the right range, not that it matches.
"""

from __future__ import annotations

# CoReNet (Popov et al., ECCV 2020), mean IoU over classes, as fractions.
CORENET_MEAN_IOU: dict[str, float] = {
    "h5": 0.579,
    "h7": 0.591,
    "y1": 0.533,
    "m7": 0.431,
    "m9": 0.439,
}

# 3D-R2N2 (Choy et al., ECCV 2016), Res3D-GRU-3 mean IoU by number of input views.
R2N2_MEAN_IOU_BY_VIEWS: dict[int, float] = {1: 0.560, 2: 0.603, 3: 0.617, 4: 0.625, 5: 0.634}

# The voxel occupancy threshold the 3D-R2N2 numbers above are compared at.
R2N2_PAPER_THRESHOLD = 0.4

PAPER_LABEL = "paper (real ShapeNet)"


def paper_mean_iou(model: str, summary_value: float | None, summary_has_key: bool) -> float | None:
    """The paper's mean IoU for a model: the evaluation's own statement wins, else by name."""
    if summary_has_key:
        return summary_value
    return CORENET_MEAN_IOU.get(model)
