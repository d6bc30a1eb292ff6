"""What the training loop needs from a model family (`TrainingTask`), and the task over a
map-style dataset that most families use (`indexed_task`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch


@dataclass
class TrainingTask:
    """The network, the loss of a batch, and the batches of one epoch for one rank.

    loss: (model, batch, device, step) -> (scalar loss tensor, {statistic: float}) where the
        statistics are the family's `statistics` (logged per window in metrics.csv);
    batches_per_epoch: (world, batch_size) -> full batches per rank and epoch;
    epoch_batches: (epoch, start, world, rank, batch_size, seed) -> the batches of `epoch` for
        `rank`, skipping the first `start` (already trained before a resume). Everything random
        in them must derive from (seed, epoch, index), so a resumed run sees the same batches;
    prepare_step: None, or (model, step) -> bool, called before every optimizer step with the
        unwrapped model: puts it into the state of that step's training phase (frozen layers,
        IOAR's phase 2), a function of `step` alone so that a resumed run gets the same state;
        returns True when it changed which parameters require gradients (the loop then wraps
        the model in DistributedDataParallel anew);
    find_unused_parameters: DistributedDataParallel's option, for a network whose loss may not
        reach every parameter in a step (IOAR: an empty level, the fine occupancy branch that
        gets no loss; the original's Lightning DDP had it on by default).
    """

    model: torch.nn.Module
    loss: Callable
    batches_per_epoch: Callable[[int, int], int]
    epoch_batches: Callable[[int, int, int, int, int, int], Iterable]
    prepare_step: Callable[[torch.nn.Module, int], bool] | None = None
    find_unused_parameters: bool = False


def indexed_task(model, dataset, collate, loss, workers: int = 0) -> TrainingTask:
    """A TrainingTask over a map-style dataset: a DistributedSampler per epoch, cut into
    batches; the dataset's own randomness follows `set_epoch` when it has one."""

    def sampler(world, rank, seed):
        return torch.utils.data.distributed.DistributedSampler(
            dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True
        )

    def batches_per_epoch(world, batch_size):
        return len(sampler(world, 0, 0)) // batch_size

    def epoch_batches(epoch, start, world, rank, batch_size, seed):
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        s = sampler(world, rank, seed)
        s.set_epoch(epoch)
        indices = list(iter(s))[start * batch_size : batches_per_epoch(world, batch_size) * batch_size]
        return torch.utils.data.DataLoader(
            torch.utils.data.Subset(dataset, indices), batch_size=batch_size, shuffle=False,
            num_workers=workers, collate_fn=collate, drop_last=True, pin_memory=torch.cuda.is_available(),
        )

    return TrainingTask(model, loss, batches_per_epoch, epoch_batches)
