"""scene_metrics: mesh and depth metrics of predicted scene meshes (VoRTX/IOAR, TransformerFusion).

    python -m stages.scene_metrics --frames CONVERTED --tsdf TSDF_DIR --pred PRED_DIR --out DIR
        [--split test] [--protocol vortx --protocol transformerfusion] [--frame-stride 1]
        [--scene NAME ...]

Evaluates PRED_DIR/<scene>.ply (world coordinates of the scan) for every scene with a 4 cm
volume in TSDF_DIR/volumes/<split>/ (`stages.fuse_tsdf`), against the scan's mesh (SCANS
mesh_path in CONVERTED/scans.parquet) and its frames (CONVERTED/frames/<split>/, every
--frame-stride-th frame). Writes DIR/scene_metrics.parquet (SCENE_METRICS) and DIR/summary.json
(per-scene means of every metric, NaN-ignoring, and the scene count); with the VoRTX protocol
also DIR/trimmed/<scene>.ply. A missing prediction scores TransformerFusion's defaults and NaN
for VoRTX (flagged in missing_prediction).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import trimesh
from tqdm import tqdm

from stages.atomic import atomic_write, write_text
from stages.cli import run
from stages.errors import StageError
from stages.fuse_tsdf import scene_frames
from stages.scannet_tables import SCANS, frames_dir, scans_path
from stages.scene_metrics.depth import DEPTH_METRICS
from stages.scene_metrics.protocols import transformerfusion_metrics, visible_points, vortx_mesh_metrics, vortx_trim
from stages.scene_metrics.table import METRIC_COLUMNS, SCENE_METRICS
from stages.tables import SPLITS, SchemaViolation, read_table, shard_files, write_shard
from stages.tsdf.tables import TSDF_VOLUMES, decode_volume

PROTOCOLS = ("vortx", "transformerfusion")


def load_mesh(path: Path) -> trimesh.Trimesh:
    """A triangle mesh from a PLY/OBJ file. Raises StageError naming the file when unreadable."""
    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as err:  # trimesh raises many types for bad files
        raise StageError(f"{path}: unreadable mesh ({type(err).__name__}: {err})") from None
    if not isinstance(mesh, trimesh.Trimesh):
        raise StageError(f"{path}: not a triangle mesh")
    return mesh


def evaluate_scene(args, scene: str, volume_row, mesh_path: Path, frames_dataset) -> dict:
    grid, _, weight = decode_volume(volume_row)
    observed = weight > 0
    gt = load_mesh(mesh_path)
    pred_path = args.pred / f"{scene}.ply"
    pred = load_mesh(pred_path) if pred_path.is_file() else None
    row = {"scene": scene, "split": args.split, "frames": 0, "missing_prediction": pred is None,
           **{c: float("nan") for c in METRIC_COLUMNS}}
    if "vortx" in args.protocol and pred is not None:
        frames = [f for n, f in enumerate(scene_frames(frames_dataset, scene, str(args.frames)))
                  if n % args.frame_stride == 0]
        row["frames"] = len(frames)
        trimmed, depth = vortx_trim(pred, gt, frames, grid)
        atomic_write(args.out / "trimmed" / f"{scene}.ply", lambda tmp: trimmed.export(tmp, file_type="ply"))
        row.update({f"depth_{k}": depth[k] for k in DEPTH_METRICS})
        row.update({f"vortx_{k}": v for k, v in vortx_mesh_metrics(trimmed, gt).items()})
    if "transformerfusion" in args.protocol:
        gt_points = np.asarray(gt.vertices)[visible_points(gt.vertices, grid, observed)]
        if len(gt_points) == 0:
            raise StageError(f"{mesh_path}: no vertex of the mesh lies in the observed volume of {scene}")
        row.update({f"tf_{k}": v for k, v in transformerfusion_metrics(pred, gt_points, grid, observed).items()})
    return row


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m stages.scene_metrics", description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=Path, required=True, help="convert_scannet output folder")
    parser.add_argument("--tsdf", type=Path, required=True, help="fuse_tsdf output folder")
    parser.add_argument("--pred", type=Path, required=True, help="folder of <scene>.ply predictions")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", choices=SPLITS, default="test")
    parser.add_argument("--protocol", action="append", choices=PROTOCOLS, help="default: both")
    parser.add_argument("--frame-stride", type=int, default=1)
    parser.add_argument("--scene", action="append", help="only these scenes (repeatable)")
    args = parser.parse_args(argv)
    args.protocol = args.protocol or list(PROTOCOLS)
    if args.frame_stride < 1:
        parser.error("--frame-stride must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        volumes = read_table(args.tsdf / "volumes" / args.split, TSDF_VOLUMES)
        scans = read_table(scans_path(args.frames), SCANS, columns=["scene", "mesh_path"])
    except SchemaViolation as err:
        raise StageError(str(err)) from None
    fine = volumes[np.isclose(volumes["voxel_size"], volumes.groupby("scene")["voxel_size"].transform("min"))]
    fine = fine.set_index("scene")
    scenes = sorted(fine.index) if not args.scene else list(args.scene)
    missing = [s for s in scenes if s not in fine.index]
    if missing:
        raise StageError(f"{args.tsdf / 'volumes' / args.split}: no TSDF volume for {', '.join(missing[:5])}")
    meshes = dict(zip(scans["scene"], scans["mesh_path"]))
    shards = shard_files(frames_dir(args.frames) / args.split)
    if "vortx" in args.protocol and not shards:
        raise StageError(f"{frames_dir(args.frames) / args.split}: no FRAMES shard files")
    dataset = ds.dataset([str(p) for p in shards], format="parquet") if shards else None
    rows = []
    for scene in tqdm(scenes, desc="scene_metrics", unit="scene", disable=not sys.stderr.isatty()):
        if scene not in meshes:
            raise StageError(f"{scans_path(args.frames)}: no SCANS row for {scene}")
        rows.append(evaluate_scene(args, scene, fine.loc[scene].to_dict() | {"scene": scene},
                                   Path(meshes[scene]), dataset))
    table = pd.DataFrame(rows, columns=SCENE_METRICS.columns)
    write_shard(table, args.out / "scene_metrics.parquet", SCENE_METRICS)
    summary = {"scenes": len(table), "split": args.split, "protocols": args.protocol,
               **{c: (float(table[c].mean()) if table[c].notna().any() else None) for c in METRIC_COLUMNS}}
    write_text(args.out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(f"scene_metrics: {len(table)} scenes; VoRTX F {summary['vortx_fscore']}, "
          f"TransformerFusion F {summary['tf_fscore']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run(main)
