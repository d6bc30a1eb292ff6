"""IOAR in the shared training machinery: the network of a spec, one crop per training scan and
epoch (the original's epoch), batches of `batch_size` crops, the loss and statistics."""

from __future__ import annotations

import numpy as np
import torch

from ...model_spec import ModelSpec
from ...models.ioar import IOARNet, ioar_losses, normalize_images
from ...training.task import TrainingTask
from .data import ScanCrops, collate, read_frames, read_volumes

INPUT_KEYS = ("K", "cam_to_world", "view_valid", "origin")


def build_model(spec: ModelSpec) -> IOARNet:
    """The network of `spec`, initialised from torch's current seed."""
    return IOARNet(spec.network)


def to_device(batch: dict, device) -> dict:
    """The model's inputs on `device`: images normalised, geometry as float32."""
    out = {k: batch[k].to(device) for k in INPUT_KEYS}
    out["images"] = normalize_images(batch["images"].to(device))
    out["dims"] = batch["dims"]
    if "seed" in batch:
        out["generator"] = torch.Generator().manual_seed(int(batch["seed"]))
    return out


# the value logged when a term has nothing to score in a batch
EMPTY_STATISTIC = {"occ_acc": 0.0, "tsdf_l1": 1.0, "proj_occ_bce": 0.0}


def batch_loss(model, batch: dict, device, voxel_sizes) -> tuple[torch.Tensor, dict]:
    """IOAR's loss of a batch of crops (`ioar_losses`; voxel_sizes: the network's, metres per
    level) and its statistics (occ_acc, tsdf_l1, proj_occ_bce; EMPTY_STATISTIC's value when a
    term has nothing to score)."""
    output = model(to_device(batch, device))
    targets = {"labels": [x.to(device) for x in batch["labels"]], "tsdf": batch["tsdf"].to(device),
               "tsdf_mask": batch["tsdf_mask"].to(device)}
    if "depth" in batch:
        targets["depth"] = batch["depth"].to(device)
    loss, stats = ioar_losses(output, targets, voxel_sizes)
    stats = {k: EMPTY_STATISTIC[k] if np.isnan(v) else v for k, v in stats.items()}
    return loss, stats


def epoch_order(count: int, epoch: int, seed: int) -> list[int]:
    """The scans of an epoch in their random order (from (seed, epoch))."""
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(count, generator=generator).tolist()


def training_task(spec: ModelSpec, inputs, seed: int = 0, limit: int | None = None) -> TrainingTask:
    """Crops of the training scans (inputs: frames = FRAMES shards, tsdf = TSDF_VOLUMES shards
    of the training split)."""
    fine = spec.network.voxel_sizes[2]
    crops = ScanCrops(read_frames(inputs["frames"], depth=True), read_volumes(inputs["tsdf"], fine), spec.network,
                      spec.train_options)
    count = len(crops) if limit is None else min(limit, len(crops))

    def batches_per_epoch(world, batch_size):
        return count // world // batch_size

    def epoch_batches(epoch, start, world, rank, batch_size, seed):
        order = epoch_order(count, epoch, seed)
        per_rank = batches_per_epoch(world, batch_size) * batch_size
        mine = order[rank::world][:per_rank]
        for b in range(start, per_rank // batch_size):
            indices = mine[b * batch_size:(b + 1) * batch_size]
            # one seed per (seed, epoch, scan): the same crop whichever rank or resume builds it
            items = [crops.item(i, (int(seed) * 1_000_003 + epoch) * 65_537 + i) for i in indices]
            batch = collate(items)
            batch["seed"] = (int(seed) * 1_000_003 + epoch) * 65_537 + b * world + rank
            yield batch

    def prepare_step(model, step):
        return model.set_training_phase(step >= spec.train.finetune_start, spec.train_options.freeze_trunk)

    return TrainingTask(build_model(spec), lambda m, b, d, s: batch_loss(m, b, d, spec.network.voxel_sizes),
                        batches_per_epoch,
                        epoch_batches, prepare_step, find_unused_parameters=True)
