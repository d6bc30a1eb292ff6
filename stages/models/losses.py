"""CoReNet's losses, on logits [B, C, D, H, W] and label grids [B, D, H, W] (0 = void).

FG_BG models: 1 - soft IoU of the foreground probability (1 - p(void)) with the occupied
voxels, per example, averaged over the batch. SEMANTIC models: (1 + class-agnostic soft IoU
loss) * (1 + weighted cross-entropy), where the class-agnostic IoU compares the one-hot ground
truth with the softmax over all non-void classes at once, weighting a voxel's true class by
C - 1 (as CoReNet does) so that one correct class outweighs the C - 2 it is not.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _batch_iou(intersection: torch.Tensor, union: torch.Tensor) -> torch.Tensor:
    batch = intersection.shape[0]
    intersection = intersection.reshape(batch, -1).sum(1)
    union = union.reshape(batch, -1).sum(1)
    # an empty scene predicted empty is a perfect answer, not a division by zero
    return torch.where(union > 0, intersection / union.clamp_min(1e-12), torch.ones_like(union))


def soft_iou_fgbg_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    probs = logits.float().softmax(dim=1)
    foreground = 1 - probs[:, 0]
    truth = (labels > 0).to(foreground.dtype)
    iou = _batch_iou(torch.minimum(foreground, truth), torch.maximum(foreground, truth))
    return 1 - iou.mean()


def soft_iou_agnostic_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    classes = logits.shape[1]
    probs = logits.float().softmax(dim=1)[:, 1:]
    truth = F.one_hot(labels.long(), classes).permute(0, 4, 1, 2, 3)[:, 1:].to(probs.dtype)
    weights = torch.where(truth > 0, float(classes - 1), 1.0)
    iou = _batch_iou(torch.minimum(probs, truth) * weights, torch.maximum(probs, truth) * weights)
    return 1 - iou.mean()


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor | None) -> torch.Tensor:
    """Mean over voxels of the cross-entropy, each voxel weighted by its true class's weight."""
    per_voxel = F.cross_entropy(logits.float(), labels.long(), reduction="none")
    if class_weights is not None:
        per_voxel = per_voxel * class_weights.to(per_voxel.device)[labels.long()]
    return per_voxel.mean()


def semantic_loss(logits, labels, class_weights: torch.Tensor | None = None) -> torch.Tensor:
    return (1 + soft_iou_agnostic_loss(logits, labels)) * (1 + weighted_cross_entropy(logits, labels, class_weights))


def corenet_loss(task: str, logits, labels, class_weights=None) -> torch.Tensor:
    if task == "fg_bg":
        return soft_iou_fgbg_loss(logits, labels)
    if task == "semantic":
        return semantic_loss(logits, labels, class_weights)
    raise ValueError(f"unknown task {task!r} (expected fg_bg or semantic)")
