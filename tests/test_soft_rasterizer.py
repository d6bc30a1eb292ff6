"""Soft rasterizer against SoftRas's formulas (hand-computed pixels, analytic area), the dense
all-pixels-by-all-faces reference, finite differences and the z-buffer rasterizer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh

from stages.rendering.rasterizer import rasterize
from stages.rendering.soft_rasterizer import (
    SoftRasterSettings,
    colour_weights,
    face_soft_centroids,
    sample_texture,
    soft_fragments,
    soft_rasterize,
    soft_rasterize_dense,
)

F64 = torch.float64
ONE_FACE = torch.tensor([[0, 1, 2]])


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def edge_triangle(offset: float, depth: float = 5.0) -> torch.Tensor:
    """A triangle whose left edge is the line x = offset (|y| <= 0.5), apex to the right; the
    centre pixel of a 1-pixel image (0, 0) is |offset| from that edge (outside if offset > 0)."""
    return torch.tensor([[[offset, -0.5, depth], [offset, 0.5, depth], [offset + 0.8, 0.0, depth]]], dtype=F64)


def test_pixel_outside_an_edge_is_sigmoid_of_minus_d2_over_sigma():
    settings = SoftRasterSettings(image_size=1, sigma=1e-4)
    alpha = soft_rasterize(edge_triangle(0.01), ONE_FACE, settings=settings)
    assert alpha.shape == (1, 1, 1, 1)
    assert alpha.item() == pytest.approx(0.2689414, abs=1e-7)
    assert alpha.item() == pytest.approx(sigmoid(-1.0), abs=1e-12)


def test_two_coincident_faces_combine_as_one_minus_product():
    settings = SoftRasterSettings(image_size=1, sigma=1e-4)
    alpha = soft_rasterize(edge_triangle(0.01), torch.tensor([[0, 1, 2], [0, 1, 2]]), settings=settings)
    assert alpha.item() == pytest.approx(0.4655534, abs=1e-7)
    assert alpha.item() == pytest.approx(1 - (1 - sigmoid(-1.0)) ** 2, abs=1e-12)


def test_pixel_on_and_inside_an_edge():
    settings = SoftRasterSettings(image_size=1, sigma=1e-4)
    on_edge = soft_rasterize(edge_triangle(0.0), ONE_FACE, settings=settings).item()
    inside = soft_rasterize(edge_triangle(-0.01), ONE_FACE, settings=settings).item()
    assert on_edge == pytest.approx(0.5, abs=1e-12)
    assert inside == pytest.approx(sigmoid(1.0), abs=1e-12)


def test_faces_beyond_the_cut_off_are_skipped():
    # d^2 = 1e-4 * 10 >= sigma * ln(1/dist_eps - 1) = 1e-4 * ln(9999) (9.21): skipped, alpha 0;
    # with dist_eps 1e-10 (threshold 23.03 sigma) the same pixel keeps sigmoid(-10).
    far = edge_triangle(math.sqrt(10) * 0.01)
    assert soft_rasterize(far, ONE_FACE, settings=SoftRasterSettings(image_size=1, sigma=1e-4)).item() == 0.0
    kept = soft_rasterize(far, ONE_FACE, settings=SoftRasterSettings(image_size=1, sigma=1e-4, dist_eps=1e-10))
    assert kept.item() == pytest.approx(sigmoid(-10.0), rel=1e-9)


def test_soft_area_of_a_triangle_is_its_area():
    vertices = torch.tensor([[[-0.5, -0.5, 5.0], [0.5, -0.5, 5.0], [0.0, 0.5, 5.0]]], dtype=F64)
    alpha = soft_rasterize(vertices, ONE_FACE, settings=SoftRasterSettings(image_size=64, sigma=1e-4))
    area = alpha.sum().item() * (2 / 64) ** 2
    assert area == pytest.approx(0.5, rel=0.01)


def test_colour_is_softras_depth_softmax_with_background():
    # Two copies of one triangle around the single pixel (0, 0), at depths 2 and 2.5.
    s, g, eps, near, far = 0.5, 0.2, 0.01, 1.0, 3.0
    settings = SoftRasterSettings(image_size=1, sigma=s, gamma=g, eps=eps, near=near, far=far, background=(0.25, 0.5), dist_eps=1e-12)
    tri = [[-1.0, -0.6], [1.0, -0.6], [0.0, 1.2]]
    vertices = torch.tensor([[[x, y, 2.0] for x, y in tri] + [[x, y, 2.5] for x, y in tri]], dtype=F64)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    colours = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=F64)
    out = soft_rasterize(vertices, faces, colours, settings, "face")[0, :, 0, 0]
    # The pixel is inside, so d is its distance to the nearest edge line (0.583, a slanted one).
    def line_distance(a, b):
        (ax, ay), (bx, by) = a, b
        return abs((bx - ax) * (0 - ay) - (by - ay) * (0 - ax)) / math.hypot(bx - ax, by - ay)

    d = min(line_distance(tri[i], tri[(i + 1) % 3]) for i in range(3))
    big_d = sigmoid(d * d / s)
    z_norm = [(far - 2.0) / (far - near), (far - 2.5) / (far - near)]
    w_bg = math.exp(2 * eps / g)
    w = [big_d * math.exp(z / g) for z in z_norm]
    den = w_bg + sum(w)
    expected = [(0.25 * w_bg + w[0]) / den, (0.5 * w_bg + w[1]) / den]
    alpha = 1 - (1 - big_d) ** 2
    assert out.tolist() == pytest.approx(expected + [alpha], abs=1e-12)


def test_surface_texture_lookup_follows_softras_cells():
    # R = 2: cell = wy * R + wx below the anti-diagonal, (R-1-wy) * R + (R-1-wx) above it.
    textures = torch.arange(4, dtype=F64).view(1, 1, 4, 1)
    bary = torch.tensor([[0.7, 0.1, 0.2], [0.6, 0.35, 0.05], [0.1, 0.8, 0.1], [0.45, 0.45, 0.1]], dtype=F64)
    cells = sample_texture(textures, "surface", torch.zeros(4, dtype=torch.long), bary)
    assert cells.squeeze(1).tolist() == [1.0, 1.0, 2.0, 3.0]


def random_meshes(seed: int, batch: int = 2, faces: int = 12, dtype=F64):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.rand(batch, faces, 1, 2, generator=gen, dtype=dtype) * 1.6 - 0.8
    corners = centres + (torch.rand(batch, faces, 3, 2, generator=gen, dtype=dtype) - 0.5) * 0.6
    depth = 2.0 + torch.rand(batch, faces, 3, 1, generator=gen, dtype=dtype)
    vertices = torch.cat([corners, depth], -1).reshape(batch, faces * 3, 3)
    face_index = torch.arange(faces * 3).view(faces, 3)
    return vertices, face_index, gen


@pytest.mark.parametrize(
    "texture_type,double_side", [("face", True), ("vertex", True), ("surface", False), (None, True)]
)
def test_windowed_equals_dense_values_and_gradients(texture_type, double_side):
    vertices, faces, gen = random_meshes(1)
    settings = SoftRasterSettings(image_size=24, sigma=3e-4, gamma=0.05, near=1.0, far=4.0, double_side=double_side, background=(0.2, 0.4, 0.6))
    shape = {"face": (2, 12, 3), "vertex": (2, 12, 3, 3), "surface": (2, 12, 9, 3)}
    textures = None if texture_type is None else torch.rand(shape[texture_type], generator=gen, dtype=F64)
    weights = torch.rand(2, 4 if textures is not None else 1, 24, 24, generator=gen, dtype=F64)

    def run(fn):
        v = vertices.clone().requires_grad_(True)
        t = None if textures is None else textures.clone().requires_grad_(True)
        image = fn(v, faces, t, settings, texture_type or "face")
        (image * weights).sum().backward()
        return image.detach(), v.grad, None if t is None else t.grad

    windowed, dense = run(soft_rasterize), run(soft_rasterize_dense)
    assert windowed[0].shape == (2, 4 if textures is not None else 1, 24, 24)
    assert windowed[0][:, -1].max() > 0.99  # faces are drawn
    for a, b in zip(windowed, dense):
        if a is not None:
            assert torch.allclose(a, b, rtol=0, atol=1e-6)
            assert a.abs().max() > 0


def test_windowed_equals_dense_in_float32_and_in_small_chunks():
    vertices, faces, gen = random_meshes(2, faces=40, dtype=torch.float32)
    textures = torch.rand(2, 40, 3, 3, generator=gen)
    settings = SoftRasterSettings(image_size=32, sigma=1e-4, gamma=0.05, near=1.0, far=4.0)
    reference = soft_rasterize_dense(vertices, faces, textures, settings, "vertex", face_chunk=7, checkpoint=True)
    windowed = soft_rasterize(vertices, faces, textures, settings, "vertex")
    chunked = soft_rasterize(vertices, faces, textures, SoftRasterSettings(**{**settings.__dict__, "max_pairs": 50}), "vertex")
    assert torch.allclose(windowed, reference, rtol=0, atol=1e-6)
    assert torch.allclose(chunked, windowed, rtol=0, atol=1e-6)


def test_gradcheck_float64():
    vertices = torch.tensor([[[-0.61, -0.52, 2.0], [0.53, -0.37, 2.5], [0.03, 0.62, 3.0], [0.31, 0.13, 1.5]]], dtype=F64)
    faces = torch.tensor([[0, 1, 2], [1, 3, 2]])
    textures = torch.tensor([[[0.9, 0.1], [0.2, 0.7]]], dtype=F64)
    settings = SoftRasterSettings(image_size=5, sigma=0.02, gamma=0.3, near=1.0, far=4.0, dist_eps=1e-12)

    def fn(v, t):
        return soft_rasterize(v, faces, t, settings, "face")

    assert torch.autograd.gradcheck(fn, (vertices.requires_grad_(True), textures.requires_grad_(True)), eps=1e-6, atol=1e-5)


def test_sharp_silhouette_matches_z_buffer_coverage():
    size = 64
    mesh = trimesh.creation.icosphere(subdivisions=2)
    rotation = trimesh.transformations.random_rotation_matrix(np.random.default_rng(0).random(3))[:3, :3]
    points = mesh.vertices @ rotation.T * np.array([0.7, 0.5, 0.6]) + np.array([0.1, -0.05, 0.0])
    vertices = torch.tensor(points, dtype=F64)
    vertices[:, 2] += 3.0
    alpha = soft_rasterize(vertices[None], torch.tensor(mesh.faces), settings=SoftRasterSettings(image_size=size, sigma=1e-7))
    soft_mask = alpha[0, 0].numpy() > 0.5
    # z-buffer rasterizer: pixel coordinates, y down, centres at (c + 0.5, r + 0.5).
    pixel = np.stack([(points[:, 0] + 1) * size / 2, (1 - points[:, 1]) * size / 2, points[:, 2] * 0.1], axis=1)
    _, face_id, _ = rasterize(pixel, mesh.faces, size, size)
    hard_mask = face_id >= 0
    iou = (soft_mask & hard_mask).sum() / (soft_mask | hard_mask).sum()
    assert hard_mask.sum() > 500
    assert iou >= 0.99


def test_bad_inputs_raise():
    vertices = edge_triangle(0.0)
    with pytest.raises(ValueError, match="out of range"):
        soft_rasterize(vertices, torch.tensor([[0, 1, 3]]))
    with pytest.raises(ValueError, match="vertices must be"):
        soft_rasterize(vertices[0], ONE_FACE)
    with pytest.raises(ValueError, match="surface textures"):
        soft_rasterize(vertices, ONE_FACE, torch.zeros(1, 1, 5, 3, dtype=F64), texture_type="surface")
    with pytest.raises(ValueError, match="background"):
        soft_rasterize(vertices, ONE_FACE, torch.zeros(1, 1, 3, dtype=F64), SoftRasterSettings(background=(1.0,)), "face")


def test_colour_weights_sum_to_one_per_pixel():
    vertices, faces, _ = random_meshes(4)
    settings = SoftRasterSettings(image_size=16, sigma=1e-3, gamma=0.05, near=1.0, far=4.0)
    frag = soft_fragments(vertices, faces, settings)
    idx, weight, bg_weight = colour_weights(frag, 2, settings)
    total = bg_weight.index_add(0, frag.pixel[idx], weight)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-12)


def test_face_soft_centroids_and_visibility():
    # Face 0: triangle at depth 2 whose area centroid is (0.1, -0.1); face 1: the same triangle
    # behind it (hidden); face 2: off screen.
    tri = torch.tensor([[-0.5, -0.5], [0.7, -0.5], [0.1, 0.7]], dtype=F64)
    corners = [torch.cat([tri, torch.full((3, 1), z, dtype=F64)], 1) for z in (2.0, 3.0)]
    corners.append(torch.tensor([[5.0, 5.0, 2.0], [6.0, 5.0, 2.0], [5.0, 6.0, 2.0]], dtype=F64))
    vertices = torch.cat(corners)[None]
    faces = torch.arange(9).view(3, 3)
    settings = SoftRasterSettings(image_size=128, sigma=1e-6, gamma=1e-4)
    frag = soft_fragments(vertices, faces, settings)
    centroid, visible = face_soft_centroids(frag, 1, 3, settings)
    assert visible[0].tolist() == [True, False, False]
    assert centroid[0, 0].tolist() == pytest.approx([0.1, -0.1], abs=2 / 128)
    assert centroid[0, 2].tolist() == [0.0, 0.0]


def test_face_through_the_camera_plane_has_finite_gradients():
    # A second face with one corner exactly at z = 0 and one behind (z < 0) covers the pixel:
    # its interpolated depth is outside [near, far], so the colour is the first face's alone,
    # and the gradient (NaN before the depth guard, from 1 / 0) is finite everywhere.
    settings = SoftRasterSettings(image_size=4, sigma=1e-2, gamma=1e-2, dist_eps=1e-6)
    tri = [[-0.9, -0.9], [0.9, -0.9], [0.0, 0.9]]
    front = torch.tensor([[[x, y, 2.0] for x, y in tri]], dtype=F64)
    bad = torch.tensor([[[x, y, z] for (x, y), z in zip(tri, (0.0, -0.5, 3.0))]], dtype=F64)
    colours = torch.tensor([[[1.0], [0.0]]], dtype=F64)
    both = torch.cat([front, bad], dim=1).requires_grad_(True)
    out = soft_rasterize(both, torch.tensor([[0, 1, 2], [3, 4, 5]]), colours, settings, "face")
    alone = soft_rasterize(front, ONE_FACE, colours[:, :1], settings, "face")
    assert torch.equal(out[:, 0], alone[:, 0])
    out.sum().backward()
    assert torch.isfinite(both.grad).all()
