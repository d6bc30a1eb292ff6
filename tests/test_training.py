"""Training machinery on tiny box scenes: DDP over gloo, checkpoints, resume after SIGTERM,
evaluation files, prediction to a mesh."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from model_fixtures import write_box_scenes, write_tiny_model
from stages.training import checkpoints

ROOT = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="module")
def boxes(tmp_path_factory):
    root = tmp_path_factory.mktemp("boxes")
    train = write_box_scenes(root, "train", 32, resolution=16, seed=0)
    test = write_box_scenes(root, "test", 6, resolution=16, seed=1)
    return root, train, test


def _train_cmd(model_cfg, train, out_dir, *extra, launcher=(sys.executable, "-m")):
    scenes, renders, voxels = train
    return [*launcher, "stages.train", "--model-config", model_cfg, "--scenes", scenes, "--renders", renders,
            "--voxels", voxels, "--out-dir", str(out_dir), "--device", "cpu", "--threads", "1", *extra]


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_ddp_gloo_training_runs_and_loss_decreases(boxes, tmp_path):
    _, train, _ = boxes
    cfg = write_tiny_model(tmp_path / "tiny.yaml", steps=60, every=30)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m"]
    result = subprocess.run(_train_cmd(cfg, train, tmp_path / "out", launcher=torchrun), env=_env(),
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _rows(tmp_path / "out" / "metrics.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, 61))
    # two processes of 4 examples per step
    assert int(rows[-1]["examples"]) == 60 * 8
    first = np.mean([float(r["loss"]) for r in rows[:5]])
    last = np.mean([float(r["loss"]) for r in rows[-5:]])
    assert last < first - 0.1, (first, last)
    model = checkpoints.load(tmp_path / "out" / "model.pt", ("recon3d-model",))
    assert model["step"] == 60 and model["spec"]["name"] == "tiny"
    # the payload holds only plain data: weights_only loading is what checkpoints.load does
    torch.load(tmp_path / "out" / "model.pt", weights_only=True)


def test_sigterm_writes_checkpoint_and_rerun_resumes_identically(boxes, tmp_path):
    _, train, _ = boxes
    cfg = write_tiny_model(tmp_path / "tiny.yaml", steps=60, every=1000)
    reference = subprocess.run(_train_cmd(cfg, train, tmp_path / "ref"), env=_env(), capture_output=True,
                               text=True, timeout=600, cwd=ROOT)
    assert reference.returncode == 0, reference.stderr[-3000:]

    out = tmp_path / "interrupted"
    proc = subprocess.Popen(_train_cmd(cfg, train, out, "--seed", "0"), env=_env(), stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    # wait until training is under way (the progress bar reports steps), then preempt it
    deadline = time.time() + 300
    seen = ""
    while time.time() < deadline:
        line = proc.stderr.readline()
        seen += line
        if "train tiny:" in line and "/60" in line:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=300)[1]
    assert proc.returncode == 75, seen + rest
    saved = checkpoints.latest(out / "checkpoints")
    assert saved is not None and "stopped by signal" in rest
    stopped_at = checkpoints.load(saved, ("recon3d-checkpoint",))["step"]
    assert 0 < stopped_at < 60

    resumed = subprocess.run(_train_cmd(cfg, train, out), env=_env(), capture_output=True, text=True,
                             timeout=600, cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {saved} at step {stopped_at}" in resumed.stderr
    ref_rows, rows = _rows(tmp_path / "ref" / "metrics.csv"), _rows(out / "metrics.csv")
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows]
    # same batches, same learning rates, same optimizer state: the same losses
    np.testing.assert_allclose([float(r["loss"]) for r in rows], [float(r["loss"]) for r in ref_rows], rtol=1e-4)
    a = checkpoints.load(out / "model.pt", ("recon3d-model",))["model"]
    b = checkpoints.load(tmp_path / "ref" / "model.pt", ("recon3d-model",))["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def trained(boxes, tmp_path_factory):
    _, train, _ = boxes
    tmp = tmp_path_factory.mktemp("trained")
    cfg = write_tiny_model(tmp / "tiny.yaml", steps=30, every=30)
    result = subprocess.run(_train_cmd(cfg, train, tmp / "out"), env=_env(), capture_output=True, text=True,
                            timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp / "out" / "model.pt"


def test_eval_writes_corenet_layout_and_baseline(boxes, trained, tmp_path):
    _, train, test = boxes
    out = tmp_path / "eval"
    result = subprocess.run(
        [sys.executable, "-m", "stages.eval", "--model", str(trained), "--scenes", test[0], "--renders", test[1],
         "--voxels", test[2], "--train-scenes", train[0], "--train-voxels", train[2], "--out-dir", str(out),
         "--qualitative", "2", "--device", "cpu"],
        env=_env(), capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = pd.read_csv(out / "voxel_metrics.csv", index_col=0)
    assert list(metrics.index) == ["iou", "precision", "recall"]
    assert metrics.columns[0] == "__void__" and metrics.columns[-1] == "__global__"
    assert list(metrics.columns[1:-1]) == sorted(metrics.columns[1:-1])
    # box scenes are labelled chair (even) and table (odd): only those classes have numbers
    present = [c for c in metrics.columns[1:-1] if metrics[c].notna().any()]
    assert set(present) <= {"chair", "table"}
    summary = json.loads((out / "summary.json").read_text())
    scenes = pd.read_parquet(out / "scenes.parquet")
    assert len(scenes) == summary["test_scenes"] == 6
    # the global IoU of the confusion matrix equals the pooled per-scene counts' IoU
    assert summary["global_iou"] == pytest.approx(metrics.loc["iou", "__global__"])
    assert 0 <= summary["baseline_mean_iou"] <= 1 and summary["paper_mean_iou"] == 0.5
    pngs = sorted((out / "qualitative").glob("*.png"))
    assert [p.name for p in pngs] == ["00_single-test-0000000.png", "01_single-test-0000001.png"]
    from PIL import Image

    with Image.open(pngs[0]) as img:
        assert img.size[1] == 128 and img.size[0] > 6 * 128


def test_predict_writes_a_mesh_trimesh_loads(boxes, trained, tmp_path):
    import trimesh
    from model_fixtures import box_grid, silhouette
    from PIL import Image

    image = tmp_path / "box.png"
    Image.fromarray(silhouette(box_grid(16, (0.2, 0.05, 0.2), (0.7, 0.6, 0.7)), 64)).save(image)
    for suffix in (".obj", ".ply", ".glb"):
        out = tmp_path / f"mesh{suffix}"
        result = subprocess.run([sys.executable, "-m", "stages.predict", "--model", str(trained), "--image", str(image),
                                 "--out", str(out), "--level", "0.3"], env=_env(), capture_output=True, text=True,
                                timeout=300, cwd=ROOT)
        assert result.returncode == 0, result.stderr
        mesh = trimesh.load(out, force="mesh")
        assert len(mesh.faces) > 0
        assert mesh.bounds[0].min() >= -1e-6 and mesh.bounds[1].max() <= 1 + 1e-6


def test_predict_rejects_bad_inputs_with_one_line(trained, tmp_path):
    bad_image = tmp_path / "bad.png"
    bad_image.write_bytes(b"not a png")
    not_a_model = tmp_path / "model.pt"
    torch.save({"weights": torch.zeros(2)}, not_a_model)
    cases = [
        (["--model", str(trained), "--image", str(bad_image)], "not a readable image"),
        (["--model", str(not_a_model), "--image", str(bad_image)], "expected a checkpoint of kind"),
        (["--model", str(trained), "--image", str(tmp_path / "missing.png")], "no such image"),
    ]
    for args, message in cases:
        result = subprocess.run([sys.executable, "-m", "stages.predict", *args, "--out", str(tmp_path / "m.obj")],
                                env=_env(), capture_output=True, text=True, timeout=300, cwd=ROOT)
        assert result.returncode == 1
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_changed_configuration_starts_afresh_and_keeps_old_checkpoints(boxes, tmp_path):
    _, train, _ = boxes
    cfg = write_tiny_model(tmp_path / "tiny.yaml", steps=4, every=2)
    out = tmp_path / "out"
    first = subprocess.run(_train_cmd(cfg, train, out), env=_env(), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert first.returncode == 0, first.stderr[-2000:]
    # more steps only: the run continues from step 4
    more = subprocess.run(_train_cmd(cfg, train, out, "--steps", "6"), env=_env(), capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert "at step 4" in more.stderr and more.returncode == 0
    # a different learning rate is a different run: old checkpoints move aside, training restarts
    Path(cfg).write_text(Path(cfg).read_text().replace("lr: 1.0e-2", "lr: 5.0e-3"))
    changed = subprocess.run(_train_cmd(cfg, train, out), env=_env(), capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert changed.returncode == 0, changed.stderr[-2000:]
    assert "different configuration" in changed.stderr
    assert checkpoints.latest(out / "checkpoints.stale") is not None
    assert [int(r["step"]) for r in _rows(out / "metrics.csv")] == [1, 2, 3, 4]
