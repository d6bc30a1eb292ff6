"""Evaluate a 3D-R2N2-family model on Pix3D's real photographs (1 view each):

    python -m stages.families.r2n2.pix3d --model results/models/r2n2/model.pt \\
        --pix3d results/pix3d/pix3d.parquet --out-dir results/eval/r2n2

The table comes from `python -m stages.import_pix3d`; writes OUT_DIR/pix3d_iou.csv (views,
threshold, class, samples, iou: the mean IoU per class and over all photographs, class
`__mean__`, at the model file's eval.thresholds). This is the Pix3D test Pix2Vox reports (its
Pix3dDataLoader: the photograph cut out and framed around its box, canonical-frame binvox
ground truth); the report shows it next to the ShapeNet test figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ...cli import run
from ...errors import StageError
from ...torch_device import add_device_arguments, apply_threads, resolve_device
from ...trained_model import load_model

FILE_NAME = "pix3d_iou.csv"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m stages.families.r2n2.pix3d", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="results/models/<name>/model.pt of a 3D-R2N2-family model")
    p.add_argument("--pix3d", required=True, help="the Pix3D table (results/pix3d/pix3d.parquet)")
    p.add_argument("--out-dir", required=True, help=f"folder of {FILE_NAME} (results/eval/<name>)")
    p.add_argument("--batch-size", type=int, default=16, help="photographs per forward pass")
    p.add_argument("--limit", type=int, help="evaluate only the first N photographs")
    add_device_arguments(p)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    apply_threads(args.threads)
    device = resolve_device(args.device)
    spec, family, model, _ = load_model(args.model, device)
    if family.name != "r2n2":
        raise StageError(f"{args.model}: a {family.name} model; the Pix3D evaluation takes 3D-R2N2-family models")
    from .evaluate import evaluate_pix3d

    table = evaluate_pix3d(spec, model, args.pix3d, Path(args.out_dir), args.batch_size, device, args.limit)
    mean = table[(table["class"] == "__mean__")]
    figures = ", ".join(f"t={r.threshold:g}: {r.iou:.3f}" for r in mean.itertuples())
    print(f"{spec.name} on Pix3D ({int(mean['samples'].iloc[0])} photographs, 1 view): mean IoU {figures}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    run(main)
