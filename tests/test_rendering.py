"""Rasteriser and renderer against analytic answers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.camera import (
    CORENET_EYE,
    corenet_camera_transform,
    image_to_pixel,
    perspective_rh,
    transform_points,
)
from stages.rendering import (
    SceneObject,
    project_and_clip,
    rasterize,
    render_object_ids,
    render_scene,
    sample_look,
)
from stages.rendering.shading import LOW_AMBIENT, LOW_BACKGROUND, LOW_DIFFUSE

IDENTITY = np.eye(4)


def box(lo, hi, color=(0.5, 0.5, 0.5)) -> SceneObject:
    (x0, y0, z0), (x1, y1, z1) = lo, hi
    v = np.array(
        [[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)], dtype=np.float64
    )
    # Index bits: 4 = x, 2 = y, 1 = z. Windings deliberately mixed (no culling expected).
    f = np.array(
        [
            [0, 1, 3],
            [0, 3, 2],
            [4, 6, 7],
            [4, 5, 7],
            [0, 4, 5],
            [0, 5, 1],
            [2, 3, 7],
            [2, 7, 6],
            [0, 2, 6],
            [0, 6, 4],
            [1, 5, 7],
            [1, 7, 3],
        ]
    )
    return SceneObject(v, f, color)


def signed_area(pv, tri):
    (x0, y0), (x1, y1), (x2, y2) = pv[tri, :2]
    return (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)


def coverage_counts(pv, faces, width, height):
    """How many faces claim each pixel centre (each face rasterised alone)."""
    counts = np.zeros((height, width), int)
    for face in np.asarray(faces):
        _, fid, _ = rasterize(pv, face[None], width, height)
        counts += fid >= 0
    return counts


# --- rasteriser -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x0, x1, y0, y1, cols, rows",
    [
        (2.3, 9.7, 3.0, 8.0, (2, 9), (3, 7)),  # generic: centres strictly inside or outside
        (2.5, 9.5, 3.5, 8.5, (2, 8), (3, 7)),  # on the centres: top and left edges own them
    ],
)
def test_square_covers_exact_pixel_rectangle(x0, x1, y0, y1, cols, rows):
    pv = np.array([[x0, y0, 0.0], [x1, y0, 0.0], [x1, y1, 0.0], [x0, y1, 0.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    expected = np.zeros((12, 16), int)
    expected[rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = 1
    np.testing.assert_array_equal(coverage_counts(pv, faces, 16, 12), expected)
    _, fid, _ = rasterize(pv, faces[:, ::-1], 16, 12)  # other winding, same pixels
    np.testing.assert_array_equal(fid >= 0, expected == 1)


def test_fan_around_pixel_centre_covers_each_pixel_once():
    centre = (8.5, 8.5)
    angles = np.radians(np.arange(0, 360, 30) + 0.0)
    rim = np.stack([centre[0] + 6 * np.cos(angles), centre[1] + 6 * np.sin(angles)], axis=1)
    # Spokes at 0/90/180/270 degrees run exactly through pixel centres.
    pv = np.concatenate([[centre], rim])
    pv = np.concatenate([pv, np.zeros((len(pv), 1))], axis=1)
    n = len(rim)
    faces = np.array([[0, 1 + i, 1 + (i + 1) % n] for i in range(n)])
    faces[::2] = faces[::2, ::-1]  # mixed windings
    counts = coverage_counts(pv, faces, 17, 17)
    assert counts.max() == 1
    assert counts[8, 8] == 1
    inner = np.hypot(np.arange(17)[None] + 0.5 - 8.5, np.arange(17)[:, None] + 0.5 - 8.5) < 5.0
    assert np.all(counts[inner] == 1)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_random_grid_mesh_is_watertight(seed):
    rng = np.random.default_rng(seed)
    n = 4
    xs = np.linspace(2.5, 18.5, n + 1)
    gx, gy = np.meshgrid(xs, xs)
    # Jitter interior vertices to multiples of 0.5 so many edges pass through pixel centres.
    jitter = rng.integers(-3, 4, size=(2, n + 1, n + 1)) * 0.5
    jitter[:, [0, -1], :] = 0
    jitter[:, :, [0, -1]] = 0
    pv = np.stack([(gx + jitter[0]).ravel(), (gy + jitter[1]).ravel(), np.zeros(gx.size)], axis=1)
    faces = []
    for r in range(n):
        for c in range(n):
            a, b, d, e = (
                r * (n + 1) + c,
                r * (n + 1) + c + 1,
                (r + 1) * (n + 1) + c,
                (r + 1) * (n + 1) + c + 1,
            )
            options = [[[a, b, e], [a, e, d]], [[a, b, d], [b, e, d]]]
            if rng.uniform() < 0.5:
                options.reverse()
            # A non-convex quad folds over along one diagonal; only the other tiles it.
            tris = next(o for o in options if all(signed_area(pv, t) > 0 for t in o))
            faces += [t[::-1] if rng.uniform() < 0.5 else t for t in tris]
    counts = coverage_counts(pv, np.array(faces), 22, 22)
    assert counts.max() == 1
    assert np.all(counts[3:18, 3:18] == 1)


def test_tilted_plane_depth_matches_analytic_ndc_depth():
    width = height = 32
    world_to_pixel = image_to_pixel(width, height) @ corenet_camera_transform()
    # Plane z = 0.4 + 0.3 x + 0.2 y, large enough to fill the view.
    corners = np.array([[-2.0, -2.0], [3.0, -2.0], [3.0, 3.0], [-2.0, 3.0]])
    v = np.column_stack([corners, 0.4 + 0.3 * corners[:, 0] + 0.2 * corners[:, 1]])
    pv, faces, _ = project_and_clip(v, np.array([[0, 1, 2], [0, 2, 3]]), world_to_pixel)
    depth, fid, _ = rasterize(pv, faces, width, height)
    assert np.all(fid >= 0)
    inverse = np.linalg.inv(world_to_pixel)
    eye = np.array(CORENET_EYE)
    normal, offset = np.array([0.3, 0.2, -1.0]), -0.4  # normal . p = offset
    for r, c in [(0, 0), (5, 27), (16, 16), (31, 31), (20, 3)]:
        far = transform_points(inverse, [c + 0.5, r + 0.5, 0.5])
        ray = far - eye
        hit = eye + ray * (offset - normal @ eye) / (normal @ ray)
        assert abs(depth[r, c] - transform_points(world_to_pixel, hit)[2]) < 1e-9


def test_nearer_triangle_wins_regardless_of_order():
    near = [[1.0, 1.0, -0.5], [14.0, 1.0, -0.5], [1.0, 14.0, -0.5]]
    far = [[2.0, 2.0, 0.5], [15.0, 2.0, 0.5], [15.0, 15.0, 0.5]]
    pv = np.array(near + far)
    for faces, near_id in (([[0, 1, 2], [3, 4, 5]], 0), ([[3, 4, 5], [0, 1, 2]], 1)):
        depth, fid, bary = rasterize(pv, np.array(faces), 16, 16)
        assert fid[3, 5] == near_id and depth[3, 5] == pytest.approx(-0.5)
        assert fid[12, 13] == 1 - near_id and depth[12, 13] == pytest.approx(0.5)
        np.testing.assert_allclose(bary[fid >= 0].sum(axis=1), 1.0)


def test_near_plane_clipping_matches_manually_clipped_triangle():
    width = height = 32
    z_near = 0.1
    world_to_pixel = image_to_pixel(width, height) @ perspective_rh(
        math.radians(90), 1.0, z_near, 10.0
    )
    # Camera at the origin looking down -z; vertex c lies behind it (w < 0). Generic coordinates
    # keep pixel centres off the edges, where the two tessellations may round differently.
    a, b, c = (
        np.array([-1.03, -0.97, -2.1]),
        np.array([1.47, -1.02, -1.9]),
        np.array([0.23, 1.01, 1.05]),
    )
    depth, fid, _ = rasterize(
        *project_and_clip(np.array([a, b, c]), [[0, 1, 2]], world_to_pixel)[:2], width, height
    )

    def on_near_plane(p, q):
        return p + (q - p) * (-z_near - p[2]) / (q[2] - p[2])

    qa, qb = on_near_plane(a, c), on_near_plane(b, c)
    manual = transform_points(world_to_pixel, np.array([a, b, qb, qa]))
    ref_depth, ref_fid, _ = rasterize(manual, np.array([[0, 1, 2], [0, 2, 3]]), width, height)
    assert (fid >= 0).sum() > 100
    np.testing.assert_array_equal(fid >= 0, ref_fid >= 0)
    covered = fid >= 0
    np.testing.assert_allclose(depth[covered], ref_depth[covered], atol=1e-9)
    assert np.all(depth[covered] >= -1.0 - 1e-12) and np.all(depth[covered] <= 1.0)


def test_triangle_entirely_behind_camera_is_dropped():
    world_to_pixel = image_to_pixel(8, 8) @ corenet_camera_transform()
    v = np.array([[0.0, 0.0, -2.0], [1.0, 0.0, -2.0], [0.0, 1.0, -2.0]])
    _, faces, source = project_and_clip(v, [[0, 1, 2]], world_to_pixel)
    assert len(faces) == 0 and len(source) == 0


# --- renderer ---------------------------------------------------------------------------------


def test_unit_cube_covers_projected_front_face():
    size = 128
    ids = render_object_ids(
        [box((0.25,) * 3, (0.75,) * 3)], IDENTITY, corenet_camera_transform(), size, size
    )
    # Eye at z = 0.5 - 1.3666666 looking along +z with a 60 degree field of view: the front
    # face z = 0.25 projects to a centred square of half-width 0.25 / distance / tan(30 deg).
    distance = 0.25 - (0.5 - 1.3666666)
    half = 0.25 / distance / math.tan(math.radians(30))
    lo, hi = size / 2 * (1 - half), size / 2 * (1 + half)
    centres = np.arange(size) + 0.5
    inside = (centres > lo) & (centres < hi)
    np.testing.assert_array_equal(ids == 0, inside[:, None] & inside[None, :])


def test_low_realism_colour_at_normal_incidence():
    size = 65  # odd: the middle pixel centre lies exactly on the optical axis
    color = np.array([0.8, 0.4, 0.2])
    image = render_scene(
        [box((0.25,) * 3, (0.75,) * 3, color)],
        IDENTITY,
        corenet_camera_transform(),
        size,
        size,
        "low",
    )
    expected = np.clip(color * (LOW_AMBIENT + LOW_DIFFUSE), 0, 1) * 255
    np.testing.assert_allclose(image[32, 32], expected, atol=1.0)
    np.testing.assert_allclose(image[0, 0], np.array(LOW_BACKGROUND) * 255, atol=1.0)


def test_object_ids_pick_the_nearer_object():
    front = box((0.3, 0.3, 0.2), (0.6, 0.6, 0.3))
    back = box((0.4, 0.4, 0.6), (0.9, 0.9, 0.9))
    for objects, front_id in (([front, back], 0), ([back, front], 1)):
        ids = render_object_ids(objects, IDENTITY, corenet_camera_transform(), 64, 64)
        assert ids.dtype == np.int16 and ids.shape == (64, 64)
        row, col = np.argwhere(ids == front_id).mean(axis=0).astype(int)
        assert ids[row, col] == front_id  # overlap region: the front box hides the back one
        pixel = transform_points(
            image_to_pixel(64, 64) @ corenet_camera_transform(), [0.8, 0.8, 0.6]
        )
        assert ids[int(pixel[1]), int(pixel[0])] == 1 - front_id
        assert ids[0, 0] == -1


def test_high_realism_cast_shadow_darkens_floor():
    camera = corenet_camera_transform()
    floating = box((0.35, 0.4, 0.35), (0.65, 0.55, 0.65), (0.6, 0.6, 0.6))
    anchor = box((0.0, 0.1, 0.9), (0.05, 0.15, 0.95))  # sets the floor at y = 0.1, off to a side
    look = dataclasses.replace(
        sample_look(np.random.default_rng(0)),
        key_direction=np.array([0.0, 1.0, 0.0]),
        floor_kind="noise",
    )
    args = ([floating, anchor], IDENTITY, camera, 64, 64, "high")
    lit = render_scene(*args, look=look, shadows=False).astype(int)
    shaded = render_scene(*args, look=look, shadows=True).astype(int)
    to_pixel = image_to_pixel(64, 64) @ camera
    below = transform_points(to_pixel, [0.5, 0.1, 0.5]).astype(int)
    beside = transform_points(to_pixel, [0.9, 0.1, 0.5]).astype(int)
    assert shaded[below[1], below[0]].sum() < lit[below[1], below[0]].sum() - 30
    np.testing.assert_array_equal(shaded[beside[1], beside[0]], lit[beside[1], beside[0]])


def test_high_realism_is_seeded_and_shaped():
    objects = [
        box((0.2, 0.1, 0.3), (0.5, 0.6, 0.6), (0.9, 0.2, 0.1)),
        box((0.6, 0.1, 0.4), (0.8, 0.3, 0.7)),
    ]
    args = (objects, IDENTITY, corenet_camera_transform(), 48, 40, "high")
    first = render_scene(*args, np.random.default_rng(7))
    assert first.dtype == np.uint8 and first.shape == (40, 48, 3)
    np.testing.assert_array_equal(first, render_scene(*args, np.random.default_rng(7)))
    assert np.abs(first.astype(int) - render_scene(*args, np.random.default_rng(8))).mean() > 5
    low = render_scene(*args[:5], "low")
    assert low.dtype == np.uint8 and low.shape == (40, 48, 3)
    np.testing.assert_array_equal(low, render_scene(*args[:5], "low", np.random.default_rng(1)))


def test_rejects_unknown_realism_and_missing_rng():
    args = ([box((0.2,) * 3, (0.4,) * 3)], IDENTITY, corenet_camera_transform(), 8, 8)
    with pytest.raises(ValueError):
        render_scene(*args, "medium")
    with pytest.raises(ValueError):
        render_scene(*args, "high")
