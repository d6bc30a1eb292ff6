"""Evaluate a 3D-R2N2 model like the paper: IoU per test sample at thresholds 0.2..0.5, per
class and overall, for 1..5 views (the first n views of each model).

Writes into --out-dir: iou_by_views.csv (views, threshold, class, iou; class `__mean__` is the
mean over all test samples), summary.json (with the constant-shape baseline: the training set's
mean occupancy thresholded at its IoU-optimal level, scored on the same samples), and
qualitative/NN_<model>.png: the input views, then prediction and ground truth from two sides.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from . import checkpoints
from .baseline import OccupancyStatistics
from .eval import atomic_write, load_model, scene_iou, summary_fields, write_png
from .model_config import ModelConfigError
from .r2n2_data import R2N2Views, make_loader
from .r2n2_metrics import THRESHOLDS, iou_by_views_table, iou_records, threshold_iou
from .r2n2_task import IOU_THRESHOLD, build_model
from .models.r2n2 import occupancy_probability
from .tables import SchemaViolation
from .torch_device import add_device_arguments, apply_threads, resolve_device
from .voxel_views import orbit_camera, render_labels


def constant_shape(views_table: str) -> np.ndarray:
    train = R2N2Views(views_table, "train", train=False)
    if len(train) == 0:
        raise ModelConfigError(f"{views_table}: no training models for the constant-shape baseline")
    stats = OccupancyStatistics(train.voxels(0).shape[0], 2)
    for i in range(len(train)):
        stats.add(train.voxels(i).numpy().astype(np.uint8))
    return stats.best_constant().occupancy


def qualitative(views: torch.Tensor, predicted: np.ndarray, truth: np.ndarray, size: int = 128) -> np.ndarray:
    from PIL import Image

    tiles = [np.asarray(Image.fromarray((v.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).resize((size, size)))
             for v in views]
    cameras = [orbit_camera(a, 25.0) for a in (30.0, 150.0)]
    for grid in (predicted, truth):
        tiles += [render_labels(grid.astype(np.uint8), cam, size) for cam in cameras]
    sep = np.full((size, 4, 3), 40, np.uint8)
    row = []
    for tile in tiles:
        row += [tile, sep]
    return np.concatenate(row[:-1], axis=1)


def evaluate(args) -> dict:
    device = resolve_device(args.device)
    apply_threads(args.threads)
    spec, model, payload = load_model(args.model, device, family="r2n2", build=build_model)
    test = R2N2Views(args.views, "test", train=False, default_views=max(args.num_views))
    if len(test) == 0:
        raise ModelConfigError(f"{args.views}: no test models")
    baseline = constant_shape(args.views)
    out = Path(args.out_dir)
    records, shown, baseline_ious = [], 0, []
    from tqdm import tqdm

    for n in args.num_views:
        loader = make_loader(test, args.batch_size, max_views=max(args.num_views), num_views=n)
        for batch in tqdm(loader, desc=f"eval r2n2, {n} views", file=sys.stderr,
                          mininterval=1.0 if sys.stderr.isatty() else 10.0):
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                probs = occupancy_probability(model(batch["views"].to(device)).float()).cpu()
            ious = threshold_iou(probs, batch["voxels"], THRESHOLDS)
            records += iou_records(n, batch["class_name"], batch["model_id"], ious)
            if n == max(args.num_views):
                for i in range(len(probs)):
                    truth = batch["voxels"][i].numpy() > 0
                    baseline_ious.append(scene_iou(baseline, truth))
                    if shown < args.qualitative:
                        image = qualitative(batch["views"][i], probs[i].numpy() >= IOU_THRESHOLD, truth)
                        write_png(out / "qualitative" / f"{shown:02d}_{batch['model_id'][i]}.png", image)
                        shown += 1
    table = iou_by_views_table(records)
    mean = table[(table["class"] == "__mean__") & np.isclose(table["threshold"], IOU_THRESHOLD)]
    by_views = {int(r.views): float(r.iou) for r in mean.itertuples()}
    summary = {
        **summary_fields(spec, payload, device),
        "threshold": IOU_THRESHOLD,
        "mean_iou": by_views[max(by_views)],
        "mean_iou_by_views": by_views,
        "global_iou": by_views[max(by_views)],
        "baseline_mean_iou": float(np.mean(baseline_ious)),
        "baseline_global_iou": float(np.mean(baseline_ious)),
        "test_scenes": len(test),
    }
    atomic_write(out / "iou_by_views.csv", lambda tmp: table.to_csv(tmp, index=False))
    atomic_write(out / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2) + "\n"))
    return summary


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m stages.eval_r2n2", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--views", required=True, help="the r2n2 view table (results/r2n2/views.parquet)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--num-views", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    p.add_argument("--qualitative", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=16)
    add_device_arguments(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        summary = evaluate(args)
    except (ModelConfigError, SchemaViolation, checkpoints.CheckpointError) as err:
        print(f"eval_r2n2: {err}", file=sys.stderr)
        return 2
    views = ", ".join(f"{n}: {v:.3f}" for n, v in summary["mean_iou_by_views"].items())
    print(f"r2n2 mean IoU at {IOU_THRESHOLD} by views ({views}); baseline {summary['baseline_mean_iou']:.3f}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
