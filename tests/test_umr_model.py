"""UMR network: symmetric template, quaternion camera, projection, texture sampling layout,
output shapes at both scales, latent modes and local ResNet-18 weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation

from stages.models.umr import (
    PAPER,
    SMALL,
    UMR,
    load_resnet18_weights,
    orthographic_project,
    quat_rotate,
    select_camera,
    spherical_uv,
    surface_cell_barycentrics,
    symmetric_icosphere,
    to_ndc,
    uv_sampler,
)
from stages.models.resnet import ResNetConfig, ResNetEncoder
from stages.rendering.soft_rasterizer import sample_texture


@pytest.mark.parametrize(
    "subdivisions,counts",
    [(2, (162, 320, 16, 73, 89, 168)), (3, (642, 1280, 32, 305, 337, 656))],
)
def test_symmetric_template_counts_and_mirror_structure(subdivisions, counts):
    t = symmetric_icosphere(subdivisions, axis=1)
    assert (len(t.vertices), len(t.faces), t.n_centre, t.n_pairs, t.n_predicted, t.n_textured_faces) == counts
    flip = np.array([1.0, -1.0, 1.0])
    c, p = t.n_centre, t.n_pairs
    assert np.array_equal(t.vertices[c + p :], t.vertices[c : c + p] * flip)
    assert np.all(t.vertices[:c, 1] == 0)
    mirror = t.mirror_vertex_index()
    right = t.faces[t.n_indept_faces : t.n_indept_faces + t.n_pair_faces]
    left = t.faces[t.n_indept_faces + t.n_pair_faces :]
    assert np.array_equal(mirror[right], left)
    indept = t.faces[: t.n_indept_faces]
    assert all(sorted(mirror[f]) == sorted(f) for f in indept)
    # Same surface as trimesh's icosphere: same vertex set, same faces as vertex triples.
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
    ours = {tuple(sorted(map(tuple, np.round(t.vertices[f], 12)))) for f in t.faces}
    theirs = {tuple(sorted(map(tuple, np.round(sphere.vertices[f], 12)))) for f in sphere.faces}
    assert ours == theirs


def perturbed(model: UMR) -> UMR:
    with torch.no_grad():
        model.shape.weight.normal_(0, 0.05)
        model.shape.bias.normal_(0, 0.1)
    return model


def test_predicted_mesh_is_exactly_mirror_symmetric():
    torch.manual_seed(0)
    model = perturbed(UMR(SMALL)).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 64))
    v = out.vertices
    t = model.template
    mirror = torch.tensor(t.mirror_vertex_index())
    assert torch.equal(v[:, mirror] * torch.tensor([1.0, -1.0, 1.0]), v)
    assert torch.all(v[:, : t.n_centre, 1] == 0)
    assert (v - model.mean_shape()).abs().max() > 0.05  # the deformation is not trivial


def test_quaternion_rotation_matches_scipy():
    gen = torch.Generator().manual_seed(3)
    quat = torch.nn.functional.normalize(torch.randn(4, 4, generator=gen, dtype=torch.float64), dim=1)
    points = torch.randn(4, 10, 3, generator=gen, dtype=torch.float64)
    ours = quat_rotate(points, quat)
    for b in range(4):
        w, x, y, z = quat[b].tolist()
        expected = Rotation.from_quat([x, y, z, w]).apply(points[b].numpy())
        np.testing.assert_allclose(ours[b].numpy(), expected, atol=1e-12)


def test_orthographic_projection_of_a_known_point():
    # 90 degrees about z maps (1, 2, 3) to (-2, 1, 3); s = 2, t = (0.1, -0.2), offset 5.
    c = math.cos(math.pi / 4)
    cam = torch.tensor([[2.0, 0.1, -0.2, c, 0.0, 0.0, c]], dtype=torch.float64)
    point = torch.tensor([[[1.0, 2.0, 3.0]]], dtype=torch.float64)
    projected = orthographic_project(point, cam, offset_z=5.0)
    np.testing.assert_allclose(projected[0, 0].numpy(), [-3.9, 1.8, 11.0], atol=1e-12)
    np.testing.assert_allclose(to_ndc(projected)[0, 0].numpy(), [-3.9, -1.8, 11.0], atol=1e-12)


def test_spherical_uv_by_hand():
    uv = spherical_uv(np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 2.0], [0, 0, -1.0]]))
    np.testing.assert_allclose(uv, [[0, 0], [0.5, 0], [0, -1], [0, 1]], atol=1e-12)


@pytest.mark.parametrize("res", [1, 2, 6])
def test_texture_samples_sit_in_the_cell_the_rasterizer_reads(res):
    bary = torch.tensor(surface_cell_barycentrics(res))
    assert torch.all(bary > 0) and torch.allclose(bary.sum(1), torch.ones(res * res, dtype=torch.float64))
    textures = torch.arange(res * res, dtype=torch.float64).view(1, 1, -1, 1)
    cells = sample_texture(textures, "surface", torch.zeros(res * res, dtype=torch.long), bary)
    assert cells.squeeze(1).tolist() == list(range(res * res))


def test_uv_sampler_points_are_on_the_template_faces():
    t = symmetric_icosphere(2)
    uv = uv_sampler(t, 3)
    assert uv.shape == (168, 9, 2)
    # Cell 0 of face 0 is at barycentrics (1/9, 1/9, 7/9) of its corners.
    point = t.vertices[t.faces[0]].T @ np.array([1 / 9, 1 / 9, 7 / 9])
    np.testing.assert_allclose(uv[0, 0], spherical_uv(point[None])[0], atol=1e-12)


@pytest.mark.parametrize(
    "config,counts",
    [(SMALL, (162, 320, 89, 4, (64, 128))), (PAPER, (642, 1280, 337, 8, (128, 256)))],
    ids=["small", "paper"],
)
def test_output_shapes(config, counts):
    v, f, n_pred, k, uv = counts
    torch.manual_seed(0)
    model = UMR(config).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, config.image_size, config.image_size))
    assert out.feature.shape == (1, config.feature)
    assert out.mean.shape == out.logvar.shape == out.latent.shape == (1, config.latent)
    assert out.delta_v.shape == (1, n_pred, 3)
    assert out.vertices.shape == (1, v, 3)
    assert out.cams.shape == (1, k, 7) and out.cam_probs.shape == (1, k)
    assert out.uv_flow.shape == (1, 2, *uv)
    assert out.texture_flow.shape == (1, f, config.texture_size**2, 2)
    assert torch.allclose(out.cam_probs.sum(1), torch.ones(1))
    assert torch.allclose(out.cams[..., 3:].norm(dim=-1), torch.ones(1, k))
    assert torch.all(out.cams[..., 0] > 0)
    assert out.uv_flow.abs().max() <= 1
    # Initial state (net_init, quaternion bias (1, 0, 0, 0), shape weights N(0, 1e-4)).
    assert (out.cams[..., 3] > 0.99).all()
    assert (out.cams[..., 0] - 1).abs().max() < 0.2


def test_mean_latent_is_deterministic_and_sampling_reproduces_the_original():
    torch.manual_seed(0)
    model = UMR(SMALL).eval()
    image = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = model(image), model(image)
        s1 = model(image, sample_latent=True, generator=torch.Generator().manual_seed(7))
        s2 = model(image, sample_latent=True, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.vertices, b.vertices) and torch.equal(a.latent, a.mean)
    noise = torch.randn(a.mean.shape, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(s1.latent, a.mean + torch.exp(0.5 * a.logvar) * noise)
    assert torch.equal(s1.vertices, s2.vertices)
    assert not torch.equal(s1.latent, a.latent)


def test_select_camera():
    cams = torch.arange(2 * 3 * 7, dtype=torch.float32).view(2, 3, 7)
    probs = torch.tensor([[0.1, 0.7, 0.2], [0.0, 0.0, 1.0]])
    cam, index = select_camera(cams, probs)
    assert index.tolist() == [1, 2] and torch.equal(cam, cams[[0, 1], [1, 2]])
    _, drawn = select_camera(cams, probs, sample=True, generator=torch.Generator().manual_seed(0))
    assert drawn[1].item() == 2


def test_load_resnet18_weights_from_a_local_torchvision_style_file(tmp_path):
    config = ResNetConfig("basic", (2, 2, 2, 2), (64, 128, 256, 512), 64)
    source = ResNetEncoder(config)
    torch.manual_seed(1)
    for p in source.parameters():
        torch.nn.init.normal_(p)
    names = {"stem.0.": "conv1.", "stem.1.": "bn1."}
    state = {}
    for key, value in source.state_dict().items():
        new = key
        for ours, theirs in names.items():
            if key.startswith(ours):
                new = theirs + key[len(ours):]
        if key.startswith("stages."):
            _, stage, rest = key.split(".", 2)
            new = f"layer{int(stage) + 1}." + rest.replace("shortcut.", "downsample.")
        state[new] = value
    assert "layer2.0.downsample.1.running_mean" in state and "layer4.1.conv2.weight" in state
    state["fc.weight"] = torch.zeros(1000, 512)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    target = ResNetEncoder(config)
    load_resnet18_weights(target, path)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value)
    del state["layer1.0.conv1.weight"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="resnet18.pth"):
        load_resnet18_weights(ResNetEncoder(config), path)
