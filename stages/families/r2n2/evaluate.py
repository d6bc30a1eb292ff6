"""Evaluate a 3D-R2N2 model like the paper: IoU per test sample at thresholds 0.2..0.5, per
class and overall, for 1..5 views (the first n views of each model).

Thresholds, view counts and the headline threshold come from the model file's `eval` section.
Writes into the output folder: iou_by_views.csv (views, threshold, class, iou; class `__mean__` is the
mean over all test samples), summary.json (with the constant-shape baseline: the training set's
mean occupancy thresholded at its IoU-optimal level, scored on the same samples), and
qualitative/NN_<model>.png: the input views, then prediction and ground truth from two sides.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from ...atomic import atomic_write
from ...baseline import OccupancyStatistics
from ...errors import StageError
from ...evaluation import summary_fields, write_json, write_png
from ...models.r2n2 import occupancy_probability
from ...voxel_metrics import binary_iou
from ...voxel_views import orbit_camera, render_labels
from .data import R2N2Views, make_loader
from .metrics import iou_by_views_table, iou_records, threshold_iou


def constant_shape(views_table: str) -> np.ndarray:
    train = R2N2Views(views_table, "train", train=False)
    if len(train) == 0:
        raise StageError(f"{views_table}: no training models for the constant-shape baseline")
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


def evaluate(spec, model, payload: dict, inputs, out_dir: Path, options, device) -> dict:
    """Score `model` on the test split of the view table (inputs: views) for every view count
    and threshold of spec.eval; write the files of the module docstring."""
    views_table = inputs["views"][0]
    settings = spec.eval
    most = max(settings.views)
    test = R2N2Views(views_table, "test", train=False, default_views=most)
    if len(test) == 0:
        raise StageError(f"{views_table}: no test models")
    baseline = constant_shape(views_table)
    out = Path(out_dir)
    records, shown, baseline_ious = [], 0, []
    from tqdm import tqdm

    for n in settings.views:
        loader = make_loader(test, options.batch_size, max_views=most, num_views=n)
        for batch in tqdm(loader, desc=f"eval {spec.name}, {n} views", file=sys.stderr,
                          mininterval=1.0 if sys.stderr.isatty() else 10.0):
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                probs = occupancy_probability(model(batch["views"].to(device)).float()).cpu()
            ious = threshold_iou(probs, batch["voxels"], settings.thresholds)
            records += iou_records(n, batch["class_name"], batch["model_id"], ious, settings.thresholds)
            if n == most:
                for i in range(len(probs)):
                    truth = batch["voxels"][i].numpy() > 0
                    baseline_ious.append(binary_iou(baseline > 0, truth))
                    if shown < options.qualitative:
                        image = qualitative(batch["views"][i], probs[i].numpy() >= settings.threshold, truth)
                        write_png(out / "qualitative" / f"{shown:02d}_{batch['model_id'][i]}.png", image)
                        shown += 1
    table = iou_by_views_table(records)
    mean = table[(table["class"] == "__mean__") & np.isclose(table["threshold"], settings.threshold)]
    by_views = {int(r.views): float(r.iou) for r in mean.itertuples()}
    summary = {
        **summary_fields(spec, payload, device),
        "threshold": settings.threshold,
        "thresholds": list(settings.thresholds),
        "mean_iou": by_views[max(by_views)],
        "mean_iou_by_views": by_views,
        "global_iou": by_views[max(by_views)],
        "baseline_mean_iou": float(np.mean(baseline_ious)),
        "baseline_global_iou": float(np.mean(baseline_ious)),
        "paper_mean_iou_by_views": dict(spec.paper.by_views),
        "test_scenes": len(test),
    }
    atomic_write(out / "iou_by_views.csv", lambda tmp: table.to_csv(tmp, index=False))
    write_json(out / "summary.json", summary)
    return summary
