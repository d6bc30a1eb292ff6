"""CoReNet on scene examples: the network a spec describes, its batches, loss and predictions.

Evaluation at a resolution `factor` times the native one (y1: 32^3 scored at 128^3) queries the
decoder at the factor^3 sub-voxel offsets and interleaves the answers; the image is encoded
once. No interpolation is involved: fine voxel (f*i + a, f*j + b, f*k + c) is the model's
answer for native voxel (i, j, k) sampled at offset ((a, b, c) + 0.5) / f.
"""

from __future__ import annotations

import itertools

import torch

from ...model_spec import ModelConfigError, ModelSpec
from ...models.corenet import CoReNet
from ...models.losses import corenet_loss
from ...scene_data import SceneDataset, collate, load_examples, subvoxel_offset
from ...training.task import TrainingTask, indexed_task
from ...voxel_metrics import binary_iou
from .spec import network_config


def build_model(spec: ModelSpec) -> CoReNet:
    """The CoReNet network of `spec`, initialised from torch's current seed."""
    return CoReNet(network_config(spec))


def target_labels(spec: ModelSpec, labels: torch.Tensor) -> torch.Tensor:
    """The training target: occupancy (0/1) for FG_BG, the class label grid for SEMANTIC."""
    return (labels > 0).long() if spec.task == "fg_bg" else labels.long()


def class_weights(spec: ModelSpec, num_classes: int) -> torch.Tensor | None:
    if spec.task != "semantic":
        return None
    weights = torch.full((num_classes,), float(spec.train_options.object_weight))
    weights[0] = 1.0
    return weights


def batch_loss(model, spec: ModelSpec, batch: dict, device, weights=None) -> tuple[torch.Tensor, dict]:
    image = batch["image"].to(device, non_blocking=True).float() / 255.0
    logits = model(image, batch["camera"].to(device), batch["offset"].to(device))
    target = target_labels(spec, batch["labels"].to(device))
    loss = corenet_loss(spec.task, logits, target, weights)
    with torch.no_grad():
        iou = binary_iou(logits.argmax(1) > 0, target > 0)
    return loss, {"iou": iou}


def make_dataset(spec: ModelSpec, scenes, renders, voxels, seed: int, limit=None) -> SceneDataset:
    examples = load_examples(scenes, renders, voxels, limit=limit)
    return SceneDataset(examples, native=spec.resolution, input_size=spec.input_size, seed=seed)


@torch.no_grad()
def predict_probabilities(model: CoReNet, image: torch.Tensor, camera: torch.Tensor, factor: int) -> torch.Tensor:
    """Class probabilities [B, C, R*f, R*f, R*f] ([z, y, x]); image float in [0, 1]."""
    encoded = model.encode(image)
    batch = image.shape[0]
    native = model.config.resolution
    out = None
    for shift in itertools.product(range(factor), repeat=3):  # (a, b, c) = (x, y, z) shift
        offset = torch.from_numpy(subvoxel_offset(factor, shift)).to(image.device).expand(batch, 3)
        probs = model.decode(encoded, camera, offset).float().softmax(1)
        if out is None:
            out = probs.new_zeros((batch, probs.shape[1], native * factor, native * factor, native * factor))
        a, b, c = shift
        out[:, :, c::factor, b::factor, a::factor] = probs
    return out


def predicted_labels(spec: ModelSpec, probs: torch.Tensor, object_labels: list[torch.Tensor]) -> torch.Tensor:
    """Label grids in the metric's class space (0 void, 1..13 classes). An FG_BG prediction is
    labelled with the scene's object class, as CoReNet's evaluation does (single objects)."""
    winners = probs.argmax(1)
    if spec.task == "semantic":
        return winners
    labels = torch.stack([obj[0] for obj in object_labels]).to(winners.device)
    return winners * labels[:, None, None, None]


def training_task(spec: ModelSpec, inputs, seed: int, limit: int | None) -> TrainingTask:
    """Batches of training scenes (inputs: scenes, renders, voxels shards, one per scene shard)."""
    model = build_model(spec)
    dataset = make_dataset(spec, inputs["scenes"], inputs["renders"], inputs["voxels"], seed, limit)
    if len(dataset) == 0:
        raise ModelConfigError(f"{spec.name}: no training scenes in {', '.join(inputs['scenes'])}")
    weights = class_weights(spec, model.config.num_classes)
    return indexed_task(model, dataset, collate, lambda m, b, d, s: batch_loss(m, spec, b, d, weights),
                        spec.train.loader_workers)
