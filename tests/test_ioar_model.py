"""The IOAR network's parts against independent references: back-projection of a known voxel to
its pixel, masked dense sparse convolutions against sums over the active set, BatchNorm over the
active voxels against nn.BatchNorm1d, the active-box shortcut, surface-only propagation, losses."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from stages.families.ioar.spec import IOARNetwork
from stages.models.ioar import (IOARNet, MVFusionTransformer, ioar_losses, log_transform, project_points, upsample,
                                voxel_points)
from stages.models.sparse3d import MaskedBatchNorm, MaskedConv3d, MaskedDown, MaskedUp, SparseUNet

TINY = IOARNetwork(backbone="small", feature_channels=(8, 8, 8), image_size=(64, 48),
                   voxel_sizes=(0.16, 0.08, 0.04), fusion=("mean", "transformer", "mean"), unet_base=(4, 4, 4))


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Back-projection ------------------------------------------------------------------------------

# A 64 x 48 image with fx = fy = 50, cx = 31.5, cy = 23.5, sampled on a 16 x 12 map (stride 4):
# K scales by 1/4, so fx' = 12.5, cx' = 7.875, cy' = 5.875. Voxel (1, 2, 25) of a grid at origin
# (-0.5, 0.1, 1.0) with 4 cm voxels is the point (-0.46, 0.18, 2.0); a camera at the world origin
# with identity rotation sees it at x/z = -0.23, y/z = 0.09, i.e. map pixel
# u = 12.5 * -0.23 + 7.875 = 5, v = 12.5 * 0.09 + 5.875 = 7 (column 5, row 7).
K = torch.tensor([[50.0, 0.0, 31.5], [0.0, 50.0, 23.5], [0.0, 0.0, 1.0]])
ORIGIN = torch.tensor([-0.5, 0.1, 1.0])
INDEX = torch.tensor([[1, 2, 25]])


def test_a_known_voxel_projects_to_its_pixel():
    point = voxel_points(INDEX, ORIGIN, 0.04)
    assert torch.allclose(point, torch.tensor([[-0.46, 0.18, 2.0]]), atol=1e-6)
    behind = torch.eye(4)
    behind[:3, :3] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # turned around: z < 0
    poses = torch.stack([torch.eye(4), behind])
    grid, z, valid = project_points(point, K.expand(2, 3, 3), poses, (12, 16), (48, 64))
    u = (grid[0, 0, 0] + 1) / 2 * 15
    v = (grid[0, 0, 1] + 1) / 2 * 11
    assert u.item() == pytest.approx(5.0, abs=1e-5) and v.item() == pytest.approx(7.0, abs=1e-5)
    assert z[0, 0].item() == pytest.approx(2.0, abs=1e-6) and z[1, 0].item() == pytest.approx(-2.0, abs=1e-6)
    assert valid.tolist() == [[True], [False]]


def test_the_model_samples_the_feature_of_that_pixel():
    model = IOARNet(TINY).eval()
    model.layer_norms[2] = nn.Identity()  # look at the fused value itself
    rows, cols = torch.meshgrid(torch.arange(12.0), torch.arange(16.0), indexing="ij")
    features = torch.zeros(1, 2, 8, 12, 16)  # [B, V, C, h, w]
    features[0, 0, 0] = 100 * rows + cols
    features[0, 0, 1] = 1.0
    features[0, 1, 0] = 5000.0  # a second view that does not see the voxel (it looks away)
    mask = torch.zeros(1, 1, 4, 4, 28, dtype=torch.bool)
    mask[0, 0, 1, 2, 25] = True
    away = torch.eye(4)
    away[:3, :3] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    batch = {"images": torch.zeros(1, 2, 3, 48, 64), "K": K.expand(1, 2, 3, 3), "origin": ORIGIN[None],
             "cam_to_world": torch.stack([torch.eye(4), away])[None], "view_valid": torch.tensor([[True, True]])}
    fused, _ = model.back_project(2, features, mask, batch)
    assert fused[0, 0, 1, 2, 25].item() == pytest.approx(705.0, abs=1e-3)  # row 7, column 5
    assert fused[0, 1, 1, 2, 25].item() == pytest.approx(1.0, abs=1e-6)
    assert fused[0, :, 0].abs().sum() == 0  # inactive voxels get nothing


# Masked dense convolutions = sparse convolutions ---------------------------------------------


def _random_active(shape, fraction, seed):
    generator = torch.Generator().manual_seed(seed)
    mask = torch.rand((1, 1, *shape), generator=generator) < fraction
    x = torch.randn((1, 3, *shape), generator=generator, dtype=torch.float64) * mask
    return x, mask


def test_submanifold_conv_equals_the_sum_over_active_neighbours():
    x, mask = _random_active((5, 6, 4), 0.4, 0)
    conv = MaskedConv3d(3, 2).double()
    out = conv(x, mask)
    weight = conv.conv.weight.detach()  # [out, in, 3, 3, 3]
    active = {tuple(p) for p in mask[0, 0].nonzero().tolist()}
    for p in itertools.product(range(5), range(6), range(4)):
        expected = torch.zeros(2, dtype=torch.float64)
        if p in active:
            for d in itertools.product((-1, 0, 1), repeat=3):
                q = tuple(a + b for a, b in zip(p, d))
                if q in active:
                    expected += weight[:, :, d[0] + 1, d[1] + 1, d[2] + 1] @ x[0, :, q[0], q[1], q[2]]
        assert torch.allclose(out[0, :, p[0], p[1], p[2]], expected, atol=1e-12), p


def test_down_and_up_sampling_follow_the_active_set():
    x, mask = _random_active((5, 4, 3), 0.3, 1)
    down = MaskedDown(3, 2).double()
    y, coarse = down(x, mask)
    weight = down.conv.weight.detach()
    active = mask[0, 0]
    for c in itertools.product(range(3), range(2), range(2)):
        children = [(2 * c[0] + a, 2 * c[1] + b, 2 * c[2] + e) for a, b, e in itertools.product((0, 1), repeat=3)]
        children = [k for k in children if k[0] < 5 and k[1] < 4 and k[2] < 3 and active[k]]
        assert bool(coarse[0, 0, c[0], c[1], c[2]]) == bool(children)
        expected = sum((weight[:, :, k[0] % 2, k[1] % 2, k[2] % 2] @ x[0, :, k[0], k[1], k[2]] for k in children),
                       torch.zeros(2, dtype=torch.float64))
        assert torch.allclose(y[0, :, c[0], c[1], c[2]], expected, atol=1e-12)
    up = MaskedUp(2, 3).double()
    z = up(y, mask)
    w = up.conv.weight.detach()  # [in, out, 2, 2, 2]
    for p in itertools.product(range(5), range(4), range(3)):
        parent = y[0, :, p[0] // 2, p[1] // 2, p[2] // 2]
        expected = w[:, :, p[0] % 2, p[1] % 2, p[2] % 2].t() @ parent if active[p] else torch.zeros(3, dtype=torch.float64)
        assert torch.allclose(z[0, :, p[0], p[1], p[2]], expected, atol=1e-12), p


def test_batch_norm_uses_the_active_voxels_only():
    x, mask = _random_active((6, 5, 4), 0.5, 2)
    x = x + 3.0 * mask  # inactive zeros would pull the mean down if they were counted
    norm = MaskedBatchNorm(3).double().train()
    reference = nn.BatchNorm1d(3).double().train()
    out = norm(x, mask)
    rows = x.permute(0, 2, 3, 4, 1)[mask[:, 0]]  # [N_active, C]
    expected = reference(rows)
    assert torch.allclose(out.permute(0, 2, 3, 4, 1)[mask[:, 0]], expected, atol=1e-10)
    assert torch.allclose(norm.running_mean, reference.running_mean, atol=1e-12)
    assert torch.allclose(norm.running_var, reference.running_var, atol=1e-12)
    assert out[~mask.expand_as(out)].abs().max() == 0


def test_the_unet_on_the_active_box_equals_the_whole_grid():
    torch.manual_seed(0)
    net = SparseUNet(3, 4, 2).double().train()
    x, mask = _random_active((16, 12, 8), 0.0, 3)
    mask[0, 0, 5:11, 6:10, 2:7] = True  # a box away from the corner: the box path runs
    x = torch.randn(x.shape, dtype=torch.float64) * mask
    boxed = net(x, mask)
    whole = net._forward(x, mask)
    for a, b in zip(boxed, whole):
        assert torch.allclose(a, b, atol=1e-10)


# Surface-only propagation ---------------------------------------------------------------------


class FixedOccupancy(nn.Module):
    """Stands in for an occupancy UNet: class 1 (surface) where `surface` is set, else class 2."""

    def __init__(self, surface: torch.Tensor, out_features: int):
        super().__init__()
        self.surface, self.out_features = surface, out_features

    def forward(self, x, mask):
        logits = torch.zeros((x.shape[0], 3, *x.shape[2:]))
        logits[:, 2] = 1.0
        logits[:, 1] = torch.where(self.surface, 2.0, 0.0)
        return logits * mask, torch.zeros((x.shape[0], self.out_features, *x.shape[2:]))


def test_only_surface_voxels_reach_the_next_level():
    model = IOARNet(TINY).eval()
    coarse = torch.zeros(1, 1, 2, 2, 2, dtype=torch.bool)
    coarse[0, 0, 1, 0, 1] = True
    medium = torch.zeros(1, 1, 4, 4, 4, dtype=torch.bool)
    medium[0, 0, 2, 1, 3] = True  # a child of the coarse surface voxel: stays
    medium[0, 0, 0, 0, 0] = True  # not a child: never active, so never carried on
    model.occ_nets[0] = FixedOccupancy(coarse, model.occ_nets[0].out_features)
    model.occ_nets[1] = FixedOccupancy(medium, model.occ_nets[1].out_features)
    batch = {"images": torch.zeros(1, 2, 3, 48, 64), "K": K.expand(1, 2, 3, 3),
             "cam_to_world": torch.eye(4).expand(1, 2, 4, 4), "view_valid": torch.tensor([[True, False]]),
             "origin": ORIGIN[None], "dims": (8, 8, 8)}
    with torch.no_grad():
        out = model(batch)
    masks = out["masks"]
    assert masks[0].all()
    assert torch.equal(masks[1], upsample(coarse, 2))
    expected_fine = torch.zeros(1, 1, 8, 8, 8, dtype=torch.bool)
    expected_fine[0, 0, 4:6, 2:4, 6:8] = True
    assert torch.equal(masks[2], expected_fine)
    assert out["tsdf"][~masks[2].expand_as(out["tsdf"])].abs().max() == 0
    assert out["tsdf"].abs().max() <= 1.05


def test_losses_follow_the_original():
    masks = [torch.ones(1, 1, 1, 1, 2, dtype=torch.bool), torch.ones(1, 1, 1, 1, 2, dtype=torch.bool),
             torch.tensor([True, True, False]).view(1, 1, 1, 1, 3)]
    occupancy = {0: torch.zeros(1, 3, 1, 1, 2), 1: torch.zeros(1, 3, 1, 1, 2)}
    occupancy[1][0, 1, 0, 0, 0] = 5.0  # right at voxel 0 (label 1), undecided at voxel 1
    output = {"masks": masks, "occupancy": occupancy, "tsdf": torch.tensor([0.5, -0.2, 0.0]).view(1, 1, 1, 1, 3)}
    targets = {"labels": [torch.tensor([[[[0, -1]]]]), torch.tensor([[[[1, 2]]]])],
               "tsdf": torch.tensor([[[[0.25, -0.2, 1.0]]]]), "tsdf_mask": torch.tensor([[[[True, True, True]]]])}
    loss, stats = ioar_losses(output, targets)
    ce0 = np.log(3.0)  # one labelled coarse voxel, uniform logits
    ce1 = (np.log(np.exp(5) + 2) - 5 + np.log(3.0)) / 2
    l1 = (abs(np.log1p(0.5) - np.log1p(0.25)) + 0.0) / 2  # voxel 2 is inactive
    assert loss.item() == pytest.approx(ce0 + ce1 + l1, rel=1e-6)
    assert stats["occ_acc"] == pytest.approx(0.5)  # voxel 1's argmax is class 0, label 2
    assert stats["tsdf_l1"] == pytest.approx(0.125)
    assert torch.allclose(log_transform(torch.tensor([-1.0, 0.0, 2.0])),
                          torch.tensor([-np.log(2.0), 0.0, np.log(3.0)], dtype=torch.float32))


def test_the_paper_network_runs_and_loads_local_backbone_weights(tmp_path):
    from stages.models.ioar import MnasMulti

    torch.manual_seed(0)
    backbone = MnasMulti((80, 40, 24))
    # torchvision's mnasnet1_0 keys for the layers used (stem + stacks 8..10): a state dict in
    # that layout loads; another shape is refused with the file named
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in backbone.state_dict().items()
             if k.startswith("layers.")}
    torch.save(state, tmp_path / "mnasnet.pth")
    assert backbone.load_weights(str(tmp_path / "mnasnet.pth")) == len(state)
    assert torch.equal(backbone.state_dict()["layers.0.weight"], state["layers.0.weight"])
    state["layers.0.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="bad.pth"):
        backbone.load_weights(str(tmp_path / "bad.pth"))
    features = backbone(torch.zeros(1, 3, 64, 96))
    assert [tuple(f.shape) for f in features] == [(1, 80, 4, 6), (1, 40, 8, 12), (1, 24, 16, 24)]
    paper = IOARNetwork(backbone="mnasnet", feature_channels=(80, 40, 24), image_size=(96, 64),
                        voxel_sizes=(0.16, 0.08, 0.04), fusion=("transformer",) * 3, unet_base=(32, 16, 8),
                        fine_occupancy=True)
    model = IOARNet(paper).eval()
    batch = {"images": torch.zeros(1, 2, 3, 64, 96), "K": K.expand(1, 2, 3, 3),
             "cam_to_world": torch.eye(4).expand(1, 2, 4, 4), "view_valid": torch.tensor([[True, True]]),
             "origin": ORIGIN[None], "dims": (8, 8, 8)}
    with torch.no_grad():
        out = model(batch)
    assert set(out["occupancy"]) == {0, 1, 2} and out["tsdf"].shape == (1, 1, 8, 8, 8)


# Projective occupancy (mv_fusion.py, IOAR.py:compute_proj_occ_loss) and the training phases ----


def test_the_occupancy_weighted_mean_is_a_softmax_with_a_null_slot():
    from stages.models.ioar import occupancy_weighted_mean

    features = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]],
                             [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]], dtype=torch.float64)  # [N=2, V=3, C=2]
    logits = torch.tensor([[1.0, 2.0, 50.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    valid = torch.tensor([[True, True, False], [False, False, False]])
    fused = occupancy_weighted_mean(features, logits, valid)
    total = np.exp(1.0) + np.exp(2.0) + 1.0  # the null slot: logit 0, feature 0; view 2 invalid
    assert fused[0].tolist() == pytest.approx([np.exp(1.0) / total, np.exp(2.0) / total], rel=1e-12)
    assert fused[1].tolist() == [0.0, 0.0]  # no valid view: everything on the null slot


def _pre_norm_reference(layer: nn.TransformerEncoderLayer, x: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
    """transformer.py's EncoderBlock by hand: x + attention(LayerNorm x), x + MLP(LayerNorm x)."""
    C = x.shape[-1]
    heads = layer.self_attn.num_heads
    q, k, v = (layer.norm1(x) @ layer.self_attn.in_proj_weight.t() + layer.self_attn.in_proj_bias).split(C, -1)

    def split(t):
        return t.view(*t.shape[:2], heads, C // heads).transpose(1, 2)  # [N, heads, V, C/h]

    scores = split(q) @ split(k).transpose(-1, -2) / np.sqrt(C // heads)
    scores = scores.masked_fill(blocked.view(len(x), heads, *blocked.shape[1:]), float("-inf"))
    attended = (scores.softmax(-1) @ split(v)).transpose(1, 2).reshape(x.shape)
    x = x + layer.self_attn.out_proj(attended)
    return x + layer.linear2(torch.relu(layer.linear1(layer.norm2(x))))


def test_the_transformer_fusion_is_pre_norm_and_its_logits_weight_the_views():
    torch.manual_seed(0)
    fusion = MVFusionTransformer(8, layers=2, heads=2).double().eval()
    features = torch.randn(5, 4, 8, dtype=torch.float64)
    depth = torch.rand(5, 4, dtype=torch.float64) * 3
    valid = torch.tensor([[True, True, False, True]] * 4 + [[False, True, False, False]])
    fused, logits = fusion(features, depth, valid)
    tokens = fusion.depth_mlp(torch.cat([features, ((depth - 1.85) / 0.85)[..., None]], -1))
    eye = torch.eye(4, dtype=torch.bool)
    blocked = (~(valid[:, None, :] | eye)).repeat_interleave(2, dim=0)
    x = tokens
    for layer in fusion.encoder.layers:
        x = _pre_norm_reference(layer, x, blocked)
    assert torch.allclose(logits, fusion.proj_occ(x)[..., 0], atol=1e-10)
    w = valid.double()
    assert torch.allclose(fused, (x * w[..., None]).sum(1) / w.sum(1, keepdim=True), atol=1e-10)
    weighted, same_logits = fusion(features, depth, valid, weighting=True)
    assert torch.equal(same_logits, logits)
    from stages.models.ioar import occupancy_weighted_mean

    assert torch.allclose(weighted, occupancy_weighted_mean(x, logits, valid), atol=1e-10)


def test_the_projective_occupancy_loss_reads_the_depth_at_the_voxels_pixel():
    # the known voxel of test_a_known_voxel_projects_to_its_pixel, seen by the identity camera
    # at depth z = 2.0 and full-resolution pixel u = 50 * -0.23 + 31.5 = 20, v = 50 * 0.09 + 23.5 = 28
    from stages.models.ioar import projective_occupancy_loss

    point = voxel_points(INDEX, ORIGIN, 0.04)
    grid, z, valid = project_points(point, K.expand(3, 3, 3), torch.eye(4).expand(3, 4, 4), (48, 64), (48, 64))
    assert ((grid[0, 0] + 1) / 2 * torch.tensor([63.0, 47.0])).tolist() == pytest.approx([20.0, 28.0], abs=1e-4)
    depth = torch.full((1, 3, 48, 64), 5.0)
    depth[0, 0, 28, 20] = 2.05  # view 0: within 3 voxels (0.12 m) of the voxel: occupied
    depth[0, 1, 28, 20] = 2.2   # view 1: 0.2 m behind it: not occupied
    depth[0, 2, 28, 20] = 0.0   # view 2: no reading there: not scored
    logits = torch.tensor([[1.5], [0.5], [7.0]])
    loss = projective_occupancy_loss([(logits, z, grid, valid)], depth, 3 * 0.04)
    expected = (np.log1p(np.exp(-1.5)) + np.log1p(np.exp(0.5))) / 2  # BCE(1.5, 1) and BCE(0.5, 0)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    none = projective_occupancy_loss([None, (logits, z, grid, valid & False)], depth.expand(2, -1, -1, -1), 0.12)
    assert none is None


def test_the_model_records_what_the_loss_needs_and_adds_it_per_level():
    model = IOARNet(TINY).eval()  # transformer fusion at the medium level only
    batch = {"images": torch.zeros(1, 2, 3, 48, 64), "K": K.expand(1, 2, 3, 3),
             "cam_to_world": torch.eye(4).expand(1, 2, 4, 4), "view_valid": torch.tensor([[True, False]]),
             "origin": ORIGIN[None], "dims": (8, 8, 8)}
    with torch.no_grad():
        out = model(batch)
    assert set(out["proj_occ"]) == {1}
    logits, z, pixels, valid = out["proj_occ"][1][0]
    n = int(out["masks"][1].sum())
    assert logits.shape == z.shape == valid.shape == (2, n) and pixels.shape == (2, n, 2)
    assert not valid[1].any()  # the padded view
    targets = {"labels": [torch.full((1, 2, 2, 2), -1), torch.full((1, 4, 4, 4), -1)],
               "tsdf": torch.ones(1, 8, 8, 8), "tsdf_mask": torch.zeros(1, 8, 8, 8, dtype=torch.bool),
               "depth": torch.full((1, 2, 48, 64), 2.0)}
    loss, stats = ioar_losses(out, targets, TINY.voxel_sizes)
    from stages.models.ioar import projective_occupancy_loss

    alone = projective_occupancy_loss(out["proj_occ"][1], targets["depth"], 3 * 0.08)
    assert loss.item() == pytest.approx(alone.item(), rel=1e-6) and stats["proj_occ_bce"] == pytest.approx(alone.item())
    with pytest.raises(ValueError, match="depth"):
        ioar_losses(out, {k: v for k, v in targets.items() if k != "depth"}, TINY.voxel_sizes)


def test_phase_one_freezes_the_trunk_and_phase_two_weights_the_views():
    # pytorch-lightning 1.5 (the original's): freeze() only stops gradients, BatchNorms keep
    # training-mode statistics; unfreezing with train_bn=False leaves their weights out
    paper = IOARNetwork(backbone="mnasnet", feature_channels=(16, 8, 8), image_size=(64, 48),
                        voxel_sizes=(0.16, 0.08, 0.04), fusion=("transformer",) * 3, unet_base=(4, 4, 4))
    torch.manual_seed(0)
    model = IOARNet(paper).train()
    assert model.set_training_phase(finetune=False, freeze_trunk=True) is True
    assert model.set_training_phase(finetune=False, freeze_trunk=True) is False  # nothing changed
    trunk = model.backbone.trunk()
    norms = [m for m in trunk.modules() if isinstance(m, nn.BatchNorm2d)]
    convs = [m for m in trunk.modules() if isinstance(m, nn.Conv2d)]
    assert len(norms) > 10 and len(convs) > 10
    assert not any(p.requires_grad for p in trunk.parameters())
    assert all(p.requires_grad for p in model.backbone.fpn.parameters())
    bn = model.backbone.layers[1]
    before = bn.running_mean.clone()
    x = torch.randn(2, 3, 48, 64)
    conv = model.backbone.layers[0](x)
    out = bn(conv)
    reference = torch.nn.functional.batch_norm(conv, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
    assert torch.allclose(out, reference, atol=1e-5)  # the batch's statistics
    assert torch.allclose(bn.running_mean, (1 - bn.momentum) * before + bn.momentum * conv.mean((0, 2, 3)))
    assert not model.proj_occ_weighting
    assert model.set_training_phase(finetune=True, freeze_trunk=True) is True
    assert all(p.requires_grad for m in convs for p in m.parameters())
    assert not any(p.requires_grad for m in norms for p in m.parameters())
    assert bool(model.proj_occ_weighting)
    # without freeze_trunk everything trains in both phases
    assert model.set_training_phase(finetune=False, freeze_trunk=False) is True
    assert all(p.requires_grad for p in model.parameters()) and not model.proj_occ_weighting
    model.set_training_phase(finetune=True, freeze_trunk=True)
    # the weighting is saved with the weights: a model trained through phase 2 keeps it
    restored = IOARNet(paper)
    restored.load_state_dict(model.state_dict())
    assert bool(restored.proj_occ_weighting)


# spconv (the paper scale's sparse path) against the masked dense form ---------------------------


def _unet_pair(device="cpu"):
    torch.manual_seed(0)
    dense = SparseUNet(5, 4, 3)
    spconv = SparseUNet(5, 4, 3, backend="spconv")
    for bn in dense.modules():  # non-trivial running statistics for the eval mode
        if isinstance(bn, MaskedBatchNorm):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    spconv.load_state_dict(dense.state_dict())
    assert set(spconv.state_dict()) == set(dense.state_dict())  # one state dict for both paths
    mask = torch.rand(2, 1, 9, 6, 11) < 0.35  # odd sizes: the padding of both down-samplings
    x = torch.randn(2, 5, 9, 6, 11) * mask
    return dense.to(device), spconv.to(device), x.to(device), mask.to(device)


@pytest.mark.parametrize("training", [True, False])
def test_the_spconv_unet_equals_the_masked_dense_one(training):
    # float32: spconv's CPU kernels are float32 ones; its CPU backward needs a CUDA build of
    # torch, so gradients are compared by the CUDA test below
    pytest.importorskip("spconv.pytorch")
    dense, spconv, x, mask = _unet_pair()
    dense.train(training)
    spconv.train(training)
    with torch.no_grad():
        (logits, features), (logits_s, features_s) = dense(x, mask), spconv(x, mask)
    assert torch.allclose(logits, logits_s, atol=1e-5) and torch.allclose(features, features_s, atol=1e-5)
    assert logits_s[~mask.expand_as(logits_s)].abs().max() == 0
    for (name, b), c in zip(dense.named_buffers(), spconv.buffers()):  # the running statistics
        assert torch.equal(b, c) if b.dtype == torch.long else torch.allclose(b, c, atol=1e-6), name


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_spconv_unet_trains_as_the_masked_dense_one_on_cuda():
    pytest.importorskip("spconv.pytorch")
    dense, spconv, x, mask = _unet_pair("cuda")
    grads = []
    for net in (dense, spconv):
        xi = x.clone().requires_grad_()
        logits, _ = net.train()(xi, mask)
        (logits * torch.linspace(-1, 1, logits.numel(), device="cuda").view_as(logits)).sum().backward()
        grads.append([xi.grad] + [p.grad for p in net.parameters()])
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-4)


def test_the_whole_network_gives_the_same_tsdf_with_spconv_and_refuses_to_train_it_on_the_cpu():
    pytest.importorskip("spconv.pytorch")
    from dataclasses import replace

    from stages.errors import StageError

    torch.manual_seed(0)
    dense = IOARNet(TINY).eval()
    sparse = IOARNet(replace(TINY, sparse_backend="spconv")).eval()
    sparse.load_state_dict(dense.state_dict())
    generator = torch.Generator().manual_seed(1)
    batch = {"images": torch.randn(1, 2, 3, 48, 64, generator=generator), "K": K.expand(1, 2, 3, 3),
             "cam_to_world": torch.eye(4).expand(1, 2, 4, 4), "view_valid": torch.tensor([[True, True]]),
             "origin": ORIGIN[None], "dims": (8, 8, 8)}
    with torch.no_grad():
        a, b = dense(batch), sparse(batch)
    assert all(torch.equal(x, y) for x, y in zip(a["masks"], b["masks"]))
    assert torch.allclose(a["tsdf"], b["tsdf"], atol=1e-5)
    with pytest.raises(StageError, match="trains on a CUDA device only"):
        sparse.train()(batch)
