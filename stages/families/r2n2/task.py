"""3D-R2N2 in the shared training machinery: the network a spec describes, its per-epoch
batches (one view count per batch, the same on every rank: random in 1..max_views, or always
max_views with `train.view_count: fixed`), loss and predictions. The preprocessing comes from
the spec's train options (`preprocessing`): the released 3D-R2N2's by default, the PaddlePaddle
port's Pix2Vox transforms with `train.augmentation: pix2vox`."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from ...model_spec import ModelSpec
from ...models.r2n2 import Res3DGRU3, occupancy_probability, r2n2_loss
from ...training.task import TrainingTask
from ...voxel_metrics import binary_iou
from .data import Preprocessing, R2N2Views, ViewBatchSampler, collate_views, preprocess_views


def build_model(spec: ModelSpec) -> Res3DGRU3:
    """The Res3D-GRU-3 network of `spec`, initialised from torch's current seed."""
    return Res3DGRU3(spec.network)


def preprocessing(spec: ModelSpec) -> Preprocessing:
    """The view preprocessing of `spec` (its train options; the test side is used by the
    evaluation and prediction too)."""
    return Preprocessing.of(spec.train_options, spec.network.input_size)


def batch_loss(model, batch: dict, device, threshold: float, weight: float = 1.0) -> tuple[torch.Tensor, dict]:
    """Loss of a batch (r2n2_loss: cross-entropy, or BCE for one output channel) times `weight`,
    and its IoU at the occupancy `threshold` (one figure per batch)."""
    logits = model(batch["views"].to(device, non_blocking=True))
    voxels = batch["voxels"].to(device)
    loss = r2n2_loss(logits.float(), voxels)
    if weight != 1.0:
        loss = loss * weight
    with torch.no_grad():
        iou = binary_iou(occupancy_probability(logits.float()) >= threshold, voxels > 0)
    return loss, {"iou": iou}


def training_task(spec: ModelSpec, inputs, seed: int = 0, limit: int | None = None) -> TrainingTask:
    """Batches of the training split of the view table (inputs: views, one Parquet file)."""
    views_table = inputs["views"][0]
    options = spec.train_options
    max_views = options.max_views
    fixed_views = max_views if options.view_count == "fixed" else None
    dataset = R2N2Views(views_table, "train", train=True, preprocessing=preprocessing(spec), default_views=max_views)
    if limit is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    total_views = dataset.dataset.total_views if limit is not None else dataset.total_views

    def index_batches(world, rank, seed, batch_size):
        sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
        return BatchSampler(sampler, batch_size, drop_last=True)

    def batches_per_epoch(world, batch_size):
        return len(index_batches(world, 0, 0, batch_size))

    def epoch_batches(epoch, start, world, rank, batch_size, seed):
        views = ViewBatchSampler(index_batches(world, rank, seed, batch_size), total_views,
                                 max_views, train=True, num_views=fixed_views, seed=seed)
        views.set_epoch(epoch)
        batches = list(views)[start:]  # the same draws as an uninterrupted epoch, minus those done
        return DataLoader(dataset, batch_sampler=batches, collate_fn=collate_views,
                          num_workers=spec.train.loader_workers)

    threshold, weight = spec.eval.threshold, options.loss_weight
    return TrainingTask(build_model(spec), lambda m, b, d, s: batch_loss(m, b, d, threshold, weight),
                        batches_per_epoch, epoch_batches)


@torch.no_grad()
def predict_occupancy(model: Res3DGRU3, images: list[np.ndarray], device, config: Preprocessing = Preprocessing()) -> np.ndarray:
    """Occupancy probability [32, 32, 32] ([z, y, x]) from any number of RGB views (uint8
    [137, 137, 3], preprocessed like the test set of `config`: background 240, centre crop)."""
    rgba = [np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], -1) for img in images]
    views = preprocess_views(rgba, False, np.random.default_rng(0), config)
    logits = model(torch.from_numpy(views)[None].to(device))
    return occupancy_probability(logits.float())[0].cpu().numpy()
