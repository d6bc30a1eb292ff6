"""Tests for the parametric bird (stages.synthetic.birds) and its renderer (stages.synthesize_birds)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from stages import synthesize_birds as sb
from stages.cub_crop import crop_example
from stages.synthetic.birds import (
    BACK, BELLY, HEAD, KEYPOINT_NAMES, KP_PERM, PART_NAMES, BirdParams, build_bird,
    sample_bird_params,
)

MIRROR = np.array([-1.0, 1.0, 1.0])
KP = {name: i for i, name in enumerate(KEYPOINT_NAMES)}


def _birds(n=4):
    return [build_bird(sample_bird_params(np.random.default_rng(s))) for s in range(n)]


def test_keypoint_names_and_permutation_follow_cub():
    assert len(KEYPOINT_NAMES) == 15
    # CMR's kp_perm swaps exactly the Left/Right pairs and fixes the rest.
    for i, j in enumerate(KP_PERM):
        a, b = KEYPOINT_NAMES[i], KEYPOINT_NAMES[j]
        assert b == a.replace("Left", "@").replace("Right", "Left").replace("@", "Right")
    assert sorted(KP_PERM) == list(range(15))


def test_mesh_is_mirror_symmetric_and_landmark_pairs_mirror():
    for bird in _birds():
        mirrored = bird.vertices * MIRROR
        dist, _ = cKDTree(bird.vertices).query(mirrored)
        assert dist.max() < 1e-12
        # Mirroring the landmarks and swapping left/right gives the landmarks back.
        np.testing.assert_allclose(bird.landmarks[KP_PERM] * MIRROR, bird.landmarks, atol=1e-12)
        # Mid-line landmarks lie on the symmetry plane.
        middle = [i for i, j in enumerate(KP_PERM) if i == j]
        np.testing.assert_allclose(bird.landmarks[middle, 0], 0.0, atol=1e-12)


def test_part_labels_cover_every_face():
    for bird in _birds():
        assert bird.face_part.shape == (len(bird.faces),)
        assert set(np.unique(bird.face_part)) == {1, 2, 3, 4}
        assert PART_NAMES[1:] == ("head", "neck", "back", "belly")


def test_landmarks_are_mesh_vertices_except_the_tail_tip_centre():
    for bird in _birds():
        dist, _ = cKDTree(bird.vertices).query(bird.landmarks)
        others = [i for i in range(15) if i != KP["Tail"]]
        assert dist[others].max() == 0.0
        # The tail keypoint is the middle of the tail's tip face, behind the body.
        assert bird.landmarks[KP["Tail"], 2] < bird.vertices[:, 2].min() + 0.01


def test_view_rotation_front_view_by_hand():
    r = sb.view_rotation(0.0, 0.0)
    # Seen from the front, the bird's left (+x) is on the image's right, up is image -y, and
    # the camera looks along -z of the bird.
    np.testing.assert_allclose(r, np.diag([1.0, -1.0, -1.0]), atol=1e-15)
    assert np.isclose(np.linalg.det(sb.view_rotation(1.0, 0.5)), 1.0)


def test_side_view_sees_the_near_eye_only():
    bird = build_bird(BirdParams())
    # Camera on the bird's left (+x): azimuth 90 degrees.
    cam = sb.OrthoCamera(sb.view_rotation(np.pi / 2, 0.0), 100.0, np.array([120.0, 120.0]))
    depth, face_id, _ = sb._raster(bird, cam, 240, 240)
    facing = sb.landmark_facing(bird, cam)
    visible = sb.keypoint_visibility(cam.project(bird.landmarks), facing, depth, face_id)
    hidden = {"Right Eye", "Right Wing", "Right Leg"}
    # Seen from its left side, everything but the bird's right-hand keypoints is visible (the
    # mid-line ones sit on the silhouette).
    assert {KEYPOINT_NAMES[k] for k in np.nonzero(~visible)[0]} == hidden


@pytest.fixture(scope="module")
def examples():
    return [sb.render_example(5, "train", i, 96) for i in range(6)]


def test_visible_keypoints_land_on_the_rendered_bird(examples):
    expected_part = {"Beak": HEAD, "Crown": HEAD, "Forehead": HEAD, "Left Eye": HEAD,
                     "Right Eye": HEAD, "Left Leg": BELLY, "Right Leg": BELLY, "Tail": BACK,
                     "Back": BACK}
    checked = 0
    for ex in examples:
        h, w = ex.mask.shape
        # Re-render the labels at image resolution from the stored camera.
        bird = build_bird(ex.params)
        _, face_id, _ = sb._raster(bird, ex.camera, w, h)
        np.testing.assert_array_equal(face_id >= 0, ex.mask.astype(bool))
        for k in np.nonzero(ex.parts[2] > 0)[0]:
            # 1-based -> pixel index: x - 1 is the pixel's index coordinate, rounded to the pixel.
            c, r = (np.floor(ex.parts[:2, k] - 0.5)).astype(int)
            block = (slice(max(r - 1, 0), r + 2), slice(max(c - 1, 0), c + 2))
            assert ex.mask[block].any()
            name = KEYPOINT_NAMES[k]
            if name in expected_part:
                labels = bird.face_part[face_id[block][face_id[block] >= 0]]
                assert expected_part[name] in labels, name
                checked += 1
        # Invisible keypoints are stored as CUB does: 0 0 0.
        assert np.all(ex.parts[:, ex.parts[2] == 0] == 0)
        # The bbox is the mask's tight box, 1-based.
        rows, cols = np.nonzero(ex.mask)
        assert list(ex.bbox) == [cols.min() + 1, rows.min() + 1, cols.max() + 1, rows.max() + 1]
    assert checked >= 10


def test_same_seed_same_example_and_different_index_differs(examples):
    again = sb.render_example(5, "train", 2, 96)
    np.testing.assert_array_equal(again.image, examples[2].image)
    np.testing.assert_array_equal(again.parts, examples[2].parts)
    assert examples[1].mask.shape != examples[2].mask.shape or \
        not np.array_equal(examples[1].mask, examples[2].mask)


def test_part_map_is_in_the_deterministic_crop_frame(examples):
    for ex in examples:
        pm = ex.part_map
        assert pm.shape == (256, 256, 5) and pm.dtype == np.float32
        np.testing.assert_allclose(pm.sum(axis=2), 1.0, atol=1e-6)
        # Its foreground matches the mask cropped by UMR's rules without jitter.
        crop = crop_example(ex.image / 255.0, ex.mask, ex.bbox - 1.0, np.zeros((15, 3)))
        fg, gt = 1.0 - pm[..., 0], crop.mask
        iou = np.minimum(fg, gt).sum() / np.maximum(fg, gt).sum()
        assert iou > 0.9, iou


def test_sfm_entry_reprojects_the_mean_bird_exactly():
    shape, centre, factor = sb.mean_shape()
    dists = np.linalg.norm(shape.T[:, None] - shape.T[None], axis=2)
    assert np.isclose(dists.max(), 2.0) and np.allclose(shape.mean(axis=1), 0.0)
    bird = build_bird(BirdParams())
    cam = sb.OrthoCamera(sb.view_rotation(0.7, 0.3), 80.0, np.array([60.0, 45.0]))
    entry = sb.sfm_entry(cam, centre, factor)
    one_based = cam.project(bird.landmarks)[:, :2] + 0.5
    reproj = entry.scale * (entry.rotation @ shape)[:2].T + entry.translation
    np.testing.assert_allclose(reproj, one_based, atol=1e-9)
    tri = sb.convex_triangles(shape)
    assert tri.min() == 1 and tri.max() <= 15 and tri.shape[1] == 3
