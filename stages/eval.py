"""Evaluate a trained model on its test data: `python -m stages.eval --model
results/models/<name>/model.pt --out-dir results/eval/<name> <data options>`.

The model file names its family, which decides the data options (`--help` with a `--model`
lists them: CoReNet models take test and training scene shards, 3D-R2N2 models the `--views`
table) and the files written (the family's `outputs`, summary.json always among them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .cli import parse_ahead, run
from .families import EvalOptions, input_arguments, inputs_from_args
from .torch_device import add_device_arguments, apply_threads, resolve_device
from .trained_model import load_model


def parser(family=None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="results/models/<name>/model.pt (or a checkpoint)")
    p.add_argument("--out-dir", required=True, help="results/eval/<name>")
    p.add_argument("--qualitative", type=int, default=8, help="qualitative PNGs for the first N test items")
    p.add_argument("--batch-size", type=int, help="test items per forward pass (default: the family's)")
    p.add_argument("--limit", type=int, help="evaluate only the first N test items")
    p.add_argument("--seed", type=int, default=0, help="seed of anything random in the evaluation")
    add_device_arguments(p)
    if family is not None:
        input_arguments(p, family, family.eval_inputs)
    return p


def main(argv=None) -> int:
    first = parse_ahead(parser(), argv)
    device = resolve_device(first.device or "auto")
    spec = family = model = payload = None
    if first.model:
        spec, family, model, payload = load_model(first.model, device)
    args = parser(family).parse_args(argv)  # --help lists the family's inputs once the model is known
    apply_threads(args.threads)
    options = EvalOptions(qualitative=args.qualitative, batch_size=args.batch_size or family.eval_batch_size, limit=args.limit, seed=args.seed)
    summary = family.evaluate(spec, model, payload, inputs_from_args(args, family.eval_inputs),
                              Path(args.out_dir), options, device)
    print(family.describe_summary(summary), file=sys.stderr)
    return 0


if __name__ == "__main__":
    run(main)
