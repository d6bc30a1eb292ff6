"""The UMR family: metrics by hand, the examples' crop, the semantic template buffers, eval's
file layout and prediction of a textured mesh (one tiny model trained once per session)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from stages.families import family_named
from stages.families.umr import metrics as M
from stages.families.umr.spec import STAGE2_WEIGHTS
from stages.model_config import load_model_spec
from stages.models.umr_losses import STAGE2_WEIGHTS as LOSS_STAGE2_WEIGHTS

REPO = Path(__file__).resolve().parents[1]


def test_stage2_weights_are_the_losses_module_s():
    assert STAGE2_WEIGHTS == LOSS_STAGE2_WEIGHTS


def test_mask_iou_by_hand():
    a = np.zeros((8, 8))
    a[2:6, 2:6] = 1
    b = np.zeros((8, 8))
    b[2:6, 4:8] = 1  # shifted by 2 px: 8 shared of 24 -> 1/3
    assert M.mask_iou(a, b) == pytest.approx((1 / 3, 1 / 3))
    half = np.full((8, 8), 0.5)
    soft, hard = M.mask_iou(half, a)  # sum pg = 8, sum(p + g - pg) = 32 + 16 - 8 = 40
    assert soft == pytest.approx(0.2) and hard == 0.0


def test_pck_identical_and_shifted_keypoints():
    target = np.array([[0.0, 0.0, 1.0], [0.5, 0.5, 1.0], [0.2, 0.1, 0.0]])
    vis = np.array([1.0, 1.0, 1.0])
    # crop side 220 px, tight bbox longer side 200 px: a crop distance d is d * 110 / 200 of it
    same = M.transfer_errors(target[:, :2], target, vis, 220.0, 200.0)
    assert same[0] == 0 and same[1] == 0 and np.isnan(same[2])
    assert M.pck(same[None], 0.1) == 1.0
    shift = 0.12 * 200 / 110  # 0.12 of the bbox side
    moved = M.transfer_errors(target[:, :2] + [shift, 0], target, vis, 220.0, 200.0)
    assert moved[0] == pytest.approx(0.12)
    assert M.pck(moved[None], 0.1) == 0.0 and M.pck(moved[None], 0.15) == 1.0


def test_pck_is_a_mean_over_keypoints_not_pooled():
    errors = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, np.nan], [1.0, np.nan]])  # A 3/4, B 1/2
    assert M.pck(errors, 0.1) == pytest.approx(0.625)
    per, counts = M.pck_by_keypoint(errors, 0.1)
    assert per.tolist() == [0.75, 0.5] and counts.tolist() == [4, 2]


def test_transfer_pairs_are_seeded_and_distinct():
    a, b = M.transfer_pairs(50, 5, 7), M.transfer_pairs(50, 5, 7)
    assert (a == b).all() and (a[:, 0] != a[:, 1]).all() and a.max() < 5


def test_flow_transfer_and_snapping_by_hand():
    flow = np.zeros((3, 4, 2))
    flow[1] = [0.5, 0.5]
    flow[2] = [-0.5, 0.0]
    faces = M.flow_faces(flow, np.array([[0.45, 0.5, 1], [0, 0, 0]]), sigma=0.05)
    assert faces.tolist() == [1, -1]
    answers = M.flow_answers(np.array([[0, 0], [0.1, 0.2], [0, 0]]), faces)
    assert answers[0].tolist() == [0.1, 0.2] and np.isnan(answers[1]).all()
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True  # pixel centre (-0.75, -0.75)
    assert M.snap_to_mask(np.array([[0.9, 0.9]]), mask).tolist() == [[-0.75, -0.75]]
    assert M.snap_to_mask(np.array([[-0.8, -0.7]]), mask).tolist() == [[-0.8, -0.7]]


def test_camera_transfer_self_transfer_is_exact():
    projected = np.array([[0.0, 0.0], [0.5, 0.5], [-0.5, 0.2]])
    kp = np.array([[0.5, 0.5, 1.0], [-0.5, 0.2, 1.0]])
    ids = M.nearest_vertices(projected, np.array([True, True, True]), kp)
    assert (projected[ids] == kp[:, :2]).all()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Synthetic birds -> tables -> a 4-step model (2 + 2 steps) -> its evaluation."""
    from stages import import_cub, synthesize_birds
    from stages.families import EvalOptions
    from stages.training.loop import RunOptions, train
    from stages.trained_model import load_model

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("umr")
    synthesize_birds.main(["--out", str(root / "birds"), "--train", "6", "--val", "0", "--test", "4",
                           "--size", "64", "--seed", "3", "--no-progress"])
    import_cub.main(["--cub-root", str(root / "birds/CUB_200_2011"), "--annotations", str(root / "birds/cachedir"),
                     "--parts", str(root / "birds/scops"), "--out", str(root / "tables"), "--no-progress"])
    spec = tiny_spec()
    family = family_named("umr")
    inputs = {"train": [str(root / "tables/train.parquet")]}
    assert train(spec, family, inputs, RunOptions(out_dir=root / "model", seed=0, device="cpu", threads=1)) == 0
    _, _, model, payload = load_model(root / "model" / "model.pt", torch.device("cpu"))
    eval_spec = replace(spec, eval=replace(spec.eval, pairs={"small": 5}, baseline_images=4))
    summary = family.evaluate(eval_spec, model, payload, {"test": [str(root / "tables/test.parquet")], "train": inputs["train"]},
                              root / "eval", EvalOptions(qualitative=2, batch_size=4), torch.device("cpu"))
    return root, spec, model, summary


def tiny_spec():
    spec = load_model_spec(REPO / "config" / "models" / "umr.yaml", "small")
    net = replace(spec.network, conv_channels=16, feature=16, latent=8, uv_channels=8, hypotheses=2)
    net = replace(net, resnet=replace(net.resnet, widths=(4, 8, 8, 8), stem_width=4))
    opts = replace(spec.train_options, stage1_steps=2, render_size=16, part_points=4)
    return replace(spec, network=net, train_options=opts,
                   train=replace(spec.train, steps=4, batch_size=2, checkpoint_every=2, log_every=1))


def test_semantic_template_is_in_the_checkpoint(tiny):
    root, spec, model, _ = tiny
    assert int(model.semantic_ready) == 1
    assert set(model.vertex_parts.unique().tolist()) <= {0, 1, 2, 3, 4} and (model.vertex_parts > 0).any()
    # the template moved to the mean shape at the boundary: no longer the unit sphere
    assert not torch.allclose(model.mean_v.norm(dim=1), torch.ones(len(model.mean_v)))
    # the log says which stage each step ran in
    log = pd.read_csv(root / "model" / "metrics.csv")
    assert log["stage"].tolist() == [1.0, 1.0, 2.0, 2.0] and {"mask_iou", "texture_l1", "part_loss"} <= set(log)


def test_resume_after_the_stage_boundary_is_exact(tiny, tmp_path):
    from stages.training.checkpoints import load
    from stages.training.loop import RunOptions, train

    root, spec, _, _ = tiny
    family = family_named("umr")
    inputs = {"train": [str(root / "tables/train.parquet")]}
    out = tmp_path / "resumed"
    (out / "checkpoints").mkdir(parents=True)
    # the checkpoint written at step 2 (the boundary, before the template) resumes to step 4
    import shutil

    first = RunOptions(out_dir=tmp_path / "half", seed=0, device="cpu", threads=1)
    assert train(replace(spec, train=replace(spec.train, steps=2)), family, inputs, first) == 0
    shutil.copy(tmp_path / "half" / "checkpoints" / "step-000000002.pt", out / "checkpoints")
    assert train(spec, family, inputs, RunOptions(out_dir=out, seed=0, device="cpu", threads=1)) == 0
    a = load(root / "model" / "model.pt", ("recon3d-model",))["model"]
    b = load(out / "model.pt", ("recon3d-model",))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_evaluation_file_layout(tiny):
    root, _, _, summary = tiny
    out = root / "eval"
    metrics = pd.read_csv(out / "umr_metrics.csv")
    assert list(metrics.columns) == ["metric", "mode", "alpha", "value", "count"]
    pck = metrics[metrics["metric"] == "pck"]
    assert sorted(set(pck["mode"])) == ["cam", "copy", "flow", "mean_template"]
    assert sorted(set(pck["alpha"])) == [0.1, 0.15]
    assert set(metrics[metrics["metric"] == "mask_iou_soft"]["mode"]) == {"model", "mean_template", "copy"}
    keypoints = pd.read_csv(out / "pck_by_keypoint.csv")
    assert len(keypoints) == 15 * 4 * 2
    images = pd.read_parquet(out / "images.parquet")
    assert len(images) == 4 and images["mask_iou_soft"].between(0, 1).all()
    assert summary["mean_iou"] == pytest.approx(images["mask_iou_soft"].mean())
    assert summary["baseline_mean_iou"] == max(summary["baseline_mask_iou"].values())
    assert len(list((out / "qualitative").glob("*.png"))) == 2
    family = family_named("umr")
    data = family.read_report({"metrics": out / "umr_metrics.csv", "keypoints": out / "pck_by_keypoint.csv"})
    assert data.alphas == [0.1, 0.15]


@pytest.mark.parametrize("suffix", [".obj", ".glb"])
def test_predict_writes_a_textured_mesh(tiny, tmp_path, suffix):
    import trimesh
    from PIL import Image

    from stages import predict

    root = tiny[0]
    photo = tmp_path / "photo.png"  # not bird.png: bird.obj writes its texture there
    Image.fromarray((np.random.default_rng(0).random((90, 150, 3)) * 255).astype(np.uint8)).save(photo)
    out = tmp_path / f"bird{suffix}"
    assert predict.main(["--model", str(root / "model" / "model.pt"), "--image", str(photo), "--out", str(out),
                         "--bbox", "10", "5", "120", "80", "--device", "cpu"]) == 0
    mesh = trimesh.load(out, force="mesh")
    assert len(mesh.faces) == 320
    image = mesh.visual.material.baseColorTexture if suffix == ".glb" else mesh.visual.material.image
    assert image is not None and image.size == (128, 64)  # UV flow 64 x 128 (SMALL)
    assert mesh.visual.uv.shape == (len(mesh.vertices), 2)


def test_stage2_without_part_maps_is_a_clear_error(tiny, tmp_path):
    # A table imported without --parts has no SCOPS maps: stage 2 refuses, naming the file;
    # stage 1 alone (steps = stage1_steps) trains.
    from stages import import_cub
    from stages.errors import StageError

    root, spec, _, _ = tiny
    import_cub.main(["--cub-root", str(root / "birds/CUB_200_2011"), "--annotations", str(root / "birds/cachedir"),
                     "--out", str(tmp_path / "tables"), "--no-progress"])
    inputs = {"train": [str(tmp_path / "tables/train.parquet")]}
    family = family_named("umr")
    with pytest.raises(StageError, match=r"train\.parquet: no SCOPS part maps"):
        family.training_task(spec, inputs, 0, None)
    stage1 = replace(spec, train=replace(spec.train, steps=spec.train_options.stage1_steps))
    assert family.training_task(stage1, inputs, 0, None) is not None
