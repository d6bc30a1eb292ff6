"""Evaluate an IOAR model on the test scans like VoRTX/IOAR's scripts/evaluate.py, plus the
TransformerFusion protocol, next to a floor-plane baseline.

Per test scan (every scan with a TSDF volume in the test shards): whole-scan tiled inference
(`inference.reconstruct`) on the model's fine lattice of the fused volume, marching cubes, then
`stages.scene_metrics` (its `evaluate_scene`: the VoRTX/IOAR protocol with the 2D depth metrics
of the rendered mesh, and the TransformerFusion protocol) against the scan's mesh, frames and
4 cm TSDF. The ground truth is the scan's mesh, or with `eval.ground_truth: fused` the fused test
mesh (see IOAREval). The baseline is the floor plane alone: the faces of the fused ground-truth mesh
(rule fuse_tsdf --meshes) that face up and lie at the floor's height (`floor_mesh`), scored the
same way; it stands for "a model that learnt only where the floor is".

Writes into the output folder: meshes/<scene>.ply (predictions, world metres), baseline/meshes/
<scene>.ply, model/trimmed/ and baseline/trimmed/ (VoRTX's culled meshes), mesh_metrics.csv
(scene, method, protocol, acc, comp, chamfer, prec, recall, fscore; scene __mean__ = the mean
over scans), depth_metrics.csv (scene, method, the 2D depth metrics; __mean__ rows),
summary.json (mean_iou = the model's mean VoRTX F-score, baseline_mean_iou = the baseline's,
the headline named in `headline`) and qualitative/NN_<scene>.png (rows of frames: colour |
predicted mesh | ground-truth mesh, shaded, from the frame's camera).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import trimesh

from ...atomic import atomic_write
from ...errors import StageError
from ...evaluation import summary_fields, write_json, write_png
from ...scannet_tables import SCANS, decode_color
from ...scene_metrics.__main__ import evaluate_scene, load_mesh
from ...scene_metrics.depth import DEPTH_METRICS
from ...scene_metrics.mesh import MESH_METRICS
from ...scene_metrics.render import render_depth
from ...tables import SchemaViolation, read_table
from ...tsdf.tables import TSDF_VOLUMES
from .data import frame_records, read_frames, read_volumes
from .inference import reconstruct_mesh

PROTOCOLS = {"vortx": "vortx", "transformerfusion": "tf"}
METHODS = ("model", "baseline")
MEAN = "__mean__"
FLOOR_NORMAL_Z = 0.9  # faces whose unit normal has z above this face up
FLOOR_BIN = 0.02  # metres: height bins of the floor search
FLOOR_SEARCH = 0.5  # metres above the lowest up-facing face
FLOOR_BAND = 0.04  # metres: faces within this of the floor height are the floor


def floor_mesh(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The floor of a z-up scene mesh: up-facing faces (normal z > 0.9) whose centroid lies within
    4 cm of the floor height, the 2 cm height bin with the largest up-facing area among the lowest
    0.5 m of up-facing faces. An empty mesh when nothing faces up."""
    if len(mesh.faces) == 0:
        return mesh
    up = mesh.face_normals[:, 2] > FLOOR_NORMAL_Z
    if not up.any():
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64), process=False)
    z = mesh.triangles_center[:, 2]
    low = z[up].min()
    bins = np.floor((z[up] - low) / FLOOR_BIN).astype(np.int64)
    near = bins <= FLOOR_SEARCH / FLOOR_BIN
    area = np.bincount(bins[near], weights=mesh.area_faces[up][near])
    level = low + (np.argmax(area) + 0.5) * FLOOR_BIN
    keep = up & (np.abs(z - level) <= FLOOR_BAND)
    return mesh.submesh([np.flatnonzero(keep)], append=True) if keep.any() else \
        trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64), process=False)


def shade(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] grey shading of a depth map (metres, 0 = nothing): |cos| between the surface
    normal (from the back-projected points' finite differences) and the viewing ray."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    points = rays * depth[..., None]
    normal = np.cross(np.gradient(points, axis=1), np.gradient(points, axis=0))
    norm = np.linalg.norm(normal, axis=-1)
    cos = np.abs((normal * rays).sum(-1)) / np.maximum(norm * np.linalg.norm(rays, axis=-1), 1e-12)
    grey = np.where(depth > 0, 60 + 195 * np.clip(cos, 0, 1), 0).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def qualitative(rows: pd.DataFrame, pred: trimesh.Trimesh, gt: trimesh.Trimesh, count: int) -> np.ndarray:
    """Rows of `count` frames evenly spaced over the scan: colour | prediction | ground truth."""
    picks = np.unique(np.round(np.linspace(0, len(rows) - 1, count)).astype(np.int64))
    lines = []
    for i in picks:
        record = rows.iloc[i]
        rgb = decode_color(record["color"], f"{record['scene']} frame {record['frame']}")
        K = np.asarray(record["intrinsics"], np.float64).reshape(3, 3)
        pose = np.asarray(record["cam_to_world"], np.float64).reshape(4, 4)
        h, w = rgb.shape[:2]
        tiles = [rgb] + [shade(render_depth(m, K, pose, w, h), K) for m in (pred, gt)]
        sep = np.full((h, 4, 3), 40, np.uint8)
        lines.append(np.concatenate([tiles[0], sep, tiles[1], sep, tiles[2]], axis=1))
    gap = np.full((4, lines[0].shape[1], 3), 40, np.uint8)
    out = []
    for line in lines:
        out += [line, gap]
    return np.concatenate(out[:-1], axis=0)


def _gt_mesh_file(folders, scene: str) -> Path:
    for folder in folders:
        path = Path(folder) / f"{scene}.ply"
        if path.is_file():
            return path
    raise StageError(f"no fused ground-truth mesh {scene}.ply in {', '.join(map(str, folders))}")


def _metric_rows(scene: str, method: str, row: dict) -> tuple[list[dict], dict]:
    mesh_rows = [{"scene": scene, "method": method, "protocol": protocol,
                  **{k: row[f"{prefix}_{k}"] for k in MESH_METRICS}} for protocol, prefix in PROTOCOLS.items()]
    depth_row = {"scene": scene, "method": method, **{k: row[f"depth_{k}"] for k in DEPTH_METRICS}}
    return mesh_rows, depth_row


def _with_means(frame: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    means = frame.groupby(keys, sort=False)[values].mean().reset_index().assign(scene=MEAN)
    return pd.concat([frame, means[frame.columns]], ignore_index=True)


def evaluate(spec, model, payload: dict, inputs, out_dir: Path, options, device) -> dict:
    """Score `model` on the test scans (inputs: frames, scans, tsdf, gt_meshes) and write the
    files of the module docstring; returns the summary."""
    out = Path(out_dir)
    settings = spec.eval
    frames = read_frames(inputs["frames"])
    fine = read_volumes(inputs["tsdf"], spec.network.voxel_sizes[2])
    try:
        volumes = read_table([str(p) for p in inputs["tsdf"]], TSDF_VOLUMES)
        scans = read_table([str(p) for p in inputs["scans"]], SCANS, columns=["scene", "mesh_path"])
    except SchemaViolation as err:
        raise StageError(str(err)) from None
    finest = volumes[np.isclose(volumes["voxel_size"], volumes.groupby("scene")["voxel_size"].transform("min"))]
    finest = finest.set_index("scene")
    meshes = dict(zip(scans["scene"], scans["mesh_path"]))
    scenes = sorted(fine)
    if options.limit is not None:
        scenes = scenes[: options.limit]
    if not scenes:
        raise StageError(f"{inputs['tsdf'][0]}: no test scan with a TSDF volume")
    dataset = ds.dataset([str(p) for p in inputs["frames"]], format="parquet")
    from tqdm import tqdm

    mesh_rows, depth_rows = [], []
    for n, scene in enumerate(tqdm(scenes, desc=f"eval {spec.name}", unit="scan", file=sys.stderr,
                                   mininterval=1.0 if sys.stderr.isatty() else 10.0)):
        if scene not in frames:
            raise StageError(f"{inputs['frames'][0]}: no frames of test scan {scene}")
        if scene not in meshes:
            raise StageError(f"{inputs['scans'][0]}: no SCANS row for {scene}")
        prediction = reconstruct_mesh(model, spec.network, frames[scene], fine[scene].grid, settings.tile,
                                      settings.views, device, scene)
        atomic_write(out / "meshes" / f"{scene}.ply", lambda tmp: prediction.export(tmp, file_type="ply"))
        fused_path = _gt_mesh_file(inputs["gt_meshes"], scene)
        truth_path = fused_path if settings.ground_truth == "fused" else Path(meshes[scene])
        baseline = floor_mesh(load_mesh(fused_path))
        atomic_write(out / "baseline" / "meshes" / f"{scene}.ply", lambda tmp: baseline.export(tmp, file_type="ply"))
        volume_row = finest.loc[scene].to_dict() | {"scene": scene}
        for method, pred_dir, method_out in (("model", out / "meshes", out / "model"),
                                             ("baseline", out / "baseline" / "meshes", out / "baseline")):
            args = argparse.Namespace(protocol=list(PROTOCOLS), pred=pred_dir, out=method_out, split="test",
                                      frames=inputs["frames"][0], frame_stride=settings.frame_stride)
            row = evaluate_scene(args, scene, volume_row, truth_path, dataset)
            rows, depth_row = _metric_rows(scene, method, row)
            mesh_rows += rows
            depth_rows.append(depth_row)
        if n < options.qualitative:
            records = frame_records(inputs["frames"], scene)
            image = qualitative(records, prediction, load_mesh(truth_path), settings.qualitative_frames)
            write_png(out / "qualitative" / f"{n:02d}_{scene}.png", image)
    mesh_table = _with_means(pd.DataFrame(mesh_rows), ["method", "protocol"], list(MESH_METRICS))
    depth_table = _with_means(pd.DataFrame(depth_rows), ["method"], list(DEPTH_METRICS))
    atomic_write(out / "mesh_metrics.csv", lambda tmp: mesh_table.to_csv(tmp, index=False))
    atomic_write(out / "depth_metrics.csv", lambda tmp: depth_table.to_csv(tmp, index=False))
    (out / "qualitative").mkdir(parents=True, exist_ok=True)

    def mean(method, protocol, key):
        t = mesh_table
        hit = t[(t["scene"] == MEAN) & (t["method"] == method) & (t["protocol"] == protocol)]
        return float(hit[key].iloc[0])

    def depth_mean(method, key):
        hit = depth_table[(depth_table["scene"] == MEAN) & (depth_table["method"] == method)]
        return float(hit[key].iloc[0])

    summary = {
        **summary_fields(spec, payload, device),
        "headline": "mean_iou is the mean F-score of the VoRTX/IOAR protocol (5 cm), not an IoU",
        "baseline": "the floor plane alone: up-facing faces of the fused ground-truth mesh at the floor's height",
        "ground_truth": settings.ground_truth,
        "mean_iou": mean("model", "vortx", "fscore"),
        "baseline_mean_iou": mean("baseline", "vortx", "fscore"),
        "global_iou": None,
        "tf_fscore": mean("model", "transformerfusion", "fscore"),
        "baseline_tf_fscore": mean("baseline", "transformerfusion", "fscore"),
        **{f"vortx_{k}": mean("model", "vortx", k) for k in MESH_METRICS},
        **{f"depth_{k}": depth_mean("model", k) for k in DEPTH_METRICS},
        **{f"baseline_depth_{k}": depth_mean("baseline", k) for k in DEPTH_METRICS},
        "paper_references": dict(spec.paper.references),
        "test_scenes": len(scenes),
    }
    write_json(out / "summary.json", summary)
    return summary
