"""UMR network: symmetric template, quaternion camera, projection, texture sampling layout,
output shapes at both scales, latent modes and local ResNet-18 weights."""

from __future__ import annotations

import dataclasses
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


# --------------------------------------------------------------------------- losses

from stages.models.umr_losses import (  # noqa: E402
    MeshSmoothness,
    cycle_targets,
    deform_loss,
    hypothesis_entropy,
    mask_loss,
    part_centres,
    part_face_textures,
    part_map_loss,
    render_hypotheses,
    texture_cycle_loss,
    texture_l1_loss,
    vertex_chamfer_loss,
)
from stages.rendering.soft_rasterizer import SoftRasterSettings  # noqa: E402

D64 = torch.float64
IDENTITY_CAM = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]


def test_mask_loss_by_hand():
    g = torch.zeros(1, 4, 4, dtype=D64)
    g[0, :2] = 1  # 8 pixels
    sil = torch.stack([torch.ones(4, 4, dtype=D64), g[0]])[None]  # IoU 8/16, and IoU ~1
    probs = torch.tensor([[0.25, 0.75]], dtype=D64)
    expected = 0.25 * (1 - 8 / (16 + 1e-6)) + 0.75 * (1 - 8 / (8 + 1e-6))
    assert mask_loss(sil, g, probs).item() == pytest.approx(expected, abs=1e-15)
    assert expected == pytest.approx(0.125, abs=1e-6)


TETRA_V = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]], dtype=D64)
TETRA_F = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]])


def test_laplacian_by_hand():
    # |v - mean(others)|^2: 1/3 for the origin, 1 + 2/9 for each of the other three -> 4.
    assert MeshSmoothness(TETRA_F, 4).laplacian(TETRA_V).item() == pytest.approx(4.0, abs=1e-12)


def test_flatten_by_hand():
    # Regular tetrahedron: every dihedral angle has cos 1/3 -> 6 edges x (1/3 + 1)^2 = 32/3.
    regular = torch.tensor([[[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]], dtype=D64)
    assert MeshSmoothness(TETRA_F, 4).flatten(regular).item() == pytest.approx(32 / 3, abs=1e-4)
    # Two triangles on edge (0, 1): flat -> 0; folded at 90 degrees -> 1 (open edges skipped).
    faces = np.array([[0, 1, 2], [1, 0, 3]])
    flat = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, -1, 0]]], dtype=D64)
    folded = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0.5, 1, 0], [0.5, 0, 1]]], dtype=D64)
    smooth = MeshSmoothness(faces, 4)
    assert smooth.flatten(flat).item() == pytest.approx(0.0, abs=1e-5)
    assert smooth.flatten(folded).item() == pytest.approx(1.0, abs=1e-5)


def test_deform_loss_by_hand():
    delta = torch.tensor([[[3.0, 4, 0], [0, 0, 1]]], dtype=D64)
    assert deform_loss(delta).item() == pytest.approx(3.0)


def test_texture_l1_loss_by_hand():
    rendered = torch.tensor([[[[[1.0, 0.0], [0.5, 0.5]]], [[[0.0, 0.0], [0.0, 0.0]]]]], dtype=D64)  # B1 K2 C1 2x2
    alpha = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]]], dtype=D64)
    image = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]]], dtype=D64)
    mask = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]], dtype=D64)
    probs = torch.tensor([[0.5, 0.5]], dtype=D64)
    # k0: |1-1| + |0-0| + |0.5-1| + |0-1| = 1.5 -> /4; k1: 0 + 0 + 1 + 1 = 3 -> /4.
    assert texture_l1_loss(rendered, alpha, image, mask, probs).item() == pytest.approx(0.5 * 1.5 / 4 + 0.5 * 3 / 4)


def test_texture_cycle_loss_by_hand():
    flow = torch.tensor([[[[0.2, 0.4], [0.4, 0.0]], [[0.9, 0.9], [0.9, 0.9]]]], dtype=D64)  # B1 F2 T*T=2
    centroids = torch.tensor([[[0.1, 0.2], [0.0, 0.0]]], dtype=D64)
    visible = torch.tensor([[True, False]])
    # Face 0: mean flow (0.3, 0.2) vs (0.1, 0.2) -> 0.04; face 1 masked; mean over 4 -> 0.01.
    assert texture_cycle_loss(flow, centroids, visible).item() == pytest.approx(0.01)


def test_cycle_targets_are_in_image_coordinates():
    # A triangle at image y > 0 (lower half) under the identity camera keeps its sign.
    vertices = torch.tensor([[[-0.3, 0.2, 0.0], [0.3, 0.2, 0.0], [0.0, 0.6, 0.0]]], dtype=D64)
    cam = torch.tensor([IDENTITY_CAM], dtype=D64)
    centroid, visible = cycle_targets(vertices, torch.tensor([[0, 1, 2]]), cam, SoftRasterSettings(image_size=64, sigma=1e-6))
    assert visible.tolist() == [[True]]
    assert centroid[0, 0].tolist() == pytest.approx([0.0, (0.2 + 0.2 + 0.6) / 3], abs=2 / 64)


def test_render_hypotheses_puts_image_y_down():
    t = symmetric_icosphere(2)
    vertices = torch.tensor(t.vertices, dtype=D64)[None] * 0.3
    cams = torch.tensor([[IDENTITY_CAM[:2] + [0.5] + IDENTITY_CAM[3:], IDENTITY_CAM[:2] + [-0.5] + IDENTITY_CAM[3:]]], dtype=D64)
    image = render_hypotheses(vertices, torch.tensor(t.faces), cams, SoftRasterSettings(image_size=32, sigma=1e-5))
    assert image.shape == (1, 2, 1, 32, 32)
    alpha = image[0, :, 0]
    # ty = +0.5 is below the centre (rows 16..31), ty = -0.5 above it.
    assert alpha[0, 16:].sum() > 50 * alpha[0, :16].sum()
    assert alpha[1, :16].sum() > 50 * alpha[1, 16:].sum()
    # The silhouette of a 0.3-radius disc: area pi 0.3^2 in NDC = pi 0.09 (32/2)^2 pixels.
    assert alpha[0].sum().item() == pytest.approx(math.pi * 0.09 * 256, rel=0.05)


def test_hypothesis_entropy_by_hand():
    probs = torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=D64)
    expected = (-2 * 0.5 * math.log(0.5 + 1e-9) - math.log(1 + 1e-9)) / 2
    assert hypothesis_entropy(probs).item() == pytest.approx(expected, abs=1e-15)


def test_part_centres_by_hand():
    maps = torch.zeros(1, 1, 2, 2, dtype=D64)
    maps[0, 0, 0, 0] = 1.0
    total = 1 + 4e-3
    # Column/row coordinates -1 and 0; mass (1.001) at (-1, -1), 0.001 at the three others.
    x = (-1.001 - 0.001) / total
    assert part_centres(maps)[0, 0].tolist() == pytest.approx([x, x], abs=1e-15)


def test_part_map_loss_by_hand():
    rendered = torch.zeros(1, 4, 2, 2, dtype=D64)
    rendered[0, 0, 0, 0] = 1.0  # head rendered at the top-left pixel
    parts = torch.zeros(1, 5, 2, 2, dtype=D64)
    parts[0, 1, 1, 1] = 1.0  # SCOPS head at the bottom-right pixel
    proj = torch.cat([torch.full((1, 1, 2, 2), 0.1, dtype=D64), rendered], 1)
    # Independent evaluation of each term with numpy.
    def centres(m):
        e = np.exp(m.numpy()[0])
        soft = e / e.sum(0)
        pdf = soft[1:] + 1e-3
        pdf /= pdf.sum((1, 2), keepdims=True)
        coords = np.array([-1.0, 0.0])
        return np.stack([(pdf * coords[None, None, :]).sum((1, 2)), (pdf * coords[None, :, None]).sum((1, 2))], 1)

    centre_term = ((centres(proj) - centres(parts)) ** 2).mean()
    # Normalised maps: proj channel 1 and parts channel 1 are one-hot at different pixels
    # (weight 5): 2 pixels x 1^2 x 5; proj background 0.1/0.1 = 1 vs 0 (weight 0); others 0.
    map_term = 2 * 5.0 / (5 * 2 * 2)
    assert part_map_loss(rendered, parts).item() == pytest.approx((map_term + centre_term) / 4, abs=1e-12)


def test_part_face_textures_round_labels_and_mirror():
    t = symmetric_icosphere(2)
    sampler = torch.tensor(uv_sampler(t, 2))
    labels = torch.zeros(8, 16, dtype=D64)
    labels[:, 8:] = 3.0  # right half of the UV map (u > 0) is part 3
    onehot = part_face_textures(labels, sampler, t.n_indept_faces)
    assert onehot.shape == (320, 4, 5)
    assert torch.all(onehot.sum(-1) == 1)
    u = sampler[..., 0]
    expected = torch.where(u > 1 / 15, 3, torch.where(u < -1 / 15, 0, -1))  # away from the blend
    got = onehot[: t.n_textured_faces].argmax(-1)
    sure = expected >= 0
    assert torch.equal(got[sure], expected[sure])
    assert torch.equal(onehot[t.n_textured_faces :], onehot[t.n_indept_faces : t.n_textured_faces])


def test_vertex_chamfer_loss_by_hand():
    template = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.3, 0.3, 0.0]], dtype=D64)
    parts = [torch.tensor([0, 1]), torch.tensor([2]), torch.tensor([3])]
    points = [
        torch.tensor([[[0.1, 0.0], [0.5, 0.2]]], dtype=D64),
        torch.tensor([[[0.0, 0.0]]], dtype=D64),
        torch.tensor([[[-1.0, -1.0]]], dtype=D64),
    ]
    shifted = IDENTITY_CAM[:1] + [0.1, 0.0] + IDENTITY_CAM[3:]
    cams = torch.tensor([[IDENTITY_CAM, shifted]], dtype=D64)
    probs = torch.tensor([[0.75, 0.25]], dtype=D64)
    weights = (1.0, 1.0, 0.0)
    # Identity: vertex 0 -> 0.01, vertex 1 -> 0.04, vertex 2 -> 0.25, vertex 3 weight 0; /4.
    # Shifted by x + 0.1: (0.1, 0) -> 0; (0.6, 0) -> 0.01 + 0.04 = 0.05; (0.1, 0.5) -> 0.26.
    expected = 0.75 * (0.01 + 0.04 + 0.25) / 4 + 0.25 * (0.0 + 0.05 + 0.26) / 4
    got = vertex_chamfer_loss(template, parts, points, cams, probs, weights)
    assert got.item() == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_azimuth_camera_init_spreads_side_views_around_the_up_axis(axis):
    # Hypothesis k turns the mirror axis to (-sin, 0, cos)(2 pi k / K) up to the sense of the
    # turn: side views at k = 0 and K / 2, front and back views in between; the template's up
    # axis stays on the image's vertical for every k.
    from stages.models.umr import initial_quaternions, quat_rotate

    k = 8
    q = initial_quaternions(k, axis, "azimuths")
    assert torch.allclose(q.norm(dim=1), torch.ones(k))
    basis = quat_rotate(torch.eye(3)[None].expand(k, 3, 3), q)  # [K, 3 template axes, 3 image axes]
    mirror = basis[:, axis]
    angles = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    assert torch.allclose(mirror[:, 2].double().abs(), angles.cos().abs(), atol=1e-6)
    assert torch.allclose(mirror[:, 1], torch.zeros(k), atol=1e-6)
    up = basis[0, :, 1].abs().argmax()
    assert torch.allclose(basis[:, up, 1].abs(), torch.ones(k), atol=1e-6)
    assert torch.equal(initial_quaternions(3, axis, "identity"), torch.tensor([[1.0, 0, 0, 0]] * 3))
    model = UMR(dataclasses.replace(SMALL, camera_init="azimuths", hypotheses=k, axis=axis))
    assert torch.allclose(torch.stack([h.bias[:4] for h in model.cameras.heads]), q)
