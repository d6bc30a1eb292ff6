"""Evaluate a trained CoReNet-family model on the test scenes, like the paper.

Writes into --out-dir: voxel_metrics.csv (CoReNet's layout: rows iou/precision/recall, columns
__void__, sorted class names, __global__), baseline_metrics.csv (the constant-shape baseline
through the same code), scenes.parquet (per-scene class-agnostic IoU), summary.json, and
qualitative/NN_<scene>.png for the first --qualitative test scenes. Every file is written to a
temporary name and renamed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import checkpoints
from .baseline import ConstantShape, OccupancyStatistics
from .corenet_task import build_model, predict_probabilities, predicted_labels
from .model_config import ModelConfigError, spec_from_saved
from .scene_data import CLASS_NAMES, ExampleError, load_examples
from .voxel_metrics import GLOBAL, confusion_matrix, mean_iou, voxel_metrics
from .torch_device import add_device_arguments, apply_threads, resolve_device
from .voxel_views import comparison_grid

NUM_LABELS = len(CLASS_NAMES) + 1


def atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    atomic_write(path, lambda tmp: Image.fromarray(image).save(tmp, format="PNG"))


def load_model(path, device, family: str = "corenet", build=build_model):
    """(spec, model in eval mode on `device`, checkpoint payload) of a trained model of `family`."""
    payload = checkpoints.load(path, checkpoints.WEIGHTS, map_location=device)
    spec = spec_from_saved(payload["spec"])
    if spec.family != family:
        raise ModelConfigError(f"{path}: a {spec.family} model; this stage evaluates the {family} family")
    model = build(spec)
    model.load_state_dict(payload["model"])
    return spec, model.to(device).eval(), payload


def summary_fields(spec, payload: dict, device) -> dict:
    """What every summary.json says about the model it scores (the metrics come beside it)."""
    return {
        "model": spec.name,
        "family": spec.family,
        "task": spec.task,
        "dataset": spec.dataset,
        "realism": spec.realism,
        "scale": spec.scale,
        "native_resolution": spec.resolution,
        "eval_resolution": spec.eval_resolution,
        "paper_mean_iou": spec.paper_mean_iou,
        "paper_source": spec.paper_source,
        "checkpoint_step": int(payload.get("step", 0)),
        "examples_seen": int(payload.get("examples", 0)),
        "device": str(device),
    }


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


def scene_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    p, t = predicted > 0, truth > 0
    union = np.count_nonzero(p | t)
    return float(np.count_nonzero(p & t) / union) if union else 1.0


def evaluate(args) -> dict:
    device = resolve_device(args.device)
    apply_threads(args.threads)
    spec, model, payload = load_model(args.model, device)
    factor = spec.eval_resolution // spec.resolution
    examples = load_examples(args.scenes, args.renders, args.voxels, limit=args.limit)
    if examples.resolution != spec.eval_resolution:
        raise ExampleError(f"test ground truth is {examples.resolution}^3; {spec.name} is evaluated at {spec.eval_resolution}^3")
    baseline, baseline_scenes = constant_baseline(args.train_scenes, args.train_voxels, spec.eval_resolution)
    out = Path(args.out_dir)
    model_matrix = np.zeros((NUM_LABELS, NUM_LABELS), np.int64)
    base_matrix = np.zeros_like(model_matrix)
    rows = []
    shown = 0
    from tqdm import tqdm

    for start in tqdm(range(0, len(examples), args.batch_size), desc=f"eval {spec.name}", file=sys.stderr,
                      mininterval=1.0 if sys.stderr.isatty() else 10.0):
        indices = list(range(start, min(start + args.batch_size, len(examples))))
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
                "iou": scene_iou(pred, truth),
                "predicted_voxels": int(np.count_nonzero(pred)),
                "true_voxels": int(np.count_nonzero(truth)),
            })
            if shown < args.qualitative:
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
    atomic_write(out / "voxel_metrics.csv", metrics.to_csv)
    atomic_write(out / "baseline_metrics.csv", base_metrics.to_csv)
    atomic_write(out / "scenes.parquet", lambda tmp: pd.DataFrame(rows).to_parquet(tmp, index=False))
    atomic_write(out / "summary.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2) + "\n"))
    return summary


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m stages.eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="results/models/<name>/model.pt")
    p.add_argument("--scenes", nargs="+", required=True, help="test scene shards")
    p.add_argument("--renders", nargs="+", required=True, help="test render shards (one per scene shard)")
    p.add_argument("--voxels", nargs="+", required=True, help="test voxel shards at the evaluation resolution")
    p.add_argument("--train-scenes", nargs="+", required=True, help="training scene shards (baseline)")
    p.add_argument("--train-voxels", nargs="+", required=True, help="training voxel shards (baseline)")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--qualitative", type=int, default=8, help="qualitative PNGs for the first N test scenes")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--limit", type=int, help="evaluate only the first N test scenes")
    add_device_arguments(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        summary = evaluate(args)
    except (ModelConfigError, ExampleError, checkpoints.CheckpointError) as err:
        print(f"eval: {err}", file=sys.stderr)
        return 2
    print(f"{summary['model']}: mean IoU {summary['mean_iou']:.3f} (baseline {summary['baseline_mean_iou']:.3f}), "
          f"global IoU {summary['global_iou']:.3f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
