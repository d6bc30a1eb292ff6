"""UMR in the shared training machinery: one `train` job, two stages (NVlabs/UMR train_s1.py,
avg_uv.py, train_s2.py), every loss from `stages.models.umr_losses`.

Stage 1 (steps < stage1_steps): mask (expected over the camera hypotheses), Laplacian, flatten,
deformation, texture (L1 stand-in of the perceptual loss, detached shape and camera), texture
cycle and hypothesis entropy. At the boundary `compute_semantic_template` runs once on the
training images with the network as it is then: it moves the template (`mean_v`) to the mean
predicted shape (the shape layer's bias takes the difference, so predictions do not change) and
labels every vertex and face with its most probable SCOPS part (avg_uv.py's per-vertex labels),
stored as buffers. Stage 2 adds the part-map term (the labelled mesh rendered with the detached
camera against the SCOPS maps) and the vertex Chamfer term (labelled template vertices under the
hypotheses against pixels drawn from their parts; only the cameras learn from it).

Randomness: the latent and the camera drawn for the texture and part renders come from a
generator seeded with (seed, step); the examples' from (seed, epoch, index) (`data`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...models.umr import orthographic_project, sample_image, select_camera, to_ndc
from ...models.umr_losses import (
    MeshSmoothness,
    cycle_targets,
    deform_loss,
    hypothesis_entropy,
    mask_loss,
    part_map_loss,
    render_hypotheses,
    texture_cycle_loss,
    texture_l1_loss,
    vertex_chamfer_loss,
)
from ...errors import StageError
from ...rendering.soft_rasterizer import SoftRasterSettings, face_soft_centroids, soft_fragments
from ...training.task import indexed_task
from .data import CubExamples, collate, read_records
from .model import UMRNet, build_model


def raster_settings(spec, size: int | None = None) -> SoftRasterSettings:
    """The soft rasterizer of the spec's train options at `size` (default: the render size)."""
    opts = spec.train_options
    return SoftRasterSettings(image_size=size or render_size(spec), sigma=opts.sigma, gamma=opts.gamma,
                              dist_eps=opts.dist_eps)


def render_size(spec) -> int:
    return spec.train_options.render_size or spec.network.image_size


def soft_iou(pred: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per image sum(p g) / sum(p + g - p g) over [..., S, S] (UMR test_iou.py)."""
    inter = (pred * truth).sum((-2, -1))
    return inter / (pred + truth - pred * truth).sum((-2, -1)).clamp_min(1e-12)


def step_generator(seed: int, step: int, device="cpu") -> torch.Generator:
    """The generator of training step `step`'s latent and camera draws."""
    return torch.Generator(device=device).manual_seed(int(np.random.SeedSequence((seed, step)).generate_state(1)[0]))


def _downsample(image: torch.Tensor, size: int) -> torch.Tensor:
    return image if image.shape[-1] == size else F.adaptive_avg_pool2d(image, size)


def umr_losses(core: UMRNet, out, batch: dict, spec, stage: int, smooth: MeshSmoothness, generator) -> tuple:
    """(total loss, statistics) of a batch (already on the model's device) in `stage`."""
    opts = spec.train_options
    w = opts.weights(stage)
    settings = raster_settings(spec)
    image, mask, parts = batch["image"], batch["mask"], batch["parts"]
    b = image.shape[0]
    faces = core.faces
    sil = render_hypotheses(out.vertices, faces, out.cams, settings)[:, :, -1]
    terms = {
        "mask": mask_loss(sil, mask, out.cam_probs),
        "laplacian": smooth.laplacian(out.vertices).mean(),
        "flatten": smooth.flatten(out.vertices).mean(),
        "deform": deform_loss(out.delta_v),
        "entropy": hypothesis_entropy(out.cam_probs),
    }
    probs = out.cam_probs.detach()
    cam, _ = select_camera(out.cams, probs, opts.sample_camera, generator)
    cam_d = cam.detach()
    v_d = out.vertices.detach()
    if w["texture"] > 0:
        colours = sample_image(image, out.texture_flow)
        rendered = render_hypotheses(v_d, faces, cam_d[:, None], settings, colours)
        small = _downsample(image, settings.image_size)
        terms["texture"] = texture_l1_loss(rendered[:, :, :3], rendered[:, :, 3], small, mask, probs.new_ones(b, 1))
    if w["texture_cycle"] > 0:
        centroids, visible = cycle_targets(v_d, faces, cam_d, settings)
        terms["texture_cycle"] = texture_cycle_loss(out.texture_flow, centroids.detach(), visible)
    if stage == 2 and w["part"] > 0:
        rendered = render_hypotheses(out.vertices, faces, cam_d[:, None], settings, core.part_textures(b))
        fg = parts[:, 1:] * mask[:, None]
        target = torch.cat([parts[:, :1], fg], dim=1)
        terms["part"] = part_map_loss(rendered[:, 0, :4], target)
    if stage == 2 and w["vertex"] > 0:
        ids = core.part_vertices()
        if sum(len(i) for i in ids):
            points = [batch["points"][:, i] for i in range(4)]
            terms["vertex"] = vertex_chamfer_loss(core.mean_shape(), ids, points, out.cams, probs)
    total = sum(w[k] * v for k, v in terms.items() if w.get(k, 0) > 0)
    with torch.no_grad():
        best = sil[torch.arange(b, device=sil.device), out.cam_probs.argmax(1)]
        stats = {
            "mask_iou": float(soft_iou(best, mask).mean()),
            "texture_l1": float(terms["texture"]) if "texture" in terms else 0.0,
            "part_loss": float(terms["part"]) if "part" in terms else 0.0,
            "stage": float(stage),
        }
    return total, stats


@torch.no_grad()
def compute_semantic_template(core: UMRNet, dataset: CubExamples, spec, batch_size: int = 16,
                              limit: int = 0) -> None:
    """Set `mean_v` to the mean predicted shape and label vertices and faces with SCOPS parts.

    Over the (first `limit`, 0 = all) training images, deterministic crops, the latent mean and
    the most probable camera (network in eval mode): the shape offsets are averaged into the
    template (shape.bias -= the mean offset, so every prediction stays the same); each vertex
    whose face is visible (z-buffer winner at a pixel) accumulates the part probabilities of
    the SCOPS map at its projection; mirror vertices share their sums (the mesh is symmetric).
    Vertex label = the most probable of head, neck, back, belly; a face's = that of its three
    corners' summed probabilities; 0 where nothing was accumulated."""
    was_training = core.training
    core.eval()
    device = core.mean_v.device
    eval_set = CubExamples(dataset.records, dataset.image_size, dataset.render_size, train=False, part_points=1)
    n = len(eval_set) if not limit else min(limit, len(eval_set))
    settings = raster_settings(spec, dataset.render_size)
    n_vertices, faces = core.mean_shape().shape[0], core.faces
    acc = torch.zeros(n_vertices, 5, dtype=torch.float64, device=device)
    delta_sum = torch.zeros_like(core.mean_v, dtype=torch.float64)
    for start in range(0, n, batch_size):
        batch = collate([eval_set[i] for i in range(start, min(n, start + batch_size))])
        image, parts = batch["image"].to(device), batch["parts"].to(device)
        out = core(image)
        delta_sum += out.delta_v.double().sum(0)
        cam, _ = select_camera(out.cams, out.cam_probs)
        projected = orthographic_project(out.vertices, cam)
        frag = soft_fragments(to_ndc(projected), faces, settings)
        _, visible_faces = face_soft_centroids(frag, image.shape[0], faces.shape[0], settings)
        visible = torch.zeros(image.shape[0], n_vertices, dtype=torch.bool, device=device)
        for c in range(3):
            visible |= torch.zeros_like(visible).scatter(1, faces[:, c].expand(image.shape[0], -1), visible_faces)
        sampled = F.grid_sample(parts, projected[:, :, None, :2], align_corners=False)[..., 0]  # [B, 5, V]
        acc += (sampled.permute(0, 2, 1).double() * visible[..., None]).sum(0)
    acc = acc + acc[torch.as_tensor(core.template.mirror_vertex_index(), device=device)]
    mean_delta = (delta_sum / n).to(core.mean_v.dtype)
    core.mean_v += mean_delta * core.on_plane_mask
    core.shape.bias -= mean_delta.reshape(-1)
    fg = acc[:, 1:]
    core.vertex_parts.copy_(torch.where(fg.sum(1) > 0, fg.argmax(1) + 1, torch.zeros_like(core.vertex_parts)))
    face_acc = fg[faces].sum(1)
    core.face_parts.copy_(torch.where(face_acc.sum(1) > 0, face_acc.argmax(1) + 1, torch.zeros_like(core.face_parts)))
    core.semantic_ready.fill_(1)
    core.train(was_training)


def training_task(spec, inputs, seed: int = 0, limit: int | None = None):
    """Batches of the training table (inputs: train, one Parquet file) and the two-stage loss."""
    opts = spec.train_options
    records = read_records(inputs["train"][0], limit)
    if spec.train.steps > opts.stage1_steps and all(r.parts is None for r in records):
        raise StageError(f"{inputs['train'][0]}: no SCOPS part maps (import_cub --parts), which UMR's stage 2 "
                         f"trains on; give them, or set train.steps = stage1_steps ({opts.stage1_steps}) for stage 1 only")
    dataset = CubExamples(records, spec.network.image_size, render_size(spec), train=True, seed=seed,
                          jitter=opts.jitter, mirror=opts.mirror, part_points=opts.part_points)
    model = build_model(spec, pretrained=True)
    smooth = MeshSmoothness(model.template.faces, len(model.template.vertices))

    def loss(net, batch, device, step):
        core = net.module if hasattr(net, "module") else net
        stage = 1 if step < opts.stage1_steps else 2
        if stage == 2 and not int(core.semantic_ready):
            compute_semantic_template(core, dataset, spec, limit=opts.template_images)
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        generator = step_generator(seed, step, device)
        out = net(batch["image"], sample_latent=True, generator=generator)
        return umr_losses(core, out, batch, spec, stage, smooth.to(device), generator)

    return indexed_task(model, dataset, collate, loss, spec.train.loader_workers)
