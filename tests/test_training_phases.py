"""The shared loop's fine-tuning phase (IOAR's phase 2): its first step, learning rate and batch
size, the new epoch its batch size starts, the family's `prepare_step`, and a resume on either
side of the switch giving the same weights as an uninterrupted run. A toy linear task in
process: every number below is counted by hand."""

from __future__ import annotations

import csv
import dataclasses
import types

import pytest
import torch

from stages.model_spec import TrainConfig
from stages.training import checkpoints
from stages.training.loop import RunOptions, train
from stages.training.schedules import learning_rate
from stages.training.task import TrainingTask

EXAMPLES = 6  # per epoch: 3 batches of 2, or 6 of 1


def _config(**changes):
    base = dict(batch_size=2, steps=10, lr=0.1, finetune_share=0.5, finetune_lr=0.01, finetune_batch_size=1,
                checkpoint_every=1000, log_every=1)
    return TrainConfig(**{**base, **changes})


def _spec(train_config):
    return types.SimpleNamespace(name="toy", train=train_config,
                                 to_dict=lambda: {"name": "toy", "train": dataclasses.asdict(train_config)})


class _Family:
    """A linear model on fixed data; the bias is frozen before the fine-tuning phase."""

    statistics = ()

    def __init__(self):
        self.batches, self.prepared = [], []

    def training_task(self, spec, inputs, seed, limit):
        generator = torch.Generator().manual_seed(7)
        x, y = torch.randn(EXAMPLES, 3, generator=generator), torch.randn(EXAMPLES, 1, generator=generator)
        model = torch.nn.Linear(3, 1)

        def epoch_batches(epoch, start, world, rank, batch_size, seed):
            order = torch.randperm(EXAMPLES, generator=torch.Generator().manual_seed(100 * seed + epoch))
            for b in range(start, EXAMPLES // batch_size):
                index = order[b * batch_size:(b + 1) * batch_size]
                self.batches.append((epoch, b, batch_size))
                yield x[index], y[index]

        def loss(net, batch, device, step):
            return torch.nn.functional.mse_loss(net(batch[0]), batch[1]), {}

        def prepare_step(net, step):
            self.prepared.append(step)
            train_bias = step >= spec.train.finetune_start
            changed = net.bias.requires_grad != train_bias
            net.bias.requires_grad_(train_bias)
            return changed

        return TrainingTask(model, loss, lambda world, size: EXAMPLES // size, epoch_batches, prepare_step)


def _run(tmp_path, config, family=None):
    family = family or _Family()
    torch.manual_seed(0)
    assert train(_spec(config), family, {}, RunOptions(out_dir=tmp_path, threads=1, keep_checkpoints=10)) == 0
    return family, checkpoints.load(tmp_path / "model.pt", ("recon3d-model",))


def test_the_phase_starts_at_its_share_and_sets_lr_and_batch_size():
    config = _config()
    assert config.finetune_start == 5
    assert [config.batch_size_at(s) for s in (0, 4, 5, 9)] == [2, 2, 1, 1]
    assert [learning_rate(config, s) for s in (0, 4, 5, 9)] == [0.1, 0.1, 0.01, 0.01]
    assert _config(finetune_share=0.0).finetune_start == 10
    # the cosine of phase 1 spans steps 0..finetune_start: half-way at step 3 of 6, at its
    # floor (5 % of lr) from step 6 on when the phase sets no lr of its own
    cosine = _config(schedule="cosine", finetune_lr=0.0, steps=9, finetune_share=1 / 3)
    assert cosine.finetune_start == 6
    assert learning_rate(cosine, 3) == pytest.approx(0.1 * (0.05 + 0.95 * 0.5))
    assert learning_rate(cosine, 6) == pytest.approx(0.1 * 0.05)
    with pytest.raises(ValueError, match="finetune_share"):
        _config(finetune_share=1.0)


def test_the_loop_switches_batch_size_on_a_new_epoch(tmp_path):
    family, model = _run(tmp_path, _config())
    # epoch 0: 3 batches of 2 (steps 0-2); epoch 1: steps 3-4, then its third batch would be
    # step 5, the phase's first: a new epoch of batches of 1 (steps 5-9)
    trained = [(e, b, s) for e, b, s in family.batches]
    assert trained == [(0, 0, 2), (0, 1, 2), (0, 2, 2), (1, 0, 2), (1, 1, 2), (1, 2, 2),
                       (2, 0, 1), (2, 1, 1), (2, 2, 1), (2, 3, 1), (2, 4, 1)]
    assert family.prepared == list(range(10))
    assert model["step"] == 10 and model["examples"] == 5 * 2 + 5 * 1
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
    assert [float(r["lr"]) for r in rows] == [0.1] * 5 + [0.01] * 5
    # the bias, frozen before the phase, trained in it
    torch.manual_seed(0)
    assert not torch.equal(model["model"]["bias"], torch.nn.Linear(3, 1).bias.detach())


def test_a_frozen_parameter_does_not_move_before_the_phase(tmp_path):
    torch.manual_seed(0)
    initial = torch.nn.Linear(3, 1).state_dict()
    _, model = _run(tmp_path, _config(steps=4, finetune_share=0.0))
    assert torch.equal(model["model"]["bias"], initial["bias"])
    assert not torch.equal(model["model"]["weight"], initial["weight"])


@pytest.mark.parametrize("resume_at", [3, 6])
def test_a_resume_on_either_side_of_the_switch_gives_the_same_weights(tmp_path, resume_at):
    _, reference = _run(tmp_path / "ref", _config())
    out = tmp_path / "resumed"
    _run(out, _config(checkpoint_every=3))
    for path in (out / "checkpoints").glob("step-*.pt"):
        if int(path.stem.split("-")[1]) > resume_at:
            path.unlink()
    (out / "model.pt").unlink()
    family, resumed = _run(out, _config(checkpoint_every=3))
    assert family.prepared[0] == resume_at
    for key in reference["model"]:
        assert torch.equal(reference["model"][key], resumed["model"][key]), key


def test_more_steps_resume_only_from_before_either_phase(tmp_path):
    # 10 steps put the phase at step 5, 20 steps at 10, 40 steps at 20
    _run(tmp_path, _config(checkpoint_every=3))
    for path in (tmp_path / "checkpoints").glob("step-*.pt"):
        if path.stem != "step-000000003":
            path.unlink()
    family, _ = _run(tmp_path, _config(checkpoint_every=3, steps=20))
    assert family.prepared[0] == 3  # step 3 lies before both phases: resumed
    # 5 steps done (0..4) lie before a phase that starts at 5 and one that starts at 6
    boundary = tmp_path / "boundary"
    _run(boundary, _config(checkpoint_every=5))
    (boundary / "checkpoints" / "step-000000010.pt").unlink()
    family, _ = _run(boundary, _config(checkpoint_every=5, steps=12))
    assert family.prepared[0] == 5
    family, model = _run(tmp_path, _config(checkpoint_every=3, steps=40))
    # the newest checkpoint (step 20) is in the 20-step run's phase, not yet in the 40-step
    # run's: starting afresh, the old checkpoints kept aside
    assert family.prepared[0] == 0 and model["step"] == 40
    assert (tmp_path / "checkpoints.stale" / "step-000000020.pt").exists()


def test_batch_sizes_that_fit_no_batch_and_shares_that_round_away_are_named(tmp_path, capsys):
    from stages.model_spec import ModelConfigError

    with pytest.raises(ModelConfigError, match=r"train.finetune_batch_size: 6 training examples per process .* of 7"):
        _run(tmp_path / "big", _config(finetune_batch_size=7))
    _run(tmp_path / "none", _config(steps=4, finetune_share=0.01))
    assert "finetune_share 0.01 of 4 steps rounds to no fine-tuning step" in capsys.readouterr().err
    _run(tmp_path / "all", _config(steps=4, finetune_share=0.99))
    assert "rounds to every fine-tuning step" in capsys.readouterr().err
