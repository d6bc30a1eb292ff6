"""The training loop every family shares: optimizer steps over the family's task, metrics log,
atomic checkpoints, resume, preemption.

Resumable by construction: every `checkpoint_every` steps (and at the end) rank 0 writes
`<out-dir>/checkpoints/step-NNNNNNNNN.pt` atomically; a rerun loads the newest one and continues
with the same step counter, data order and learning rate. SIGTERM or SIGUSR1 (SLURM's
preemption warning) makes every rank stop at the next step boundary, rank 0 write a checkpoint,
and the run end with `EXIT_INTERRUPTED` (75, "try again"). A checkpoint of another
configuration is moved to `checkpoints.stale/` and training starts afresh.

Determinism: the initial weights come from `torch.manual_seed(seed)`, the data order and every
augmentation from (seed, epoch, index); on one machine with the same thread count two runs give
bit-identical weights on the CPU (tests/test_training.py checks it per family). CUDA kernels
(atomics in scatter/index_add, cuDNN algorithm choice) and a different thread count may change
the last bits, and so the numbers, from run to run.
"""

from __future__ import annotations

import csv
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import torch

from ..atomic import atomic_write
from ..errors import EXIT_INTERRUPTED
from ..model_spec import ModelConfigError, ModelSpec, TrainConfig
from . import checkpoints
from .distributed import Distributed, StopRequest
from .schedules import learning_rate, make_optimizer


@dataclass(frozen=True)
class RunOptions:
    """out_dir: results/models/<name>; seed: initial weights and data order; limit: only the
    first N training examples (tests); device: auto, cpu or cuda; threads: torch CPU threads
    over all processes (0: torch's default); keep_checkpoints: step checkpoints kept."""

    out_dir: Path
    seed: int = 0
    limit: int | None = None
    device: str = "auto"
    threads: int = 0
    keep_checkpoints: int = 3


def metric_columns(statistics: Sequence[str]) -> list[str]:
    """The columns of metrics.csv: step, epoch, examples, loss, the family's statistics, lr,
    examples_per_s, elapsed_s."""
    return ["step", "epoch", "examples", "loss", *statistics, "lr", "examples_per_s", "elapsed_s"]


def write_metrics(path: Path, rows: list[dict], statistics: Sequence[str]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=metric_columns(statistics))
            writer.writeheader()
            writer.writerows(rows)

    atomic_write(path, write)


def _without_steps(spec: dict) -> dict:
    spec = dict(spec)
    spec["train"] = {k: v for k, v in dict(spec.get("train", {})).items() if k != "steps"}
    return spec


def _same_run(saved: dict, current: dict, step: int) -> bool:
    """Whether a checkpoint of `step` can be resumed: everything but the step count must match,
    and with a fine-tuning phase (whose first step follows the step count) the checkpoint must
    lie before the phase's first step of both runs or the two runs' phases start alike."""
    if _without_steps(saved) != _without_steps(current):
        return False
    if not current.get("train", {}).get("finetune_share"):
        return True
    start_saved, start_now = finetune_start(saved), finetune_start(current)
    return start_saved == start_now or step <= min(start_saved, start_now)


def finetune_start(spec: dict) -> int:
    """The fine-tuning phase's first step of a spec saved as plain data."""
    return TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["train"].items()}).finetune_start


def train(spec: ModelSpec, family, inputs: Mapping[str, Sequence[str]], options: RunOptions) -> int:
    """Train `spec` with its family's task on `inputs` (files by role); returns the exit code
    (0, or EXIT_INTERRUPTED after a stop request). Writes model.pt, metrics.csv and checkpoints
    under options.out_dir."""
    ddp = Distributed(options.device)
    if options.threads > 0:
        torch.set_num_threads(max(1, options.threads // ddp.world))
    torch.manual_seed(options.seed)  # same initial weights on every rank (DDP also broadcasts them)
    task = family.training_task(spec, inputs, options.seed, options.limit)
    statistics = tuple(family.statistics)
    model = task.model.to(ddp.device)
    optimizer = make_optimizer(spec.train, model.parameters())
    out_dir = Path(options.out_dir)
    ckpt_dir = out_dir / "checkpoints"
    step, epoch, position, examples, elapsed, rows = 0, 0, 0, 0, 0.0, []
    resume = checkpoints.latest(ckpt_dir)
    state = checkpoints.load(resume, ("recon3d-checkpoint",), map_location=ddp.device) if resume else None
    if state is not None and not _same_run(state["spec"], spec.to_dict(), state["step"]):
        # a changed configuration (Snakemake reruns the rule on a params/config change) starts
        # afresh; the old checkpoints are kept aside, not deleted
        ddp.barrier()
        if ddp.main:
            stale = out_dir / "checkpoints.stale"
            if stale.exists():
                shutil.rmtree(stale)
            ckpt_dir.rename(stale)
            saved, now = state["spec"], spec.to_dict()
            why = (f"their run's fine-tuning phase starts at step {finetune_start(saved)}, this run's at "
                   f"{finetune_start(now)}, and the newest checkpoint (step {state['step']}) is past one of them"
                   if _without_steps(saved) == _without_steps(now) else "they come from a different configuration")
            print(f"checkpoints in {ckpt_dir} cannot be resumed: {why}; moved to {stale}, "
                  "starting from step 0", file=sys.stderr)
        ddp.barrier()
        state = None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, epoch, position = state["step"], state["epoch"], state["position"]
        examples, elapsed, rows = state["examples"], state["elapsed_s"], list(state["log"])
        if ddp.main:
            print(f"resuming from {resume} at step {step}", file=sys.stderr)

    def wrapped():
        if ddp.world == 1:
            return model
        return torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=task.find_unused_parameters)

    net = wrapped()
    for first, key in ((0, "batch_size"), (spec.train.finetune_start, "finetune_batch_size")):
        size = spec.train.batch_size_at(first)
        if first < spec.train.steps and task.batches_per_epoch(ddp.world, size) == 0:
            hint = ("models.batch_size in the config, --batch-size here" if key == "batch_size"
                    else "train.finetune_batch_size in the model file")
            raise ModelConfigError(
                f"train.{key}: {task.batches_per_epoch(ddp.world, 1)} training examples per process "
                f"({ddp.world} process(es)) give no full batch of {size}; lower it ({hint})")
    share = spec.train.finetune_share
    if ddp.main and share > 0 and spec.train.finetune_start in (0, spec.train.steps):
        print(f"warning: train.finetune_share {share} of {spec.train.steps} steps rounds to "
              f"{'every' if spec.train.finetune_start == 0 else 'no'} fine-tuning step", file=sys.stderr)
    stop = StopRequest()
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if ddp.device.type == "cuda"
                else torch.autocast("cpu", enabled=False))

    def save_checkpoint():
        if ddp.main:
            try:
                write_checkpoint()
            except BaseException:
                if progress is not None:
                    progress.close()  # so that the one-line error starts a line of its own
                raise
        ddp.barrier()

    def write_checkpoint():
        checkpoints.save(
            checkpoints.step_path(ckpt_dir, step),
            {
                "kind": "recon3d-checkpoint",
                "spec": spec.to_dict(),
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "epoch": epoch,
                "position": position,
                "examples": examples,
                "elapsed_s": elapsed,
                "log": rows,
            },
        )
        checkpoints.prune(ckpt_dir, options.keep_checkpoints)
        write_metrics(out_dir / "metrics.csv", rows, statistics)

    progress = None
    if ddp.main:
        from tqdm import tqdm

        progress = tqdm(total=spec.train.steps, initial=step, desc=f"train {spec.name}", unit="step",
                        file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 10.0)
    window_loss, window_stats, window_n, window_examples = 0.0, dict.fromkeys(statistics, 0.0), 0, 0
    window_start = time.perf_counter()
    net.train()
    while step < spec.train.steps:
        batch_size = spec.train.batch_size_at(step - position)  # the batch size this epoch began with
        loader = task.epoch_batches(epoch, position, ddp.world, ddp.rank, batch_size, options.seed)
        for batch in loader:
            if spec.train.batch_size_at(step) != batch_size:
                break  # the fine-tuning phase's batch size starts a new epoch
            if task.prepare_step is not None and task.prepare_step(model, step):
                net = wrapped()
            lr = learning_rate(spec.train, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast:
                loss, stats = task.loss(net, batch, ddp.device, step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            position += 1
            examples += batch_size * ddp.world
            window_examples += batch_size * ddp.world
            window_loss += float(loss.detach())
            for name in statistics:
                window_stats[name] += stats[name]
            window_n += 1
            if progress is not None:
                progress.update(1)
            if step % spec.train.log_every == 0 or step == spec.train.steps:
                now = time.perf_counter()
                means = ddp.all_mean([window_loss / window_n] + [window_stats[n] / window_n for n in statistics])
                elapsed += now - window_start
                rows.append({
                    "step": step, "epoch": epoch, "examples": examples, "loss": round(means[0], 6),
                    **{name: round(value, 6) for name, value in zip(statistics, means[1:])}, "lr": lr,
                    "examples_per_s": round(window_examples / (now - window_start), 3),
                    "elapsed_s": round(elapsed, 3),
                })
                if progress is not None:
                    progress.set_postfix(loss=f"{means[0]:.4f}",
                                         **{n: f"{v:.3f}" for n, v in zip(statistics, means[1:])})
                window_loss, window_stats, window_n, window_examples = 0.0, dict.fromkeys(statistics, 0.0), 0, 0
                window_start = time.perf_counter()
            stopping = ddp.any(stop.signal is not None)
            if stopping or step % spec.train.checkpoint_every == 0 or step == spec.train.steps:
                save_checkpoint()
                window_start = time.perf_counter()  # checkpoint time is not training time
            if stopping:
                if progress is not None:
                    progress.close()  # the message starts a line of its own
                if ddp.main:
                    print(f"stopped by signal at step {step}; checkpoint written to {ckpt_dir}; rerun to resume",
                          file=sys.stderr)
                ddp.close()
                return EXIT_INTERRUPTED
            if step >= spec.train.steps:
                break
        if step < spec.train.steps:  # the epoch ended, or the fine-tuning phase began
            epoch, position = epoch + 1, 0
    if progress is not None:
        progress.close()
    if ddp.main:
        checkpoints.save(out_dir / "model.pt", {"kind": "recon3d-model", "spec": spec.to_dict(),
                                                "model": model.state_dict(), "step": step, "examples": examples})
        write_metrics(out_dir / "metrics.csv", rows, statistics)
    ddp.close()
    return 0
