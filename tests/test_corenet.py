"""CoReNet family: skip connection geometry, losses, metrics, baseline, sub-voxel evaluation."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from stages.baseline import OccupancyStatistics, optimal_threshold
from stages.camera import corenet_camera_transform, look_at_rh, perspective_rh
from stages.families.corenet.task import predict_probabilities
from stages.models.corenet import CoReNet, CoReNetConfig
from stages.models.losses import semantic_loss, soft_iou_fgbg_loss
from stages.models.ray_traced_skip import corenet_pixels, ray_traced_skip, ray_traced_skip_corenet, sample_points
from stages.models.resnet import ResNetConfig
from stages.voxel_metrics import confusion_matrix, mean_iou, voxel_metrics


def _indexed_features(channels: int, h: int, w: int) -> torch.Tensor:
    """Feature [1, C, h, w] whose value names its place: 1000 c + 100 row + col."""
    c, y, x = torch.meshgrid(torch.arange(channels), torch.arange(h), torch.arange(w), indexing="ij")
    return (1000 * c + 100 * y + x).float()[None]


def _camera() -> torch.Tensor:
    return torch.from_numpy(corenet_camera_transform().astype(np.float32))[None]


def test_cube_centre_samples_the_image_centre():
    # r = 1: the only voxel's centre is the cube centre, on the optical axis -> image centre,
    # pixel (4, 4) of an 8x8 map
    out = ray_traced_skip(_indexed_features(2, 8, 8), _camera(), 1, torch.full((1, 3), 0.5))
    assert out.shape == (1, 2, 1, 1, 1)
    assert out[0, :, 0, 0, 0].tolist() == [404.0, 1404.0]


def test_off_axis_voxel_samples_its_hand_computed_pixel():
    # r = 2, voxel (i, j, k) = (1, 0, 0): centre (0.75, 0.25, 0.25). The camera sits at
    # (0.5, 0.5, -0.8667) looking down +z with a 60 degree field of view, world +y up in the image:
    # depth 0.25 + 0.8667 = 1.1167; x_img = 0.25 / (1.1167 tan 30) = 0.38778, y_img (down) = +0.38778;
    # on a 16x16 map pixel = (1.38778) * 8 = 11.10 -> column 11, row 11.
    out = ray_traced_skip(_indexed_features(1, 16, 16), _camera(), 2, torch.full((1, 3), 0.5))
    assert out[0, 0, 0, 0, 1].item() == 100 * 11 + 11
    # its mirror image (0.25, 0.75, 0.25) lands at column 4, row 4 (16 - 11 - 1)
    assert out[0, 0, 0, 1, 0].item() == 100 * 4 + 4


def test_points_behind_the_camera_get_zero():
    # a camera at z = 1.5 looking further along +z: the whole unit cube is behind it. Without the
    # w > 0 test, the perspective divide would mirror those points into the image.
    camera = perspective_rh(math.radians(60), 1.0, 1e-4, 10.0) @ look_at_rh((0.5, 0.5, 1.5), (0.5, 0.5, 2.5), (0, -1, 0))
    features = _indexed_features(1, 8, 8) + 1
    out = ray_traced_skip(features, torch.from_numpy(camera.astype(np.float32))[None], 4, torch.full((1, 3), 0.5))
    assert torch.count_nonzero(out) == 0


def test_points_outside_the_image_get_zero():
    # a narrow camera (10 degrees) sees only the middle of the cube; corner voxels fall outside
    camera = perspective_rh(math.radians(10), 1.0, 1e-4, 10.0) @ look_at_rh((0.5, 0.5, -0.8667), (0.5, 0.5, 0.5), (0, -1, 0))
    out = ray_traced_skip(_indexed_features(1, 8, 8) + 1, torch.from_numpy(camera.astype(np.float32))[None], 4, torch.full((1, 3), 0.5))
    assert out[0, 0, 0, 0, 0] == 0 and out[0, 0, 3, 3, 3] == 0
    assert torch.count_nonzero(out) > 0


def test_sample_points_are_voxel_centres_in_zyx_order():
    pts = sample_points(4, torch.tensor([[0.5, 0.5, 0.5]]))
    assert pts.shape == (1, 4, 4, 4, 3)
    assert pts[0, 1, 2, 3].tolist() == [3.5 / 4, 2.5 / 4, 1.5 / 4]  # [k, j, i] -> (x, y, z)


def _logits_from_probs(p):
    return torch.log(torch.tensor(p, dtype=torch.float32))


def test_fgbg_loss_matches_hand_computation():
    # two voxels: p(fg) = 0.8 and 0.3, truth 1 and 0: I = 0.8, U = 1 + 0.3 -> loss 1 - 0.8 / 1.3
    logits = _logits_from_probs([[0.2, 0.7], [0.8, 0.3]]).reshape(1, 2, 1, 1, 2)
    labels = torch.tensor([1, 0]).reshape(1, 1, 1, 2)
    assert soft_iou_fgbg_loss(logits, labels).item() == pytest.approx(1 - 0.8 / 1.3, abs=1e-6)


def test_semantic_loss_matches_hand_computation():
    # 3 classes (void + 2), two voxels: p = [.2, .5, .3] (truth 1), [.6, .1, .3] (truth 0).
    # Class-agnostic IoU over channels 1..2, true channel weighted C - 1 = 2:
    #   I = min(.5, 1) * 2 = 1.0; U = 1 * 2 + .3 + .1 + .3 = 2.7 -> IoU loss 1 - 1 / 2.7
    # Cross-entropy weighted (object weight 3, void 1): mean(3 * -ln .5, -ln .6)
    probs = [[0.2, 0.6], [0.5, 0.1], [0.3, 0.3]]  # [class, voxel]
    logits = _logits_from_probs(probs).reshape(1, 3, 1, 1, 2)
    labels = torch.tensor([1, 0]).reshape(1, 1, 1, 2)
    expected = (1 + (1 - 1 / 2.7)) * (1 + (3 * -math.log(0.5) + -math.log(0.6)) / 2)
    got = semantic_loss(logits, labels, torch.tensor([1.0, 3.0, 3.0]))
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_metrics_against_hand_built_confusion_matrix():
    # rows truth, columns prediction; classes: void, a, b, c. c has no true positive.
    matrix = np.array([
        [50, 2, 3, 1],
        [4, 10, 1, 0],
        [0, 2, 6, 0],
        [1, 0, 1, 0],
    ])
    df = voxel_metrics(matrix, ["a", "b", "c"])
    assert list(df.columns) == ["__void__", "a", "b", "c", "__global__"]
    assert list(df.index) == ["iou", "precision", "recall"]
    assert df.loc["iou", "a"] == pytest.approx(10 / (10 + 4 + 5))  # fp = 2 + 2 + 0, fn = 4 + 1
    assert df.loc["precision", "b"] == pytest.approx(6 / (6 + 3 + 1 + 1))
    assert df.loc["recall", "b"] == pytest.approx(6 / 8)
    assert np.isnan(df.loc["iou", "c"]) and np.isnan(df.loc["recall", "c"])
    # global: foreground = any non-void; tp = 10+1+2+6+1 = 20 (+0), fp = 2+3+1 = 6, fn = 4+0+1 = 5
    assert df.loc["iou", "__global__"] == pytest.approx(20 / 31)
    assert df.loc["iou", "__void__"] == pytest.approx(50 / (50 + 5 + 6))
    assert mean_iou(df) == pytest.approx((10 / 19 + 6 / 13) / 2)  # b: fp 5, fn 2; c skipped, void and global excluded


def test_confusion_matrix_counts_pairs():
    truth = np.array([0, 1, 1, 2, 2, 2])
    pred = np.array([0, 1, 2, 2, 2, 0])
    assert confusion_matrix(truth, pred, 3).tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 2]]
    with pytest.raises(ValueError):
        confusion_matrix(np.array([3]), np.array([0]), 3)


def test_optimal_threshold_matches_brute_force():
    rng = np.random.default_rng(3)
    grids = rng.random((20, 4, 4, 4)) < rng.random((1, 4, 4, 4))  # voxel-dependent occupancy
    stats = OccupancyStatistics(4, 2)
    for g in grids:
        stats.add(g.astype(np.uint8))
    threshold, iou = optimal_threshold(stats.mean_occupancy())
    best = 0.0
    for t in np.unique(stats.mean_occupancy()):
        pred = stats.mean_occupancy().reshape(4, 4, 4) >= t
        inter = sum(np.count_nonzero(g & pred) for g in grids)
        union = sum(np.count_nonzero(g | pred) for g in grids)
        best = max(best, inter / union)
    assert iou == pytest.approx(best)
    shape = stats.best_constant()
    inter = sum(np.count_nonzero(g & shape.occupancy) for g in grids)
    union = sum(np.count_nonzero(g | shape.occupancy) for g in grids)
    assert inter / union == pytest.approx(best)


def test_baseline_labels_voxels_with_their_most_frequent_class():
    stats = OccupancyStatistics(2, 3)
    a = np.zeros((2, 2, 2), np.uint8)
    a[0, 0, 0] = 1
    b = a.copy()
    b[0, 0, 0] = 2
    for g in (a, a, b):
        stats.add(g)
    shape = stats.best_constant()
    assert shape.occupancy[0, 0, 0] and shape.occupancy.sum() == 1
    assert shape.classes[0, 0, 0] == 1


class _PositionModel(CoReNet):
    """Returns logits (0, f(p)) with f(x, y, z) = x + 10 y + 100 z at each sample point p."""

    def encode(self, image):
        return image

    def decode(self, encoded, camera, offset):
        p = sample_points(self.config.resolution, offset)  # [B, r, r, r, 3]
        f = p[..., 0] + 10 * p[..., 1] + 100 * p[..., 2]
        return torch.stack([torch.zeros_like(f), f], 1)


def test_subvoxel_evaluation_interleaves_exactly():
    config = CoReNetConfig(encoder=ResNetConfig(block="basic", layers=(1, 1, 1, 1), widths=(4, 4, 4, 4), stem_width=4),
                           resolution=8, channels=(4, 4), latent_channels=4)
    model = _PositionModel(config)
    probs = predict_probabilities(model, torch.zeros(1, 3, 8, 8), _camera(), factor=4)
    assert probs.shape == (1, 2, 32, 32, 32)
    c = (torch.arange(32, dtype=torch.float64) + 0.5) / 32  # fine voxel centres
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")
    expected = torch.sigmoid(x + 10 * y + 100 * z)
    assert torch.allclose(probs[0, 1].double(), expected, atol=1e-6)


def test_model_output_shape_and_skip_assignment():
    config = CoReNetConfig(encoder=ResNetConfig(block="basic", layers=(1, 1, 1, 1), widths=(4, 8, 8, 8), stem_width=4),
                           resolution=16, channels=(8, 8, 4), latent_channels=8, skip_final=True, num_classes=3)
    assert config.skip_grids == (4, 8, 16)
    model = CoReNet(config)
    out = model(torch.rand(2, 3, 32, 32), _camera().expand(2, 4, 4), torch.full((2, 3), 0.5))
    assert out.shape == (2, 3, 16, 16, 16)
    paper = CoReNetConfig()  # 128^3, no skip at the native grid
    assert paper.grids == (4, 8, 16, 32, 64, 128) and paper.skip_grids == (8, 16, 32, 64)
    with pytest.raises(ValueError):
        CoReNetConfig(resolution=48)


def _small_config(name: str) -> CoReNetConfig:
    import yaml

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "models" / f"{name}.yaml").read_text())
    small = raw["scale"]["small"]
    net = dict(small["network"])
    encoder = ResNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in net.pop("encoder").items()})
    net = {k: tuple(v) if isinstance(v, list) else v for k, v in net.items()}
    return CoReNetConfig(encoder=encoder, resolution=small["resolution"], num_classes=2,
                         input_size=small["input_size"], **net)


@pytest.mark.parametrize("name", ["h5", "h7"])
def test_small_scale_computes_what_it_computed_before_the_paper_layout(name):
    # tests/fixtures/corenet_small_head.npz was written by the code of commit 68cbb2a (before the
    # corenet layout, batch renorm and the original's skip arithmetic were added): seed 1234,
    # state-dict digest, outputs in training and evaluation mode (subsampled [..., ::4, ::4, ::4]
    # and summed). On the machine that wrote it the new code reproduced every value bit for bit;
    # the tolerance only allows other CPUs' kernels.
    ref = np.load(Path(__file__).parent / "fixtures" / "corenet_small_head.npz")
    torch.manual_seed(1234)
    model = CoReNet(_small_config(name))
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().contiguous().numpy().tobytes())
    assert digest.hexdigest() == str(ref[f"{name}_state_sha256"])
    image = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(5))
    offset = torch.tensor([[0.5, 0.5, 0.5], [0.125, 0.375, 0.875]])
    # The reference was computed on one thread: another thread count sums the convolutions in
    # another order, and training-mode batch norm amplifies those last bits past the tolerance.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for mode in ("train", "eval"):
                out = model.train(mode == "train")(image, _camera().expand(2, 4, 4), offset).double()
                np.testing.assert_allclose(out[:, :, ::4, ::4, ::4].numpy(), ref[f"{name}_{mode}_sub"], rtol=0,
                                           atol=1e-5)
                np.testing.assert_allclose([out.sum().item(), out.abs().sum().item()], ref[f"{name}_{mode}_sum"],
                                           rtol=1e-6)
    finally:
        torch.set_num_threads(threads)


def test_corenet_arithmetic_truncates_and_drops_negative_clip_z():
    # 8x8 map, r = 2 at the cube centre's depth: the same pixels as the floor arithmetic where
    # every projection is inside the image (CoReNet's camera)
    features = _indexed_features(2, 8, 8)
    offset = torch.full((1, 3), 0.5)
    assert torch.equal(ray_traced_skip_corenet(features, _camera(), 2, offset), ray_traced_skip(features, _camera(), 2, offset))
    # u * W = -0.5 (just left of the image): truncation gives column 0, which the original samples
    # (floor would give -1, outside). One voxel (r = 1) sampled at (0.5, 0.5, 0.5), w = 1:
    camera = torch.eye(4)[None].clone()
    camera[0, 0, 3] = -1.625  # x_clip = -1.125 -> u = -1.125 / 2 + 0.5 = -0.0625 -> u * 8 = -0.5
    camera[0, 1, 3] = -0.5  # y = 0.5 -> y_clip 0 -> row 4
    camera[0, 2, 3] = -0.5  # z_clip = z - 0.5 = 0 at the centre: kept (>= 0)
    cols, rows, keep = corenet_pixels(1, offset, camera, 8, 8)
    assert (cols.item(), rows.item(), keep.item()) == (0, 4, True)
    assert ray_traced_skip_corenet(features, camera, 1, offset)[0, :, 0, 0, 0].tolist() == [400.0, 1400.0]
    camera[0, 2, 3] = -0.6  # clip z < 0 (w stays 1 > 0): dropped
    assert ray_traced_skip_corenet(features, camera, 1, offset).abs().sum() == 0
