"""Train a model: `python -m stages.train --model-config config/models/<name>.yaml ...` in one
process, or under `torchrun --standalone --nproc-per-node=N -m stages.train ...` (DDP: NCCL on
GPUs, gloo on CPUs).

The data options depend on the model's family (see `--help` with a `--model-config`): CoReNet
models take `--scenes/--renders/--voxels` shards, 3D-R2N2 models a `--views` table. The loop,
checkpoints, resume and preemption (exit 75) are `stages.training`'s.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from .cli import parse_ahead, run
from .families import input_arguments, inputs_from_args
from .model_config import load_model_spec
from .torch_device import DEVICE_CHOICES
from .training.loop import RunOptions, train


def parser(family=None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-config", required=True, help="config/models/<name>.yaml")
    p.add_argument("--scale", default="small", choices=["small", "paper"])
    p.add_argument("--out-dir", required=True, help="results/models/<name>")
    p.add_argument("--steps", type=int, help="override the config's step count")
    p.add_argument("--batch-size", type=int, help="override the config's batch size per process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, help="use only the first N training examples (tests)")
    p.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads over all processes (0: torch's default)")
    p.add_argument("--keep-checkpoints", type=int, default=3)
    if family is not None:
        input_arguments(p, family, family.train_inputs)
    return p


def main(argv=None) -> int:
    first = parse_ahead(parser(), argv)
    spec = family = None
    if first.model_config:
        from .families import family_named

        spec = load_model_spec(first.model_config, first.scale or "small")
        family = family_named(spec.family)
    args = parser(family).parse_args(argv)  # --help lists the family's inputs once the model is known
    if args.steps is not None:
        spec = replace(spec, train=replace(spec.train, steps=args.steps))
    if args.batch_size is not None:
        spec = replace(spec, train=replace(spec.train, batch_size=args.batch_size))
    options = RunOptions(out_dir=Path(args.out_dir), seed=args.seed, limit=args.limit, device=args.device,
                         threads=args.threads, keep_checkpoints=args.keep_checkpoints)
    return train(spec, family, inputs_from_args(args, family.train_inputs), options)


if __name__ == "__main__":
    run(main)
