"""Mesh and depth metrics of the VoRTX/IOAR and TransformerFusion protocols, hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from stages.scene_metrics.depth import depth_metrics, mean_depth_metrics
from stages.scene_metrics.mesh import point_metrics, voxel_downsample
from stages.scene_metrics.protocols import transformerfusion_metrics, vortx_mesh_metrics, vortx_trim
from stages.scene_metrics.render import render_depth
from stages.tsdf.fusion import VolumeGrid

K = np.array([[100.0, 0.0, 31.5], [0.0, 100.0, 23.5], [0.0, 0.0, 1.0]])  # 64 x 48 image


def plane(z=0.0, half=0.5, n=51):
    """A square z = const, [-half, half]^2, as an n x n vertex grid (spacing 2 * half / (n - 1))."""
    xs = np.linspace(-half, half, n)
    xx, yy = np.meshgrid(xs, xs, indexing="ij")
    vertices = np.stack([xx.ravel(), yy.ravel(), np.full(n * n, z)], axis=1)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return trimesh.Trimesh(vertices, faces, process=False)


def test_identical_meshes_score_perfectly():
    m = vortx_mesh_metrics(plane(), plane())
    assert (m["prec"], m["recall"], m["fscore"]) == (1.0, 1.0, 1.0)
    assert m["acc"] == 0.0 and m["comp"] == 0.0


@pytest.mark.parametrize("shift, fscore", [(0.10, 0.0), (0.03, 1.0)])
def test_plane_shifted_along_its_normal(shift, fscore):
    m = vortx_mesh_metrics(plane(shift), plane(0.0))
    assert m["fscore"] == fscore
    assert m["acc"] == pytest.approx(shift, abs=1e-12) and m["comp"] == pytest.approx(shift, abs=1e-12)


def test_extra_copy_halves_precision_not_recall():
    # Prediction = truth + a copy 1 m away: half of the predicted points are wrong (precision,
    # prediction -> truth), all of the truth is found (recall, truth -> prediction). A swapped
    # implementation (Atlas's released code) reports precision 1, recall 0.5.
    gt = plane()
    pred = trimesh.util.concatenate([plane(0.0), plane(1.0)])
    m = vortx_mesh_metrics(pred, gt)
    assert (m["prec"], m["recall"]) == (0.5, 1.0)
    assert m["fscore"] == pytest.approx(2 * 0.5 / 1.5)
    assert m["acc"] == pytest.approx(0.5) and m["comp"] == 0.0


def test_point_metrics_threshold_and_cap():
    gt = np.zeros((1, 3))
    pred = np.array([[0.05, 0, 0], [3.0, 0, 0]])
    strict = point_metrics(pred, gt, 0.05)
    assert strict["prec"] == 0.0 and strict["acc"] == pytest.approx(1.525)
    capped = point_metrics(pred, gt, 0.05, inclusive=True, max_distance=1.0)
    assert capped["prec"] == 0.5 and capped["acc"] == pytest.approx(0.525)
    assert capped["comp"] == pytest.approx(0.05) and capped["chamfer"] == pytest.approx(0.2875)
    empty = point_metrics(np.zeros((0, 3)), gt)
    assert empty["fscore"] == 0.0 and np.isnan(empty["acc"])


def test_voxel_downsample_averages_per_voxel():
    # Anchor = min - 0.01 = (-0.01, -0.01, -0.01): 0 and 0.005 share voxel 0, 0.03 is in voxel 2.
    pts = np.array([[0, 0, 0], [0.005, 0, 0], [0.03, 0, 0]], dtype=float)
    np.testing.assert_allclose(voxel_downsample(pts, 0.02), [[0.0025, 0, 0], [0.03, 0, 0]])


def test_depth_metrics_of_scaled_prediction():
    gt = np.array([[1.0, 2.0], [4.0, 0.0]])  # 0 = invalid ground truth
    m = depth_metrics(1.1 * gt, gt)
    assert m["abs_rel"] == pytest.approx(0.1)
    assert m["abs_diff"] == pytest.approx(0.7 / 3)
    assert m["sq_rel"] == pytest.approx((0.01 + 0.02 + 0.04) / 3)
    assert m["rmse"] == pytest.approx(np.sqrt((0.01 + 0.04 + 0.16) / 3))
    assert m["log_rmse"] == pytest.approx(np.log(1.1))
    assert (m["delta1"], m["delta2"], m["delta3"], m["completeness"]) == (1.0, 1.0, 1.0, 1.0)
    holes = 1.1 * gt
    holes[0, 0] = 0  # one of three valid pixels without a prediction
    h = depth_metrics(holes, gt)
    assert h["completeness"] == pytest.approx(2 / 3) and h["abs_rel"] == pytest.approx(0.1)
    # ratios 1.9 and 1.5 against 1.25, 1.5625, 1.953125
    far = depth_metrics(np.full((1, 2), 1.9), np.array([[1.0, 1.9 / 1.5]]))
    assert (far["delta1"], far["delta2"], far["delta3"]) == (0.0, 0.5, 1.0)
    means = mean_depth_metrics([m, depth_metrics(np.zeros((2, 2)), gt)])
    assert means["abs_rel"] == pytest.approx(0.1) and means["completeness"] == pytest.approx(0.5)


def test_render_depth_of_a_wall_and_a_point():
    pose = np.eye(4)
    pose[:3, 3] = [0.2, -0.1, -0.5]
    wall = plane(1.5, half=3.0, n=3)
    depth = render_depth(wall, K, pose, 64, 48)
    np.testing.assert_allclose(depth, 2.0, atol=1e-9)  # z = 1.5 - (-0.5) everywhere
    # A small triangle around world point (0.3, 0.0, 1.5): camera coords (0.1, 0.1, 2.0) ->
    # u = 100 * 0.05 + 31.5 = 36.5, v = 28.5; it covers pixel (row 28, column 36) and its neighbours.
    tri = trimesh.Trimesh([[0.29, -0.01, 1.5], [0.31, -0.01, 1.5], [0.30, 0.012, 1.5]], [[0, 1, 2]], process=False)
    small = render_depth(tri, K, pose, 64, 48)
    assert small[28, 36] == pytest.approx(2.0) and small[0, 0] == 0.0
    assert set(zip(*np.nonzero(small))) <= {(r, c) for r in (28, 29) for c in (36, 37)}


def test_vortx_trim_cuts_prediction_to_what_the_ground_truth_covers():
    # The camera sees x in [-0.315, 0.315] at z = 1; the prediction is a wide wall, the ground
    # truth a wall of half-width 0.2: trimming keeps the prediction where the truth renders.
    pred, gt = plane(1.0, half=2.0, n=5), plane(1.0, half=0.2, n=3)
    grid = VolumeGrid((-0.48, -0.48, 0.8), 0.04, (24, 24, 12))
    sensor = np.ones((48, 64), np.float32)
    trimmed, depth = vortx_trim(pred, gt, [(sensor, K, np.eye(4))], grid)
    np.testing.assert_allclose(trimmed.vertices[:, 2], 1.0, atol=1e-3)
    assert np.all(np.abs(trimmed.vertices[:, :2]) <= 0.2 + 0.04 + 1e-9)
    assert trimmed.vertices[:, 0].max() >= 0.16 and trimmed.vertices[:, 0].min() <= -0.16
    assert depth["abs_rel"] == pytest.approx(0.0, abs=1e-9) and depth["completeness"] == 1.0


def test_transformerfusion_drops_invisible_predictions():
    gt_pts = plane(0.0, half=0.3, n=31).vertices
    grid = VolumeGrid((-0.4, -0.4, -0.2), 0.04, (21, 21, 11))  # z from -0.2 to 0.2
    observed = np.ones(grid.dims, bool)
    observed[:, :, 8:] = False  # z >= 0.12 unobserved: the second wall at 0.16 is occluded
    pred = trimesh.util.concatenate([plane(0.0, half=0.3, n=7), plane(0.16, half=0.3, n=7)])
    m = transformerfusion_metrics(pred, gt_pts, grid, observed, samples=20_000, seed=3)
    # sampled points lie on the truth's plane, within sqrt(2) cm of its 2 cm vertex lattice
    assert m["prec"] == 1.0 and m["recall"] == 1.0 and m["acc"] < 0.0142 and m["comp"] < 0.0142
    everything = transformerfusion_metrics(pred, gt_pts, grid, np.ones(grid.dims, bool), samples=20_000, seed=3)
    assert everything["prec"] == pytest.approx(0.5, abs=0.02)
    again = transformerfusion_metrics(pred, gt_pts, grid, np.ones(grid.dims, bool), samples=20_000, seed=3)
    assert again == everything  # same seed, same numbers
    missing = transformerfusion_metrics(None, gt_pts, grid, observed)
    assert missing == {"acc": 1.0, "comp": 1.0, "chamfer": 1.0, "prec": 1.0, "recall": 0.0, "fscore": 0.0}


def test_scene_metrics_stage_scores_the_truth_perfectly(tmp_path):
    import json

    import pandas as pd

    from stages.fuse_tsdf import main as fuse
    from stages.scannet_tables import FRAMES, SCANS, encode_color, encode_depth, frames_shard, scans_path
    from stages.scene_metrics.__main__ import main as evaluate
    from stages.scene_metrics.table import SCENE_METRICS
    from stages.tables import read_table, write_shard

    scene, conv = "scene0000_00", tmp_path / "conv"
    gt = plane(1.0, half=0.3, n=31)
    gt.export(tmp_path / "gt.ply")
    (tmp_path / "pred").mkdir()
    gt.export(tmp_path / "pred" / f"{scene}.ply")
    frames = pd.DataFrame([{
        "scene": scene, "frame": i, "keyframe": True, "cam_to_world": np.eye(4).ravel().tolist(),
        "intrinsics": K.ravel().tolist(), "width": 64, "height": 48,
        "depth": encode_depth(np.full((48, 64), 1.0)), "color": encode_color(np.zeros((48, 64, 3), np.uint8)),
    } for i in range(2)]).astype({"width": "int32", "height": "int32"})
    write_shard(frames, frames_shard(conv, "test", 0), FRAMES)
    scan = {"scene": scene, "split": "test", "frames": 2, "keyframes": 2, "mesh_path": str(tmp_path / "gt.ply"),
            "min_x": -0.3, "min_y": -0.3, "min_z": 1.0, "max_x": 0.3, "max_y": 0.3, "max_z": 1.0}
    scans = pd.DataFrame([{c: scan.get(c, 0) for c in SCANS.columns}])  # skipped_* counts: 0
    write_shard(scans, scans_path(conv), SCANS)
    assert fuse(["--frames", str(conv), "--out", str(tmp_path / "tsdf")]) == 0
    assert evaluate(["--frames", str(conv), "--tsdf", str(tmp_path / "tsdf"), "--pred", str(tmp_path / "pred"),
                     "--out", str(tmp_path / "eval")]) == 0
    row = read_table(tmp_path / "eval" / "scene_metrics.parquet", SCENE_METRICS).iloc[0]
    assert row["frames"] == 2 and not row["missing_prediction"]
    assert row["tf_fscore"] == 1.0 and row["tf_prec"] == 1.0
    # VoRTX re-fuses the prediction: every trimmed point lies on the truth, but the re-fused
    # surface stops up to one voxel short of the truth's rim (vertices need observed neighbours),
    # so the uncut truth's rim is not recalled.
    assert row["vortx_prec"] == 1.0 and row["vortx_acc"] < 1e-3
    assert 0.8 < row["vortx_recall"] < 1.0
    # the truth (|x| <= 0.3 at z = 1) covers columns u with |u - 31.5| <= 30: 60 of 64
    assert row["depth_abs_rel"] == pytest.approx(0.0, abs=1e-9) and row["depth_completeness"] == 60 / 64
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["scenes"] == 1
    assert (tmp_path / "eval" / "trimmed" / f"{scene}.ply").is_file()
