"""Evaluate a UMR model on the CUB test table as NVlabs/UMR does (test_iou.py, test_kp.py), with
two baselines, deterministic by default (latent mean, most probable camera, no mirror;
eval.sampling: true draws them as the original, seeded by --seed).

Writes into the output folder:

* umr_metrics.csv: metric, mode, alpha, value, count. mask_iou_soft / mask_iou_hard (alpha
  empty; count = images, or pair directions for `copy`) and pck (count = scored keypoints) for
  the modes `model` (mask IoU of the prediction), `flow` and `cam` (keypoint transfer through the
  texture flow, and through the template and the cameras), `mean_template` (the template under
  the mean predicted camera of the training images, for every image) and `copy` (the other
  image's keypoints and mask copied unchanged).
* pck_by_keypoint.csv: keypoint, mode, alpha, pck, count.
* images.parquet: one row per test image: ids, soft/hard IoU of the model and the mean
  template, the chosen camera (scale, tx, ty, qw, qx, qy, qz) and its probability.
* summary.json: `mean_iou` is the model's soft mask IoU (the headline), `baseline_mean_iou`
  the better baseline's soft mask IoU, `pck_flow` / `pck_cam` / `baseline_pck` by alpha.
* qualitative/NN_<image_id>.png: input | mask | predicted mask | mesh from 3 views | textured.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...atomic import atomic_write
from ...errors import StageError
from ...evaluation import summary_fields, write_json, write_png
from ...models.umr import orthographic_project, sample_image, select_camera
from ...models.umr_losses import render_hypotheses
from ...synthetic.birds import KEYPOINT_NAMES
from .data import CubExamples, collate, read_records
from .metrics import (
    flow_answers,
    flow_faces,
    mask_iou,
    nearest_vertices,
    pck,
    pck_by_keypoint,
    snap_to_mask,
    transfer_errors,
    transfer_pairs,
)
from .task import raster_settings
from .views import qualitative_row

MODES = ("flow", "cam", "mean_template", "copy")


@torch.no_grad()
def mean_camera(model, records, spec, limit: int, batch_size: int, device) -> torch.Tensor:
    """[7] the mean of the most probable predicted cameras of the training images: scale and
    translation averaged, quaternions sign-aligned with the first and averaged, normalised."""
    data = CubExamples(records[:limit] if limit else records, spec.network.image_size, spec.network.image_size,
                       train=False)
    cams = []
    for start in range(0, len(data), batch_size):
        batch = collate([data[i] for i in range(start, min(len(data), start + batch_size))])
        out = model(batch["image"].to(device))
        cams.append(select_camera(out.cams, out.cam_probs)[0].double().cpu())
    cams = torch.cat(cams)
    quats = cams[:, 3:]
    quats = quats * torch.where((quats @ quats[0]) < 0, -1.0, 1.0)[:, None]
    quat = quats.mean(0)
    return torch.cat([cams[:, :3].mean(0), quat / quat.norm()]).float()


def front_facing(vertices: torch.Tensor, faces: torch.Tensor, cam: torch.Tensor) -> np.ndarray:
    """[V] bool: the vertex normal (area-weighted face normals) points to the camera (negative
    depth direction) under cam [7]."""
    rotated = orthographic_project(vertices[None], cam[None])[0]
    tri = rotated[faces]
    normal = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1)
    vn = torch.zeros_like(rotated).index_add(0, faces.reshape(-1), normal.repeat_interleave(3, dim=0))
    # the projection flips handedness when the scale is positive and y points down: test the
    # orientation of the whole mesh (outward normals point away from its centre)
    centre = rotated.mean(0)
    outward = ((vn * (rotated - centre)).sum(1) >= 0).float().mean() >= 0.5
    z = vn[:, 2] if outward else -vn[:, 2]
    return (z < 0).numpy()


def _keypoint_rows(errors: dict, alphas) -> list[dict]:
    rows = []
    for mode, err in errors.items():
        for alpha in alphas:
            per, counts = pck_by_keypoint(err, alpha)
            rows += [{"keypoint": name, "mode": mode, "alpha": alpha, "pck": float(p), "count": int(c)}
                     for name, p, c in zip(KEYPOINT_NAMES, per, counts)]
    return rows


@torch.no_grad()
def evaluate(spec, model, payload: dict, inputs, out_dir: Path, options, device) -> dict:
    """Score `model` on the test table (inputs: test; train for the mean camera); write the files
    of the module docstring."""
    settings_eval = spec.eval
    size = spec.network.image_size
    records = read_records(inputs["test"][0], options.limit)
    if len(records) < 2:
        raise StageError(f"{inputs['test'][0]}: keypoint transfer needs at least 2 test images, found {len(records)}")
    train_records = read_records(inputs["train"][0], settings_eval.baseline_images or None)
    sampling = settings_eval.sampling
    generator = torch.Generator(device=device).manual_seed(options.seed) if sampling else None
    data = CubExamples(records, size, size, train=False, mirror_seed=options.seed if sampling else None)
    raster = raster_settings(spec, size)
    faces = model.faces
    template = model.mean_shape()
    mean_cam = mean_camera(model, train_records, spec, 0, options.batch_size, device)
    base_sil = render_hypotheses(template[None], faces, mean_cam[None, None].to(device), raster)[0, 0, -1].cpu().numpy()
    base_front = front_facing(template.cpu(), faces.cpu(), mean_cam)
    base_proj = orthographic_project(template[None].cpu(), mean_cam[None])[0, :, :2].numpy()
    sigma = settings_eval.heatmap_sigma / 256.0 * 2.0
    per_image, shown = [], 0
    kps, crop_sides, sides, truth_masks, pred_masks = [], [], [], [], []
    src_faces, face_centres, src_vertices, cams, base_vertices = [], [], [], [], []
    out = Path(out_dir)
    from tqdm import tqdm

    for start in tqdm(range(0, len(data), options.batch_size), desc=f"eval {spec.name}", file=sys.stderr,
                      mininterval=1.0 if sys.stderr.isatty() else 10.0):
        batch = collate([data[i] for i in range(start, min(len(data), start + options.batch_size))])
        image = batch["image"].to(device)
        pred = model(image, sample_latent=sampling, generator=generator)
        cam, chosen = select_camera(pred.cams, pred.cam_probs, sampling, generator)
        sil = render_hypotheses(pred.vertices, faces, cam[:, None], raster)[:, 0, -1].float().cpu().numpy()
        flow = pred.texture_flow.float().cpu().numpy()
        cam_cpu = cam.float().cpu()
        for i in range(len(image)):
            truth = batch["mask"][i].numpy()
            kp = batch["keypoints"][i].numpy()
            soft, hard = mask_iou(sil[i], truth)
            b_soft, b_hard = mask_iou(base_sil, truth)
            record = records[start + i]
            per_image.append({
                "index": record.index, "image_id": record.image_id, "rel_path": record.rel_path,
                "mirrored": bool(batch["mirrored"][i]), "mask_iou_soft": soft, "mask_iou_hard": hard,
                "mean_template_iou_soft": b_soft, "mean_template_iou_hard": b_hard,
                **{f"cam_{k}": float(v) for k, v in zip(("s", "tx", "ty", "qw", "qx", "qy", "qz"), cam_cpu[i])},
                "cam_probability": float(pred.cam_probs[i, chosen[i]]),
            })
            kps.append(kp)
            crop_sides.append(float(batch["crop_side"][i]))
            sides.append(float(batch["side"][i]))
            truth_masks.append(truth)
            pred_masks.append(np.packbits(sil[i] > 0.5))
            src_faces.append(flow_faces(flow[i], kp, sigma))
            face_centres.append(flow[i].mean(1))
            proj = orthographic_project(template[None].cpu(), cam_cpu[i : i + 1])[0, :, :2].numpy()
            src_vertices.append(nearest_vertices(proj, front_facing(template.cpu(), faces.cpu(), cam_cpu[i]), kp))
            base_vertices.append(nearest_vertices(base_proj, base_front, kp))
            cams.append(cam_cpu[i])
            if shown < options.qualitative:
                colours = sample_image(image[i : i + 1], pred.texture_flow[i : i + 1])[0].float().cpu()
                picture = qualitative_row(batch["image"][i], truth, sil[i], pred.vertices[i].float().cpu(),
                                          faces.cpu(), cam_cpu[i], colours, 128)
                write_png(out / "qualitative" / f"{shown:02d}_{record.image_id}.png", picture)
                shown += 1

    n = len(records)
    seed = settings_eval.pair_seed if settings_eval.pair_seed is not None else n
    pairs = transfer_pairs(settings_eval.pairs[spec.scale], n, seed)
    base_mask = base_sil > 0.5
    errors = {mode: [] for mode in MODES}
    copy_ious = []
    for a, b in pairs:
        for s, t in ((a, b), (b, a)):
            src_kp, tgt_kp = kps[s], kps[t]
            vis = src_kp[:, 2]
            tgt_mask = np.unpackbits(pred_masks[t], count=size * size).reshape(size, size).astype(bool)
            answers = {
                "flow": flow_answers(face_centres[t], src_faces[s]),
                "cam": _project_snap(template, src_vertices[s], cams[t], tgt_mask),
                "mean_template": _project_snap(template, base_vertices[s], mean_cam, base_mask),
                "copy": src_kp[:, :2],
            }
            for mode, predicted in answers.items():
                errors[mode].append(transfer_errors(np.nan_to_num(predicted, nan=1e9), tgt_kp, vis, crop_sides[t], sides[t]))
            copy_ious.append(mask_iou(truth_masks[s], truth_masks[t]))
    errors = {mode: np.array(e) for mode, e in errors.items()}
    images = pd.DataFrame(per_image)
    alphas = list(settings_eval.alphas)
    rows = []
    for metric, column in (("mask_iou_soft", "mask_iou_soft"), ("mask_iou_hard", "mask_iou_hard")):
        rows.append({"metric": metric, "mode": "model", "alpha": np.nan, "value": float(images[column].mean()), "count": n})
        rows.append({"metric": metric, "mode": "mean_template", "alpha": np.nan,
                     "value": float(images[column.replace("mask", "mean_template")].mean()), "count": n})
    copy = np.array(copy_ious)
    rows.append({"metric": "mask_iou_soft", "mode": "copy", "alpha": np.nan, "value": float(copy[:, 0].mean()), "count": len(copy)})
    rows.append({"metric": "mask_iou_hard", "mode": "copy", "alpha": np.nan, "value": float(copy[:, 1].mean()), "count": len(copy)})
    for mode in MODES:
        for alpha in alphas:
            rows.append({"metric": "pck", "mode": mode, "alpha": alpha, "value": pck(errors[mode], alpha),
                         "count": int((~np.isnan(errors[mode])).sum())})
    metrics = pd.DataFrame(rows, columns=["metric", "mode", "alpha", "value", "count"])
    keypoints = pd.DataFrame(_keypoint_rows(errors, alphas), columns=["keypoint", "mode", "alpha", "pck", "count"])

    def value(metric, mode, alpha=None):
        m = metrics[(metrics["metric"] == metric) & (metrics["mode"] == mode)]
        if alpha is not None:
            m = m[np.isclose(m["alpha"], alpha)]
        return float(m["value"].iloc[0])

    baselines = {mode: value("mask_iou_soft", mode) for mode in ("mean_template", "copy")}
    best = max(baselines, key=baselines.get)
    summary = {
        **summary_fields(spec, payload, device),
        "headline": "mean_iou: soft mask IoU (UMR test_iou.py); baseline_mean_iou: the better baseline's",
        "mean_iou": value("mask_iou_soft", "model"),
        "hard_mask_iou": value("mask_iou_hard", "model"),
        "baseline_mean_iou": baselines[best],
        "baseline": best,
        "baseline_mask_iou": baselines,
        "pck_flow": {str(a): value("pck", "flow", a) for a in alphas},
        "pck_cam": {str(a): value("pck", "cam", a) for a in alphas},
        "baseline_pck": {mode: {str(a): value("pck", mode, a) for a in alphas} for mode in ("mean_template", "copy")},
        "paper_pck": {str(k): v for k, v in spec.paper.pck.items()},
        "pairs": int(len(pairs)),
        "sampling": bool(sampling),
        "mean_camera": [float(c) for c in mean_cam],
        "test_scenes": n,
    }
    atomic_write(out / "umr_metrics.csv", lambda tmp: metrics.to_csv(tmp, index=False))
    atomic_write(out / "pck_by_keypoint.csv", lambda tmp: keypoints.to_csv(tmp, index=False))
    atomic_write(out / "images.parquet", lambda tmp: images.to_parquet(tmp, index=False))
    write_json(out / "summary.json", summary)
    return summary


def _project_snap(template: torch.Tensor, vertices: np.ndarray, cam: torch.Tensor, mask: np.ndarray) -> np.ndarray:
    """Camera transfer, target side: the chosen template vertices [K] (-1: none) projected with
    cam [7] and snapped to the mask. Returns [K, 2] (NaN where none)."""
    proj = orthographic_project(template[None].cpu(), cam[None].cpu())[0, :, :2].numpy()
    out = np.full((len(vertices), 2), np.nan)
    ok = vertices >= 0
    out[ok] = proj[vertices[ok]]
    return snap_to_mask(out, mask)
