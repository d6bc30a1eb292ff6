"""The IOAR family end to end on tiny synthetic rooms: crops and their augmentation against the
volume, training through the shared loop, the evaluation's files and report, prediction from a
scan folder, the floor-plane baseline, the model file and the rules' inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import trimesh
import yaml

from stages import convert_scannet, fuse_tsdf, predict, synthesize_rooms
from stages.families import DataLayout, EvalOptions, family_named
from stages.families.ioar.data import (ScanCrops, crop_indices, dihedral_matrix, read_frames, read_volumes,
                                       visible_fraction)
from stages.families.ioar.evaluate import floor_mesh
from stages.model_config import load_model_spec
from stages.scannet_tables import decode_depth
from stages.scene_metrics.depth import DEPTH_METRICS
from stages.scene_metrics.mesh import MESH_METRICS
from stages.training.checkpoints import load
from stages.training.loop import RunOptions, train

REPO = Path(__file__).resolve().parents[1]


def write_tiny_scannet(root: Path) -> dict:
    """Two training rooms and one test room (10 frames of 64 x 48), converted and fused at 8, 16
    and 32 cm (the small model's levels; 8 cm is then also the metrics' finest lattice)."""
    rooms, tables = root / "rooms", root / "scannet"
    synthesize_rooms.main(["--out", str(rooms), "--scenes-train", "2", "--scenes-test", "1", "--frames", "10",
                           "--width", "64", "--height", "48", "--seed", "3", "--no-progress"])
    convert_scannet.main(["--root", str(rooms), "--out", str(tables), "--no-progress"])
    fuse_tsdf.main(["--frames", str(tables), "--out", str(tables / "tsdf"), "--split", "train", "--voxel-size", "0.08"])
    meshes = tables / "tsdf" / "meshes" / "test" / "shard-00000"
    fuse_tsdf.main(["--frames", str(tables), "--out", str(tables / "tsdf"), "--split", "test", "--voxel-size", "0.08",
                    "--meshes", str(meshes)])
    return {
        "rooms": rooms,
        "train": {"frames": [str(tables / "frames/train/shard-00000.parquet")],
                  "tsdf": [str(tables / "tsdf/volumes/train/shard-00000.parquet")]},
        "eval": {"frames": [str(tables / "frames/test/shard-00000.parquet")],
                 "scans": [str(tables / "scans.parquet")],
                 "tsdf": [str(tables / "tsdf/volumes/test/shard-00000.parquet")],
                 "gt_meshes": [str(meshes)]},
    }


def tiny_ioar_spec(steps: int = 2):
    spec = load_model_spec(REPO / "config" / "models" / "ioar.yaml", "small")
    network = replace(spec.network, image_size=(64, 48), feature_channels=(16, 8, 8), unet_base=(4, 4, 4))
    options = replace(spec.train_options, crop=(16, 16, 12), views=3)
    evaluation = replace(spec.eval, tile=(48, 48, 32), views=4, frame_stride=2, qualitative_frames=2)
    # with the fine-tuning phase (IOAR's phase 2) from step 1 on, so that it is exercised
    train = replace(spec.train, steps=steps, batch_size=1, warmup_steps=0, checkpoint_every=steps, log_every=1,
                    finetune_share=0.5, finetune_lr=1e-4, finetune_batch_size=1)
    return replace(spec, network=network, train_options=options, eval=evaluation, train=train)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield write_tiny_scannet(tmp_path_factory.mktemp("ioar"))
    torch.set_num_threads(threads)


def test_dihedral_crops_keep_every_lattice():
    # a quarter turn about a coarse lattice point maps level-s voxels onto level-s voxels
    R = dihedral_matrix(1, False)
    assert R.tolist() == [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    corner, centre, dims = np.array([4, 8, 0]), np.array([8, 8, 0]), (16, 16, 8)
    for scale in (0, 1, 2):
        idx = crop_indices(corner, dims, scale, R, centre)
        f = 2**scale
        # new voxel a at fine offset f a reads old offset centre + R^T (f a - centre)
        a = np.array([1, 0, 1])
        expected = (corner + centre + R.T @ (f * a - centre)) // f
        assert idx[1, 0, 1].tolist() == expected.tolist()
        assert np.all((corner + centre + (f * np.indices(idx.shape[:3]).transpose(1, 2, 3, 0) - centre) @ R) % f == 0)
    flip = dihedral_matrix(0, True)
    assert crop_indices(np.zeros(3, np.int64), (8, 8, 4), 0, flip, np.array([4, 4, 0]))[0, 0, 0].tolist() == [8, 0, 0]


def test_visible_fraction_counts_points_in_front_and_inside():
    K = np.array([[[10.0, 0, 4.5], [0, 10.0, 3.5], [0, 0, 1]]])
    pose = np.eye(4)[None]
    points = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [10.0, 0.0, 1.0], [0.4, 0.3, 1.0]])
    # (4.5, 3.5) inside; behind; far right; (8.5, 6.5): inside a 10 x 8 image (up to 9.5, 7.5)
    assert visible_fraction(points, K, pose, 10, 8).tolist() == [0.5]


def test_a_crop_matches_the_volume_and_its_cameras(tiny):
    from stages.families.ioar.data import load_image

    spec = tiny_ioar_spec()
    crops = ScanCrops(read_frames(tiny["train"]["frames"], depth=True), read_volumes(tiny["train"]["tsdf"], 0.08),
                      spec.network, replace(spec.train_options, augment=True, color_jitter=0.0))
    scene = crops.scenes[0]
    volume, frames = crops.volumes[scene], crops.frames[scene]
    checked = 0
    for seed in range(4):
        item = crops.item(0, seed)
        again = crops.item(0, seed)
        assert all(torch.equal(item[k], again[k]) for k in ("images", "tsdf", "cam_to_world"))
        assert item["images"].shape == (3, 3, 48, 64) and item["tsdf"].shape == (16, 16, 12)
        assert [tuple(x.shape) for x in item["labels"]] == [(4, 4, 3), (8, 8, 6)]
        # view 0 is one of the scan's frames (same pixels, no jitter here) seen through the turned
        # world: a crop voxel's point, taken back through that frame's own pose, is a volume voxel
        # holding the same TSDF value
        frame = next(i for i in range(len(frames.poses))
                     if np.array_equal(load_image(frames.colors[i], frames.K[i], (64, 48), "f")[0], item["images"][0].numpy()))
        # its depth map travels with it (the projective-occupancy loss reads it)
        assert torch.equal(item["depth"][0], torch.from_numpy(decode_depth(frames.depths[frame])))
        turned = item["cam_to_world"][0].numpy().astype(np.float64)
        inside = item["tsdf_mask"].numpy()
        for a in np.argwhere(inside)[::37]:
            p_new = item["origin"].numpy().astype(np.float64) + a * 0.08
            cam = np.linalg.solve(turned, np.append(p_new, 1.0))
            p_old = (frames.poses[frame] @ cam)[:3]
            index = (p_old - np.asarray(volume.grid.origin)) / 0.08
            assert np.allclose(index, np.round(index), atol=1e-3)
            index = tuple(np.round(index).astype(int))
            assert volume.tsdf[index] == item["tsdf"][tuple(a)].item()
            checked += 1
    assert checked > 10


def test_a_depth_map_is_resized_by_nearest_neighbour_keeping_k():
    from stages.families.ioar.data import load_depth
    from stages.scannet_tables import encode_depth_mm

    millimetres = np.arange(1, 55, dtype=np.uint16).reshape(6, 9) * 100
    millimetres[4, 4] = 0  # no reading: stays 0, never blended
    depth = load_depth(encode_depth_mm(millimetres), (3, 2), "d")
    # a 3x downscale: output pixel centre u' is source position 3 u' + 1, a source pixel's centre
    # (load_image's u' = s (u + 0.5) - 0.5), so K' reads the source pixel that holds the point
    assert depth.tolist() == (millimetres[1::3, 1::3] / 1000).astype(np.float32).tolist()
    assert load_depth(encode_depth_mm(millimetres), (9, 6), "d")[4, 4] == 0


def test_training_evaluation_report_and_prediction(tiny, tmp_path, capsys):
    spec = tiny_ioar_spec(steps=2)
    family = family_named("ioar")
    assert train(spec, family, tiny["train"], RunOptions(out_dir=tmp_path / "model", device="cpu", threads=1)) == 0
    payload = load(tmp_path / "model" / "model.pt", ("recon3d-model",))
    log = pd.read_csv(tmp_path / "model" / "metrics.csv")
    assert {"occ_acc", "tsdf_l1"} <= set(log.columns) and len(log) == 2
    model = family.build_model(spec)
    model.load_state_dict(payload["model"])
    model.eval()
    out = tmp_path / "eval"
    summary = family.evaluate(spec, model, payload, tiny["eval"], out, EvalOptions(qualitative=1), torch.device("cpu"))
    written = json.loads((out / "summary.json").read_text())
    assert written["mean_iou"] == summary["mean_iou"] and written["family"] == "ioar"
    assert 0 <= summary["baseline_mean_iou"] <= 1 and summary["test_scenes"] == 1
    scene = "synth0002_00"
    for name in (f"meshes/{scene}.ply", f"baseline/meshes/{scene}.ply", f"baseline/trimmed/{scene}.ply",
                 f"qualitative/00_{scene}.png"):
        assert (out / name).is_file(), name
    mesh_table = pd.read_csv(out / "mesh_metrics.csv")
    assert list(mesh_table.columns) == ["scene", "method", "protocol", *MESH_METRICS]
    assert len(mesh_table) == 8  # (1 scan + the mean) x 2 methods x 2 protocols
    depth_table = pd.read_csv(out / "depth_metrics.csv")
    assert list(depth_table.columns) == ["scene", "method", *DEPTH_METRICS] and len(depth_table) == 4
    base = mesh_table[(mesh_table.scene == "__mean__") & (mesh_table.method == "baseline") & (mesh_table.protocol == "vortx")]
    assert float(base["fscore"].iloc[0]) == pytest.approx(summary["baseline_mean_iou"])
    files = {o.role: out / o.name for o in family.outputs}
    data = family.read_report(files)

    class Evaluation:  # what the report hands a family section
        name = "ioar"

    evaluation = Evaluation()
    evaluation.data = data
    evaluation.summary = type("S", (), {"extra": written})()
    html = family.report_section(evaluation)
    assert "floor-plane baseline" in html and "TransformerFusion" in html and "0.641" in html
    # prediction from the scan folder
    scan = tiny["rooms"] / "scans_test" / scene
    assert predict.main(["--model", str(tmp_path / "model" / "model.pt"), "--scan", str(scan), "--out",
                         str(tmp_path / "room.ply"), "--device", "cpu"]) == 0
    assert (tmp_path / "room.ply").is_file()
    # --help with the model lists the family's own options
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        predict.main(["--model", str(tmp_path / "model" / "model.pt"), "--help"])
    assert done.value.code == 0 and "--scan SCAN" in capsys.readouterr().out
    # a model file of another version of the network (here: without the weighting buffer this
    # version saves) is refused in one line, naming it
    payload = torch.load(tmp_path / "model" / "model.pt", weights_only=True)
    del payload["model"]["proj_occ_weighting"]
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(Exception, match="old.pt: its weights do not fit this version's ioar network .*proj_occ_weighting"):
        from stages.trained_model import load_model

        load_model(tmp_path / "old.pt", torch.device("cpu"))


def test_the_floor_baseline_keeps_the_floor_only():
    floor = trimesh.Trimesh([[0, 0, 0], [2, 0, 0], [2, 2, 0], [0, 2, 0]], [[0, 1, 2], [0, 2, 3]], process=False)
    table = trimesh.Trimesh([[0, 0, 0.7], [1, 0, 0.7], [1, 1, 0.7]], [[0, 1, 2]], process=False)
    wall = trimesh.Trimesh([[0, 0, 0], [0, 2, 0], [0, 2, 2]], [[0, 1, 2]], process=False)
    below = trimesh.Trimesh([[0, 0, -0.3], [0.1, 0, -0.3], [0.1, 0.1, -0.3]], [[0, 1, 2]], process=False)  # a small step
    scene = trimesh.util.concatenate([floor, table, wall, below])
    kept = floor_mesh(scene)
    assert len(kept.faces) == 2 and np.allclose(kept.vertices[:, 2], 0.0) and kept.area == pytest.approx(4.0)


def test_the_rules_name_the_scannet_tables():
    family = family_named("ioar")
    spec = load_model_spec(REPO / "config" / "models" / "ioar.yaml", "small")
    config = {"scannet": {"scenes": {"train": 9, "val": 0, "test": 3}, "shard_size": 8}}
    layout = DataLayout(results="results", config=config, split_shards=None)
    train_files = family.input_files(spec, "train", layout)
    assert train_files == {
        "frames": ["results/scannet/frames/train/shard-00000.parquet", "results/scannet/frames/train/shard-00001.parquet"],
        "tsdf": ["results/scannet/tsdf/volumes/train/shard-00000.parquet",
                 "results/scannet/tsdf/volumes/train/shard-00001.parquet"]}
    eval_files = family.input_files(spec, "eval", layout)
    assert eval_files["gt_meshes"] == ["results/scannet/tsdf/meshes/test/shard-00000"]
    assert eval_files["scans"] == ["results/scannet/scans.parquet"]
    paper = load_model_spec(REPO / "config" / "models" / "ioar.yaml", "paper")
    assert paper.network.voxel_sizes == (0.16, 0.08, 0.04) and paper.train_options.crop == (96, 96, 48)
    # the original's phases: 350 epochs x 300 steps of batch 4, then 150 x 600 of batch 2 at 1e-4
    assert paper.train.finetune_start == 105_000 and paper.train.steps == 195_000
    assert (paper.train.batch_size_at(104_999), paper.train.batch_size_at(105_000)) == (4, 2)


def test_train_help_lists_the_familys_inputs_once_the_model_is_named(capsys):
    from stages import train as train_command

    with pytest.raises(SystemExit) as done:
        train_command.main(["--model-config", str(REPO / "config" / "models" / "ioar.yaml"), "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "--frames PATH" in text and "--tsdf PATH" in text


def test_model_file_mistakes_name_the_file_and_key(tmp_path):
    from stages.model_spec import ModelConfigError

    text = (REPO / "config" / "models" / "ioar.yaml").read_text()
    cases = {
        "warmup_steps: 20, finetune_shar: 0.5,": "unknown key scale.small.train.finetune_shar .*finetune_share",
        "warmup_steps: 20, finetune_share: 1,": "finetune_share must be in",
        "warmup_steps: 20, finetune_lr: -1,": "finetune_lr must be >= 0 .*got -1",
        "warmup_steps: 20, freeze_trunk: true,": "freeze_trunk: a frozen trunk needs backbone_weights",
    }
    for replacement, message in cases.items():
        path = tmp_path / "ioar.yaml"
        path.write_text(text.replace("warmup_steps: 20,", replacement))
        with pytest.raises(ModelConfigError, match=f"ioar.yaml: .*{message}"):
            load_model_spec(path, "small")


def test_ddp_training_with_a_branch_the_loss_does_not_reach(tiny, tmp_path):
    # the paper scale's fine occupancy branch gets no loss (as the original): DDP over two gloo
    # processes must still train (find_unused_parameters), through the fine-tuning phase
    config = yaml.safe_load((REPO / "config" / "models" / "ioar.yaml").read_text())
    small = config["scale"]["small"]
    small["network"].update(image_size=[64, 48], feature_channels=[16, 8, 8], unet_base=[4, 4, 4],
                            fine_occupancy=True)
    small["train"].update(crop=[16, 16, 12], views=3, steps=4, batch_size=1, warmup_steps=0, checkpoint_every=4,
                          log_every=1, finetune_share=0.25, finetune_lr=1e-4)
    (tmp_path / "ioar.yaml").write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m",
               "stages.train", "--model-config", str(tmp_path / "ioar.yaml"), "--scale", "small",
               "--frames", *tiny["train"]["frames"], "--tsdf", *tiny["train"]["tsdf"], "--out-dir", str(tmp_path / "out"),
               "--device", "cpu", "--threads", "2"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    log = pd.read_csv(tmp_path / "out" / "metrics.csv")
    # 2 training rooms over 2 processes: one crop per process and step; phase 2 from step 3
    assert log["step"].tolist() == [1, 2, 3, 4] and log["examples"].tolist() == [2, 4, 6, 8]
    payload = load(tmp_path / "out" / "model.pt", ("recon3d-model",))
    assert bool(payload["model"]["proj_occ_weighting"])
