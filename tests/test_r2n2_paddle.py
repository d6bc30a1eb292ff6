"""The PaddlePaddle port's 3D-R2N2 variant (config/models/r2n2_paddle.yaml): BCE on one sigmoid
output, Pix2Vox's preprocessing, fixed view counts, the port's per-class table, and the Pix3D
evaluation of the family, with values computed by hand."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from stages.families.r2n2 import R2N2
from stages.families.r2n2.data import (
    Preprocessing,
    ViewBatchSampler,
    centre_resize,
    color_jitter,
    lighting_offset,
    pix2vox_train_views,
    preprocess_photo,
    preprocess_view,
    preprocess_views,
)
from stages.families.r2n2.evaluate import evaluate_pix3d
from stages.families.r2n2.metrics import IoURecord, per_class_table
from stages.families.r2n2.report import R2N2Report, ViewMetrics, pix3d_table, read_report, variants_table
from stages.model_config import load_model_spec, spec_from_dict, read_model_file
from stages.model_spec import ModelConfigError
from stages.models.r2n2 import occupancy_probability, r2n2_loss
from stages.pix3d_tables import PIX3D
from stages.tables import write_shard
from stages.voxel_codec import encode_planes

PADDLE = "config/models/r2n2_paddle.yaml"


def test_bce_on_one_logit_and_its_sigmoid():
    logits = torch.tensor([0.0, math.log(3.0)]).view(1, 1, 1, 1, 2)
    voxels = torch.tensor([1, 0]).view(1, 1, 1, 2)
    # -ln sigmoid(0) = ln 2; -ln(1 - sigmoid(ln 3)) = -ln(1/4) = ln 4; mean = 1.5 ln 2
    assert r2n2_loss(logits, voxels).item() == pytest.approx(1.5 * math.log(2.0), abs=1e-6)
    assert occupancy_probability(logits).flatten().tolist() == pytest.approx([0.5, 0.75])
    two = torch.zeros(1, 2, 1, 1, 2)
    assert r2n2_loss(two, voxels).item() == pytest.approx(math.log(2.0), abs=1e-6)  # softmax unchanged


def test_color_jitter_blends_as_pix2vox():
    image = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])  # [1, 2, 3]: red, blue
    # brightness 0.5: halves
    assert color_jitter(image, (0.5, 1.0, 1.0), [0]).tolist() == [[[0.5, 0, 0], [0, 0, 0.5]]]
    # saturation 0: every pixel becomes its grey (0.299 for red, 0.114 for blue)
    out = color_jitter(image, (1.0, 1.0, 0.0), [2])
    assert out[0, 0] == pytest.approx([0.299] * 3) and out[0, 1] == pytest.approx([0.114] * 3)
    # contrast 0.5: halfway to the image's mean grey (0.299 + 0.114) / 2 = 0.2065
    out = color_jitter(image, (1.0, 0.5, 1.0), [1])
    assert out[0, 0] == pytest.approx([0.60325, 0.10325, 0.10325])


def test_lighting_offset_is_the_pca_combination():
    # alpha = (1, 0, 0): the first eigenvector (column 0 of the rows) times 0.2175
    assert lighting_offset([1.0, 0.0, 0.0]) == pytest.approx([-0.12343125, -0.126324, -0.126933])
    assert lighting_offset([0.0, 0.0, 2.0]) == pytest.approx([0.0036081, -0.007326, 0.0037827])


def test_centre_crop_and_resize():
    rgb = np.arange(4 * 4 * 3, dtype=np.float32).reshape(4, 4, 3)
    assert np.array_equal(centre_resize(rgb, 2, 2), rgb[1:3, 1:3])
    constant = np.full((137, 137, 3), 200.0, np.float32)
    assert np.allclose(centre_resize(constant, 96, 127), 200.0)
    assert centre_resize(constant, 96, 127).shape == (127, 127, 3)


def _opaque(colour, size=137):
    view = np.zeros((size, size, 4), np.uint8)
    view[..., :3] = colour
    view[..., 3] = 255
    return view


def test_pix2vox_training_views_normalise_and_share_the_background():
    config = Preprocessing(crop=96, style="pix2vox", size=127, mean=0.5, std=0.5)
    views = pix2vox_train_views([_opaque((255, 0, 51))] * 2, np.random.default_rng(0), config)
    assert views.shape == (2, 3, 127, 127) and views.dtype == np.float32
    # no jitter, lighting or permutation: (x / 255 - 0.5) / 0.5 per channel
    assert np.allclose(views[:, 0], 1.0) and np.allclose(views[:, 1], -1.0) and np.allclose(views[:, 2], -0.6)
    empty = np.zeros((137, 137, 4), np.uint8)
    views = pix2vox_train_views([empty] * 3, np.random.default_rng(1), config)
    colour = views[0, :, 0, 0]
    assert np.allclose(views, colour[None, :, None, None])  # one background for the example's views
    assert np.all((colour >= (225 / 255 - 0.5) / 0.5 - 1e-6) & (colour <= 1.0 + 1e-6))


def test_pix2vox_jitter_and_permutation_act_on_the_example():
    config = Preprocessing(crop=96, style="pix2vox", size=127, color_jitter=(0.4, 0.4, 0.4), lighting_std=0.1,
                           permute_rgb=True, mean=0.5, std=0.5)
    first = pix2vox_train_views([_opaque((200, 100, 50))] * 2, np.random.default_rng(3), config)
    again = pix2vox_train_views([_opaque((200, 100, 50))] * 2, np.random.default_rng(3), config)
    assert np.array_equal(first, again)  # a function of the generator only
    assert np.allclose(first[0], first[1])  # constant views: flips do not show, the draws are shared
    assert not np.allclose(first[0, :, 0, 0], [(200 / 255 - 0.5) / 0.5, (100 / 255 - 0.5) / 0.5, (50 / 255 - 0.5) / 0.5])


def test_pix2vox_test_views_and_photos():
    config = Preprocessing(crop=96, style="pix2vox", size=127, mean=0.5, std=0.5)
    empty = np.zeros((137, 137, 4), np.uint8)
    views = preprocess_views([empty], False, np.random.default_rng(0), config)
    assert np.allclose(views, (240 / 255 - 0.5) / 0.5)
    photo = np.full((127, 127, 3), 51, np.uint8)
    assert np.allclose(preprocess_photo(photo, config, 127), (0.2 - 0.5) / 0.5)
    assert np.allclose(preprocess_photo(photo, Preprocessing(), 127), 0.2)


def test_the_r2n2_style_is_unchanged():
    spec = load_model_spec("config/models/r2n2.yaml", "small")
    assert Preprocessing.of(spec.train_options, 127) == Preprocessing()
    views = [np.random.default_rng(i).integers(0, 256, (137, 137, 4), dtype=np.uint8) for i in range(3)]
    ours = preprocess_views(views, True, np.random.default_rng(5), Preprocessing())
    rng = np.random.default_rng(5)  # one generator through the views, as before the variant
    reference = np.stack([preprocess_view(v, True, rng, Preprocessing()) for v in views])
    assert np.array_equal(ours, reference)


def test_paddle_spec_and_checks():
    small, paper = load_model_spec(PADDLE, "small"), load_model_spec(PADDLE, "paper")
    assert small.network.num_classes == paper.network.num_classes == 1
    assert paper.train.batch_size == 30 and paper.train.lr_steps == {45945: 5e-5} and paper.train.steps == 61260
    assert paper.train_options.split == "pix2vox" and small.train_options.split == "any"
    assert paper.eval.threshold == 0.3 and paper.paper.by_class["lamp"] == 0.4601 and paper.paper.by_class["car"] == 0.8607
    raw = read_model_file(PADDLE)
    raw["scale"]["small"]["network"]["num_classes"] = 2
    with pytest.raises(ModelConfigError, match="num_classes 1"):
        spec_from_dict(raw, "small", PADDLE)
    config = {"r2n2": {"split": "original"}}
    layout = SimpleNamespace(results="results", config=config)
    assert R2N2.input_files(small, "train", layout) == {"views": ["results/r2n2/views.parquet"]}
    with pytest.raises(ValueError, match="pix2vox split"):
        R2N2.input_files(paper, "train", layout)


def test_fixed_view_count_in_training():
    sampler = ViewBatchSampler([[0, 1], [2, 3], [4, 5]], total_views=24, max_views=5, train=True, num_views=5, seed=2)
    batches = list(sampler)
    assert all(len(item[1]) == 5 and len(set(item[1])) == 5 for batch in batches for item in batch)


def test_per_class_table_is_the_ports_layout():
    records = [IoURecord(5, c, m, t, v) for c, m, t, v in [
        ("car", "a", 0.3, 0.8), ("car", "a", 0.5, 0.6), ("car", "b", 0.3, 0.6), ("car", "b", 0.5, 0.4),
        ("lamp", "c", 0.3, 0.2), ("lamp", "c", 0.5, 0.1), ("lamp", "d", 0.3, 1.0), ("lamp", "d", 0.5, 0.5),
    ]] + [IoURecord(1, "car", "a", 0.3, 0.0)]
    table = per_class_table(records, 5, {"car": 0.836})
    assert list(table.columns) == ["class", "samples", "baseline", "t=0.30", "t=0.50"]
    assert table["class"].tolist() == ["car", "lamp", "overall"]
    assert table["samples"].tolist() == [2, 2, 4]
    assert table["baseline"].iloc[0] == 0.836 and table["baseline"].iloc[1:].isna().all()
    assert table["t=0.30"].tolist() == pytest.approx([0.7, 0.6, 0.65])
    assert table["t=0.50"].tolist() == pytest.approx([0.5, 0.3, 0.4])


class HalfFull(torch.nn.Module):
    """Logit +10 where z < 16, -10 elsewhere, whatever the input [B, 1, 3, H, W]."""

    def forward(self, views):
        assert views.shape[1:] == (1, 3, 127, 127)
        logits = torch.full((len(views), 1, 32, 32, 32), -10.0)
        logits[:, :, :16] = 10.0
        return logits


def _pix3d_fixture(path):
    from stages.import_pix3d import encode_png

    grids = []
    lower = np.zeros((32, 32, 32), bool)
    lower[:16] = True  # exactly the prediction: IoU 1
    quarter = np.zeros((32, 32, 32), bool)
    quarter[:8] = True  # inside the prediction: IoU 8/16 = 0.5
    upper = np.zeros((32, 32, 32), bool)
    upper[16:] = True  # disjoint: IoU 0
    grids = [("chair/0001", "chair", "03001627", lower), ("chair/0002", "chair", "03001627", quarter),
             ("table/0001", "table", "04379243", upper)]
    rows = []
    for image_id, category, synset, grid in grids:
        rows.append({
            "image_id": image_id, "category": category, "synset": synset, "class_name": category,
            "img": f"img/{image_id}.png", "model": f"model/{category}/x/model.obj", "slightly_occluded": False,
            "width": 200, "height": 100, "bbox_x1": 10.0, "bbox_y1": 10.0, "bbox_x2": 90.0, "bbox_y2": 90.0,
            "size": 127, "background": 240, "image": encode_png(np.full((127, 127, 3), 240, np.uint8)),
            "frame": "canonical", "resolution": 32, "encoding": "packbits-zlib-v1",
            "voxels": encode_planes(grid[None].astype(np.uint8)), "occupied": int(grid.sum()),
        })
    write_shard(pd.DataFrame(rows), path, PIX3D)


def test_pix3d_evaluation_on_a_fixture_table(tmp_path):
    table = tmp_path / "pix3d.parquet"
    _pix3d_fixture(table)
    spec = load_model_spec(PADDLE, "small")
    result = evaluate_pix3d(spec, HalfFull(), table, tmp_path / "eval", 2, torch.device("cpu"))
    written = pd.read_csv(tmp_path / "eval" / "pix3d_iou.csv")
    assert list(written.columns) == ["views", "threshold", "class", "iou", "samples"]
    at = written[written["threshold"] == 0.3].set_index("class")
    assert at.loc["chair", "iou"] == pytest.approx(0.75) and at.loc["chair", "samples"] == 2
    assert at.loc["table", "iou"] == pytest.approx(0.0) and at.loc["table", "samples"] == 1
    assert at.loc["__mean__", "iou"] == pytest.approx(0.5) and at.loc["__mean__", "samples"] == 3
    assert set(written["views"]) == {1} and len(result) == 4 * 3


def _write_eval(folder, model, threshold, per_class, paper_by_class, by_views):
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({
        "model": model, "family": "r2n2", "mean_iou": 0.5, "threshold": threshold,
        "mean_iou_by_views": {"1": 0.4, "5": 0.5}, "paper_mean_iou_by_views": by_views,
        "paper_by_class": paper_by_class, "paper_baseline_by_class": {"car": 0.836},
        "paper_source": f"source of {model}", "paper_baseline_source": "3D-R2N2 per class",
    }))
    per_class.to_csv(folder / "per_class.csv", index=False)
    pd.DataFrame({"views": [1, 1, 1, 1], "threshold": [threshold] * 2 + [0.5] * 2, "class": ["car", "__mean__"] * 2,
                  "iou": [0.3, 0.3, 0.2, 0.2]}).to_csv(folder / "iou_by_views.csv", index=False)


def test_report_sets_variants_side_by_side_and_shows_pix3d(tmp_path):
    per_class = pd.DataFrame({"class": ["car", "overall"], "samples": [3, 3], "baseline": [0.836, None],
                              "t=0.30": [0.61, 0.61], "t=0.40": [0.62, 0.62]})
    _write_eval(tmp_path / "eval" / "r2n2", "r2n2", 0.4, per_class, {}, {"5": 0.634})
    _write_eval(tmp_path / "eval" / "r2n2_paddle", "r2n2_paddle", 0.3, per_class, {"car": 0.8607}, {"5": 0.6799})
    pd.DataFrame({"views": [1, 1], "threshold": [0.3, 0.3], "class": ["car", "__mean__"], "iou": [0.25, 0.25],
                  "samples": [4, 4]}).to_csv(tmp_path / "eval" / "r2n2_paddle" / "pix3d_iou.csv", index=False)
    files = R2N2.output_paths(tmp_path, "r2n2_paddle")
    data = read_report(files)
    assert isinstance(data, R2N2Report) and isinstance(data.pix3d, ViewMetrics)
    assert [v.model for v in data.variants] == ["r2n2_paddle", "r2n2"]
    paddle, original = data.variants
    assert paddle.threshold == 0.3 and paddle.measured["car"] == 0.61 and paddle.published == {"car": 0.8607, "overall": 0.6799}
    assert original.threshold == 0.4 and original.measured["car"] == 0.62 and original.published == {"overall": 0.634}
    summary = SimpleNamespace(extra={"threshold": 0.3}, baseline_mean_iou=None)
    evaluation = SimpleNamespace(name="r2n2_paddle", data=data, summary=summary)
    html = variants_table(evaluation)
    assert "published for r2n2_paddle" in html and "source of r2n2_paddle" in html and "86.1" in html and "63.4" in html
    html = pix3d_table(evaluation)
    assert "Pix3D IoU" in html and "25.0" in html and "30.0" in html  # Pix3D 0.25 next to ShapeNet 0.30
