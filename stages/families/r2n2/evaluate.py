"""Evaluate a 3D-R2N2 model like the paper: IoU per test sample at thresholds 0.2..0.5, per
class and overall, for 1..5 views (the first n views of each model).

Thresholds, view counts and the headline threshold come from the model file's `eval` section.
Writes into the output folder: iou_by_views.csv (views, threshold, class, iou; class `__mean__` is the
mean over all test samples), summary.json (with the constant-shape baseline: the training set's
mean occupancy thresholded at its IoU-optimal level, scored on the same samples), and
qualitative/NN_<model>.png: the input views, then prediction and ground truth from two sides,
and per_class.csv: the PaddlePaddle port's test table for the most views (`per_class_table`; the
"baseline" column is the model file's paper.baseline_by_class, else paper.by_class).

`evaluate_pix3d` scores a model on the Pix3D table (`stages.import_pix3d`): one photograph per
sample (1 view), IoU per class and threshold -> pix3d_iou.csv (views, threshold, class, samples,
iou; class `__mean__` over all photographs). CLI: `python -m stages.families.r2n2.pix3d`.
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
from .data import Preprocessing, R2N2Views, display_views, make_loader, preprocess_photo
from .metrics import iou_by_views_table, iou_records, per_class_table, threshold_iou
from .task import preprocessing


def constant_shape(views_table: str) -> np.ndarray:
    train = R2N2Views(views_table, "train", train=False)
    if len(train) == 0:
        raise StageError(f"{views_table}: no training models for the constant-shape baseline")
    stats = OccupancyStatistics(train.voxels(0).shape[0], 2)
    for i in range(len(train)):
        stats.add(train.voxels(i).numpy().astype(np.uint8))
    return stats.best_constant().occupancy


def qualitative(views: torch.Tensor, predicted: np.ndarray, truth: np.ndarray, size: int = 128,
                config: Preprocessing = Preprocessing()) -> np.ndarray:
    """One row: the input views [V, 3, H, W] (as the network saw them, normalisation undone),
    then prediction and ground truth rendered from two sides -> uint8 [size, ..., 3]."""
    from PIL import Image

    shown = display_views(views, config)
    tiles = [np.asarray(Image.fromarray((v.transpose(1, 2, 0) * 255).astype(np.uint8)).resize((size, size)))
             for v in shown]
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
    config = preprocessing(spec)
    test = R2N2Views(views_table, "test", train=False, preprocessing=config, default_views=most)
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
                        image = qualitative(batch["views"][i], probs[i].numpy() >= settings.threshold, truth,
                                            config=config)
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
    paper = spec.paper
    summary["paper_by_class"] = dict(paper.by_class)
    summary["paper_baseline_by_class"] = dict(paper.baseline_by_class or paper.by_class)
    summary["paper_baseline_source"] = paper.baseline_source
    per_class = per_class_table(records, most, paper.baseline_by_class or paper.by_class)
    atomic_write(out / "iou_by_views.csv", lambda tmp: table.to_csv(tmp, index=False))
    atomic_write(out / "per_class.csv", lambda tmp: per_class.to_csv(tmp, index=False))
    write_json(out / "summary.json", summary)
    return summary


def read_pix3d(path: str | Path):
    """The Pix3D table (stages.pix3d_tables.PIX3D), checked: DataFrame, one row per photograph."""
    from ...pix3d_tables import PIX3D
    from ...tables import read_table

    return read_table(path, PIX3D)


def evaluate_pix3d(spec, model, table: str | Path, out_dir: Path, batch_size: int, device,
                   limit: int | None = None) -> "pd.DataFrame":
    """Score `model` on every photograph of the Pix3D table (one view each) at spec.eval's
    thresholds; write out_dir/pix3d_iou.csv (iou_by_views_table's columns plus `samples`, the
    photographs of the class) and return it. Photographs are the table's cut-outs over grey
    240 (Pix2Vox's test background), only normalised as the model's test views (they are
    already framed, so no crop); the ground truth is the canonical-frame 32^3 grid."""
    import io as _io

    from PIL import Image

    from ...voxel_codec import decode_planes

    rows = read_pix3d(table)
    if limit is not None:
        rows = rows.iloc[:limit]
    if len(rows) == 0:
        raise StageError(f"{table}: no Pix3D photographs")
    config, size = preprocessing(spec), spec.network.input_size
    thresholds = spec.eval.thresholds
    records = []
    for start in range(0, len(rows), batch_size):
        chunk = rows.iloc[start : start + batch_size]
        views = []
        for png in chunk["image"]:
            with Image.open(_io.BytesIO(png)) as image:
                views.append(preprocess_photo(np.asarray(image.convert("RGB")), config, size))
        truth = np.stack([decode_planes(v, 1, int(r))[0] for v, r in zip(chunk["voxels"], chunk["resolution"])])
        batch = torch.from_numpy(np.stack(views))[:, None].to(device)
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            probs = occupancy_probability(model(batch).float()).cpu()
        ious = threshold_iou(probs, truth, thresholds)
        records += iou_records(1, chunk["class_name"].tolist(), chunk["image_id"].tolist(), ious, thresholds)
    result = iou_by_views_table(records)
    counts = rows["class_name"].value_counts()
    result["samples"] = [int(len(rows)) if c == "__mean__" else int(counts[c]) for c in result["class"]]
    out = Path(out_dir)
    atomic_write(out / "pix3d_iou.csv", lambda tmp: result.to_csv(tmp, index=False))
    return result
