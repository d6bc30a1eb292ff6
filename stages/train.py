"""Train a model: `python -m stages.train` directly (one process) or under
`torchrun --standalone --nproc-per-node=N python -m stages.train ...` (DDP: NCCL on GPUs, gloo
on CPUs).

Resumable by construction: every `checkpoint_every` steps (and at the end) rank 0 writes
`<out-dir>/checkpoints/step-NNNNNNNNN.pt` atomically; a rerun loads the newest one and continues
with the same step counter, data order and learning rate. SIGTERM or SIGUSR1 (SLURM's
preemption warning) makes every rank stop at the next step boundary, rank 0 write a
checkpoint, and the process exit with status 75 ("try again"). All randomness of a step is
derived from (seed, epoch, index), so a resumed run sees the same batches.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.distributed as dist

from . import checkpoints
from .model_config import ModelConfigError, ModelSpec, load_model_spec
from .scene_data import ExampleError
from .tables import SchemaViolation
from .torch_device import DEVICE_CHOICES, resolve_device

PREEMPTED_EXIT = 75
METRIC_COLUMNS = ["step", "epoch", "examples", "loss", "iou", "lr", "examples_per_s", "elapsed_s"]


@dataclass
class TrainingTask:
    """What the generic loop needs from a model family: the network, the loss of a batch, and
    the batches of one epoch for one rank (`start` batches already done are skipped)."""

    model: torch.nn.Module
    loss: Callable  # (model, batch, device, step) -> (loss tensor, {"iou": float})
    batches_per_epoch: Callable[[int, int], int]  # (world, batch_size) -> full batches per rank
    epoch_batches: Callable[[int, int, int, int, int, int], Iterable]  # (epoch, start, world, rank, batch_size, seed)


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


def make_task(spec: ModelSpec, args: argparse.Namespace) -> TrainingTask:
    if spec.family == "corenet":
        from . import corenet_task as ct

        if not (args.scenes and args.renders and args.voxels):
            raise ModelConfigError("corenet models need --scenes, --renders and --voxels")
        model = ct.build_model(spec)
        dataset = ct.make_dataset(spec, args.scenes, args.renders, args.voxels, args.seed, args.limit)
        weights = ct.class_weights(spec, model.config.num_classes)
        return indexed_task(model, dataset, ct.collate_batch,
                            lambda m, b, d, s: ct.batch_loss(m, spec, b, d, weights), spec.train.loader_workers)
    if spec.family == "r2n2":
        from . import r2n2_task as rt

        if not args.views:
            raise ModelConfigError("r2n2 models need --views")
        return rt.training_task(spec, args.views, args.limit)
    raise ModelConfigError(f"unknown family {spec.family!r}")


def _same_run(saved: dict, current: dict) -> bool:
    """Whether a checkpoint can be resumed: everything but the step count must match."""
    def strip(spec):
        spec = dict(spec)
        spec["train"] = {k: v for k, v in dict(spec["train"]).items() if k != "steps"}
        return spec

    return strip(saved) == strip(current)


def learning_rate(spec: ModelSpec, step: int) -> float:
    train = spec.train
    if train.warmup_steps and step < train.warmup_steps:
        return train.lr * (step + 1) / train.warmup_steps
    if train.schedule == "cosine":
        span = max(1, train.steps - train.warmup_steps)
        progress = min(1.0, (step - train.warmup_steps) / span)
        return train.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
    if train.schedule == "steps":
        lr = train.lr
        for boundary, value in sorted((int(k), float(v)) for k, v in train.lr_steps.items()):
            if step >= boundary:
                lr = value
        return lr
    return train.lr


class _Distributed:
    def __init__(self, device_arg: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        use_cuda = resolve_device(device_arg).type == "cuda"
        if use_cuda:
            torch.cuda.set_device(local_rank)
            self.device = torch.device("cuda", local_rank)
        else:
            self.device = torch.device("cpu")
        if self.world > 1:
            dist.init_process_group("nccl" if use_cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_mean(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return (t / self.world).tolist()

    def any(self, flag: bool) -> bool:
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def close(self):
        if self.world > 1:
            dist.destroy_process_group()


class _StopRequest:
    def __init__(self):
        self.signal = None
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        self.signal = signum


def write_metrics(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m stages.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-config", required=True, help="config/models/<name>.yaml")
    p.add_argument("--scale", default="small", choices=["small", "paper"])
    p.add_argument("--scenes", nargs="*", default=[], help="scene shards of the training split")
    p.add_argument("--renders", nargs="*", default=[], help="render shards, one per scene shard")
    p.add_argument("--voxels", nargs="*", default=[], help="voxel shards, one per scene shard")
    p.add_argument("--views", help="r2n2 view table (Parquet)")
    p.add_argument("--out-dir", required=True, help="results/models/<name>")
    p.add_argument("--steps", type=int, help="override the config's step count")
    p.add_argument("--batch-size", type=int, help="override the config's batch size per process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="use only the first N training examples (tests)")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0: leave torch's default)")
    p.add_argument("--keep-checkpoints", type=int, default=3)
    return p.parse_args(argv)


def train(args: argparse.Namespace) -> int:
    spec = load_model_spec(args.model_config, args.scale)
    from dataclasses import replace

    if args.steps is not None:
        spec = replace(spec, train=replace(spec.train, steps=args.steps))
    if args.batch_size is not None:
        spec = replace(spec, train=replace(spec.train, batch_size=args.batch_size))
    ddp = _Distributed(args.device)
    if args.threads > 0:
        torch.set_num_threads(max(1, args.threads // ddp.world))
    torch.manual_seed(args.seed)  # same initial weights on every rank (DDP also broadcasts them)
    task = make_task(spec, args)
    model = task.model.to(ddp.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.train.lr, eps=spec.train.adam_eps)
    out_dir = Path(args.out_dir)
    ckpt_dir = out_dir / "checkpoints"
    step, epoch, position, examples, elapsed, rows = 0, 0, 0, 0, 0.0, []
    resume = checkpoints.latest(ckpt_dir)
    state = checkpoints.load(resume, ("recon3d-checkpoint",), map_location=ddp.device) if resume else None
    if state is not None and not _same_run(state["spec"], spec.to_dict()):
        # a changed configuration (Snakemake reruns the rule on a params/config change) starts
        # afresh; the old checkpoints are kept aside, not deleted
        ddp.barrier()
        if ddp.main:
            stale = out_dir / "checkpoints.stale"
            if stale.exists():
                import shutil

                shutil.rmtree(stale)
            ckpt_dir.rename(stale)
            print(f"checkpoints in {ckpt_dir} come from a different configuration; moved to {stale}, "
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
    net = torch.nn.parallel.DistributedDataParallel(model) if ddp.world > 1 else model
    batch_size = spec.train.batch_size
    batches_per_epoch = task.batches_per_epoch(ddp.world, batch_size)
    if batches_per_epoch == 0:
        raise ModelConfigError(
            f"the training examples over {ddp.world} processes give no full batch of "
            f"{batch_size}; lower the batch size (models.batch_size in the config, --batch-size here)")
    stop = _StopRequest()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if ddp.device.type == "cuda" else torch.autocast("cpu", enabled=False)

    def save_checkpoint():
        if ddp.main:
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
            checkpoints.prune(ckpt_dir, args.keep_checkpoints)
            write_metrics(out_dir / "metrics.csv", rows)
        ddp.barrier()

    progress = None
    if ddp.main:
        from tqdm import tqdm

        progress = tqdm(total=spec.train.steps, initial=step, desc=f"train {spec.name}", unit="step",
                        file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 10.0)
    window_loss, window_iou, window_n, window_start = 0.0, 0.0, 0, time.perf_counter()
    net.train()
    while step < spec.train.steps:
        loader = task.epoch_batches(epoch, position, ddp.world, ddp.rank, batch_size, args.seed)
        for batch in loader:
            lr = learning_rate(spec, step)
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
            window_loss += float(loss.detach())
            window_iou += stats["iou"]
            window_n += 1
            if progress is not None:
                progress.update(1)
            if step % spec.train.log_every == 0 or step == spec.train.steps:
                now = time.perf_counter()
                mean_loss, mean_iou = ddp.all_mean([window_loss / window_n, window_iou / window_n])
                elapsed += now - window_start
                rows.append({
                    "step": step, "epoch": epoch, "examples": examples, "loss": round(mean_loss, 6),
                    "iou": round(mean_iou, 6), "lr": lr,
                    "examples_per_s": round(window_n * batch_size * ddp.world / (now - window_start), 3),
                    "elapsed_s": round(elapsed, 3),
                })
                if progress is not None:
                    progress.set_postfix(loss=f"{mean_loss:.4f}", iou=f"{mean_iou:.3f}")
                window_loss, window_iou, window_n, window_start = 0.0, 0.0, 0, time.perf_counter()
            stopping = ddp.any(stop.signal is not None)
            if stopping or step % spec.train.checkpoint_every == 0 or step == spec.train.steps:
                save_checkpoint()
                window_start = time.perf_counter()  # checkpoint time is not training time
            if stopping:
                if ddp.main:
                    print(f"stopped by signal at step {step}; checkpoint written to {ckpt_dir}; rerun to resume",
                          file=sys.stderr)
                ddp.close()
                return PREEMPTED_EXIT
            if step >= spec.train.steps:
                break
        else:
            epoch, position = epoch + 1, 0
    if progress is not None:
        progress.close()
    if ddp.main:
        checkpoints.save(out_dir / "model.pt", {"kind": "recon3d-model", "spec": spec.to_dict(),
                                                "model": model.state_dict(), "step": step, "examples": examples})
        write_metrics(out_dir / "metrics.csv", rows)
    ddp.close()
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return train(args)
    except (ModelConfigError, checkpoints.CheckpointError, ExampleError, SchemaViolation) as err:
        print(f"train: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
