"""Evaluate a trained CoReNet-family model on the test scenes, like the paper.

Writes into the output folder: voxel_metrics.csv (CoReNet's layout: rows iou/precision/recall,
columns __void__, sorted class names, __global__), baseline_metrics.csv (the constant-shape
baseline through the same code), scenes.parquet (per-scene class-agnostic IoU), summary.json,
and qualitative/NN_<scene>.png for the first `qualitative` test scenes. Every file is written
atomically.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...atomic import atomic_write
from ...baseline import ConstantShape, OccupancyStatistics
from ...evaluation import summary_fields, write_json, write_png
from ...scene_data import CLASS_NAMES, ExampleError, load_examples
from ...voxel_metrics import GLOBAL, binary_iou, confusion_matrix, mean_iou, voxel_metrics
from ...voxel_views import comparison_grid
from .spec import RELEASED_CHECKPOINT
from .task import predict_probabilities, predicted_labels

NUM_LABELS = len(CLASS_NAMES) + 1


def constant_baseline(scene_files, voxel_files, resolution: int) -> tuple[ConstantShape, int]:
    """Constant-shape baseline from the training ground truth at the evaluation resolution."""
    examples = load_examples(scene_files, None, voxel_files)
    if examples.resolution != resolution:
        raise ExampleError(f"baseline ground truth is {examples.resolution}^3, evaluation needs {resolution}^3")
    stats = OccupancyStatistics(resolution, NUM_LABELS)
    for i in range(len(examples)):
        stats.add(examples.labels(i))
    return stats.best_constant(), len(examples)


def baseline_labels(task: str, shape: ConstantShape, object_labels: np.ndarray) -> np.ndarray:
    if task == "semantic":
        return shape.classes
    return shape.occupancy.astype(np.uint8) * np.uint8(object_labels[0])


def truth_labels(task: str, labels: np.ndarray, object_labels: np.ndarray) -> np.ndarray:
    """Ground truth in the metric's class space; for FG_BG, occupancy labelled with the object."""
    if task == "semantic":
        return labels
    return (labels > 0).astype(np.uint8) * np.uint8(object_labels[0])


def evaluate(spec, model, payload: dict, inputs, out_dir: Path, options, device) -> dict:
    """Score `model` on the test scenes (inputs: scenes, renders, voxels; train_scenes and
    train_voxels for the baseline) and write the files of the module docstring."""
    factor = spec.eval_resolution // spec.resolution
    examples = load_examples(inputs["scenes"], inputs["renders"], inputs["voxels"], limit=options.limit)
    if examples.resolution != spec.eval_resolution:
        raise ExampleError(f"test ground truth is {examples.resolution}^3; {spec.name} is evaluated at {spec.eval_resolution}^3")
    baseline, baseline_scenes = constant_baseline(inputs["train_scenes"], inputs["train_voxels"], spec.eval_resolution)
    out = Path(out_dir)
    model_matrix = np.zeros((NUM_LABELS, NUM_LABELS), np.int64)
    base_matrix = np.zeros_like(model_matrix)
    rows = []
    shown = 0
    from tqdm import tqdm

    for start in tqdm(range(0, len(examples), options.batch_size), desc=f"eval {spec.name}", file=sys.stderr,
                      mininterval=1.0 if sys.stderr.isatty() else 10.0):
        indices = list(range(start, min(start + options.batch_size, len(examples))))
        images = np.stack([examples.image(i, spec.input_size) for i in indices])
        image = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).to(device)
        camera = torch.from_numpy(examples.camera_transforms[indices]).to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            probs = predict_probabilities(model, image, camera, factor)
        objects = [torch.from_numpy(examples.object_labels[i].astype(np.int64)) for i in indices]
        predicted = predicted_labels(spec, probs, objects).cpu().numpy().astype(np.uint8)
        for row, i in enumerate(indices):
            truth = truth_labels(spec.task, examples.labels(i), examples.object_labels[i])
            pred = predicted[row]
            model_matrix += confusion_matrix(truth, pred, NUM_LABELS)
            base_matrix += confusion_matrix(truth, baseline_labels(spec.task, baseline, examples.object_labels[i]), NUM_LABELS)
            rows.append({
                "scene_id": examples.scene_ids[i],
                "classes": ",".join(CLASS_NAMES[label - 1] for label in examples.object_labels[i]),
                "iou": binary_iou(pred > 0, truth > 0),
                "predicted_voxels": int(np.count_nonzero(pred)),
                "true_voxels": int(np.count_nonzero(truth)),
            })
            if shown < options.qualitative:
                grid = comparison_grid(images[row], pred, truth, examples.camera_transforms[i])
                write_png(out / "qualitative" / f"{shown:02d}_{examples.scene_ids[i]}.png", grid)
                shown += 1
    metrics = voxel_metrics(model_matrix, CLASS_NAMES)
    base_metrics = voxel_metrics(base_matrix, CLASS_NAMES)
    summary = {
        **summary_fields(spec, payload, device),
        "mean_iou": mean_iou(metrics),
        "global_iou": float(metrics.loc["iou", GLOBAL]),
        "baseline_mean_iou": mean_iou(base_metrics),
        "baseline_global_iou": float(base_metrics.loc["iou", GLOBAL]),
        "baseline_threshold": baseline.threshold,
        "baseline_train_scenes": baseline_scenes,
        "test_scenes": len(examples),
    }
    if payload.get("released"):
        summary["source"] = RELEASED_CHECKPOINT
    atomic_write(out / "voxel_metrics.csv", metrics.to_csv)
    atomic_write(out / "baseline_metrics.csv", base_metrics.to_csv)
    atomic_write(out / "scenes.parquet", lambda tmp: pd.DataFrame(rows).to_parquet(tmp, index=False))
    write_json(out / "summary.json", summary)
    return summary
