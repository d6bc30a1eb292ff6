"""The optimizer and learning-rate schedule a model spec's `train` section names."""

from __future__ import annotations

import math

import torch

from ..model_spec import TrainConfig


def make_optimizer(train: TrainConfig, parameters) -> torch.optim.Optimizer:
    """torch.optim.Adam with the spec's lr, betas, eps and (L2) weight decay."""
    if train.optimizer != "adam":  # model_spec.TrainConfig refuses anything else already
        raise ValueError(f"unknown optimizer {train.optimizer!r}")
    return torch.optim.Adam(parameters, lr=train.lr, betas=train.betas, eps=train.adam_eps,
                            weight_decay=train.weight_decay)


def learning_rate(train: TrainConfig, step: int) -> float:
    """The learning rate of optimizer step `step` (0-based): linear warm-up over
    `warmup_steps`, then constant, cosine (to 5 % of `lr` at the last step) or piecewise
    constant (`lr_steps`: the value of the last boundary <= step); in the fine-tuning phase
    (step >= train.finetune_start) `finetune_lr` when it is set, and the cosine ends at its
    start."""
    if step >= train.finetune_start and train.finetune_lr > 0:
        return train.finetune_lr
    if train.warmup_steps and step < train.warmup_steps:
        return train.lr * (step + 1) / train.warmup_steps
    if train.schedule == "cosine":
        span = max(1, train.finetune_start - train.warmup_steps)
        progress = min(1.0, (step - train.warmup_steps) / span)
        return train.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
    if train.schedule == "steps":
        lr = train.lr
        for boundary, value in sorted((int(k), float(v)) for k, v in train.lr_steps.items()):
            if step >= boundary:
                lr = value
        return lr
    return train.lr
