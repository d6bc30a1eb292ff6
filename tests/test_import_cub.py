"""Tests for the CUB importer (stages.import_cub), its .mat format and tables, and the crop rules
(stages.cub_crop)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.io
from PIL import Image

from stages import cub_tables as T
from stages import import_cub
from stages import synthesize_birds as sb
from stages.cli import run
from stages.cub_crop import (
    SfmCamera, crop_example, crop_window, cut, mirror_example, padded_box, resize_bilinear,
)
from stages.formats import cub as F
from stages.tables import read_table

COUNTS = {"train": 3, "val": 1, "test": 1}
SEED, SIZE = 11, 64


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("cub")
    sb.synthesize_birds(root / "birds", COUNTS, SIZE, SEED, progress=False)
    import_cub.import_cub(root / "birds" / "CUB_200_2011", root / "birds" / "cachedir",
                          root / "tables", parts=root / "birds" / "scops", progress=False)
    return root


def test_mat_files_read_back_like_cmr_reads_them(synthetic):
    cache = synthetic / "birds" / "cachedir"
    images = scipy.io.loadmat(cache / "data" / "train_cub_cleaned.mat", struct_as_record=False,
                              squeeze_me=True)["images"]
    sfm = scipy.io.loadmat(cache / "sfm" / "anno_train.mat", struct_as_record=False,
                           squeeze_me=True)
    assert len(images) == 3 and len(sfm["sfm_anno"]) == 3
    first = images[0]
    assert first.rel_path == "001.Synthetic_bird/Synthetic_Bird_0001.jpg"
    assert first.parts.shape == (3, 15) and first.mask.shape == (first.height, first.width)
    bbox = [first.bbox.x1, first.bbox.y1, first.bbox.x2, first.bbox.y2]
    ex = sb.render_example(SEED, "train", 0, SIZE)
    assert bbox == list(ex.bbox) and first.id == 1 and first.train == 1 and first.test == 0
    assert sfm["S"].shape == (3, 15) and sfm["sfm_anno"][0].rot.shape == (3, 3)
    # A one-image split comes back as a single struct (squeeze_me), as CMR's loader would see.
    val = scipy.io.loadmat(cache / "data" / "val_cub_cleaned.mat", struct_as_record=False,
                           squeeze_me=True)["images"]
    assert val.id == 4


def test_import_gives_exactly_the_generated_ground_truth(synthetic):
    for split in ("train", "val", "test"):
        table = read_table(synthetic / "tables" / f"{split}.parquet", T.CUB_IMAGES)
        assert len(table) == COUNTS[split]
        for index, row in table.iterrows():
            ex = sb.render_example(SEED, split, index, SIZE)
            np.testing.assert_array_equal(T.decode_bbox(row), ex.bbox - 1.0)
            expected = ex.parts.T.copy()
            vis = expected[:, 2] > 0
            expected[vis, :2] -= 1.0
            np.testing.assert_array_equal(T.decode_keypoints(row), expected)
            np.testing.assert_array_equal(T.decode_mask(row), ex.mask)
            np.testing.assert_array_equal(T.decode_part_map(row), ex.part_map)  # k/4: exact
            assert T.decode_image(row).shape == ex.image.shape
            # The JPEG is the stored file, close to the rendered pixels.
            assert np.abs(T.decode_image(row).astype(float) - ex.image).mean() < 6.0
            scale, trans, rot = T.decode_sfm(row)
            np.testing.assert_allclose(rot, ex.camera.rotation, atol=1e-12)
            q = np.asarray(row["sfm_quaternion"])
            np.testing.assert_allclose(_rotation_from_quaternion(q), rot, atol=1e-12)
    quarantine = read_table(synthetic / "tables" / "quarantine.parquet", T.CUB_QUARANTINE)
    assert len(quarantine) == 0


def _rotation_from_quaternion(q):
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def test_quaternion_of_a_quarter_turn_about_z():
    r = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(T.quaternion_from_rotation(r), [np.sqrt(0.5), 0, 0, np.sqrt(0.5)])
    half = np.diag([1.0, -1.0, -1.0])  # half turn about x: the trace-negative branch
    np.testing.assert_allclose(T.quaternion_from_rotation(half), [0, 1, 0, 0], atol=1e-15)


# ------------------------------------------------------------------------- bad entries


def _annotation(i, rel_path, w=20, h=10, bbox=(3, 2, 12, 8), mask=None):
    """A 1-based annotation whose mask fills the bbox unless `mask` is given."""
    if mask is None:
        mask = np.zeros((h, w), np.uint8)
        mask[bbox[1] - 1:bbox[3], bbox[0] - 1:bbox[2]] = 1
    parts = np.zeros((3, 15))
    parts[:, 1] = (5, 4, 1)  # Beak at 1-based (5, 4)
    return F.CubAnnotation(i, rel_path, np.asarray(bbox, float), parts, mask, w, h, 1, True,
                           False)


def _jpeg(path, w, h):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path, format="JPEG")


@pytest.fixture()
def broken(tmp_path):
    cub, cache, parts = tmp_path / "CUB_200_2011", tmp_path / "cache", tmp_path / "parts"
    img = cub / "images" / "001.X"
    names = ["good", "missing", "garbage", "mask_size", "outside", "empty", "size", "no_parts",
             "umr_named"]
    anns = []
    for i, name in enumerate(names):
        rel = f"001.X/{name}.jpg"
        if name != "missing":
            _jpeg(img / f"{name}.jpg", 20, 10)
        kwargs = {
            "mask_size": {"mask": np.ones((10, 19), np.uint8)},
            "outside": {"bbox": (3, 2, 21, 8)},  # 1-based x2 = 21 > width 20
            "empty": {"mask": np.zeros((10, 20), np.uint8)},
            "size": {"w": 22},
        }.get(name, {})
        ann = _annotation(i + 1, rel, **kwargs)
        anns.append(ann)
        stem = name if name != "umr_named" else f"{name}_{i}"
        if name != "no_parts":
            (parts / "001.X").mkdir(parents=True, exist_ok=True)
            np.save(parts / "001.X" / f"{stem}.npy", np.full((8, 8, 5), 0.2, np.float32))
    (img / "garbage.jpg").write_bytes(b"not a jpeg at all")
    F.write_annotations(F.annotation_path(cache, "train"), anns)
    return tmp_path, names


def test_every_kind_of_bad_entry_is_quarantined_with_its_reason(broken, capsys):
    root, names = broken
    counts = import_cub.import_cub(root / "CUB_200_2011", root / "cache", root / "out",
                                   parts=root / "parts", splits=["train"], progress=False)
    assert counts == {"train": (2, 7)}
    rows = read_table(root / "out" / "train.parquet", T.CUB_IMAGES)
    assert list(rows["rel_path"]) == ["001.X/good.jpg", "001.X/umr_named.jpg"]
    good = rows.iloc[0]
    np.testing.assert_array_equal(T.decode_bbox(good), [2, 1, 11, 7])
    kp = T.decode_keypoints(good)
    np.testing.assert_array_equal(kp[1], [4, 3, 1])
    assert np.all(kp[[0] + list(range(2, 15))] == 0)
    assert rows.iloc[1]["part_map_path"].endswith("umr_named_8.npy")
    assert np.isnan(good["sfm_scale"])  # no sfm file given
    q = read_table(root / "out" / "quarantine.parquet", T.CUB_QUARANTINE)
    reasons = dict(zip(q["rel_path"].str.slice(6, -4), q["reason"]))
    assert reasons["missing"] == "missing file: images/001.X/missing.jpg"
    assert reasons["garbage"].startswith("unreadable image images/001.X/garbage.jpg")
    assert reasons["mask_size"] == "mask size mismatch: mask 19x10, image 20x10"
    assert reasons["outside"].startswith("bbox outside the image: 0-based (2, 1, 20, 7)")
    assert reasons["empty"] == "empty mask"
    assert reasons["size"] == "image size 20x10 differs from the annotation's 22x10"
    assert reasons["no_parts"].startswith("missing part map: 001.X/no_parts_7.npy or")
    assert "train: 2 images, 7 quarantined" in capsys.readouterr().err


def test_missing_annotation_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "CUB_200_2011" / "images").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_:
        run(import_cub.main, ["--cub-root", str(tmp_path / "CUB_200_2011"), "--annotations",
                              str(tmp_path / "cache"), "--out", str(tmp_path / "out")])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "train_cub_cleaned.mat: annotation file not found" in err


def test_sfm_file_of_another_length_is_refused(broken):
    root, _ = broken
    entry = F.SfmEntry(np.eye(3), 1.0, np.zeros(2))
    F.write_sfm(F.sfm_path(root / "cache", "train"), [entry], np.zeros((3, 15)), np.ones((1, 3)))
    with pytest.raises(F.StageError, match="1 sfm_anno entries for 9 images"):
        import_cub.import_cub(root / "CUB_200_2011", root / "cache", root / "out",
                              splits=["train"], progress=False)


# ------------------------------------------------------------------------- crop rules


def test_padded_square_window_by_hand():
    # bbox 40 x 20 px: pad 2 px in x and 1 px in y, then grow y to 44 px, centred.
    np.testing.assert_allclose(padded_box([10, 20, 49, 39]), [8, 19, 51, 40])
    np.testing.assert_array_equal(crop_window([10, 20, 49, 39]), [8, 8, 51, 51])
    # Halves round to even like Python 3's round: -0.5 -> 0, 9.5 -> 10, 5.5 -> 6.
    np.testing.assert_array_equal(crop_window([0, 0, 9, 19]), [-6, -1, 15, 20])


def test_crop_maps_keypoints_and_fills_outside_white():
    image = np.zeros((60, 60, 3))
    kp = np.zeros((15, 3))
    kp[0] = (30, 30, 1)
    kp[1] = (8, 8, 1)
    crop = crop_example(image, np.ones((60, 60)), [10, 20, 49, 39], kp, size=256)
    np.testing.assert_array_equal(crop.window, [8, 8, 51, 51])
    np.testing.assert_allclose(crop.keypoints[0], [22 * 256 / 44, 22 * 256 / 44, 1])
    np.testing.assert_allclose(crop.normalized_keypoints()[0], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(crop.normalized_keypoints()[1], [-1.0, -1.0, 1.0])
    assert np.all(crop.normalized_keypoints()[2:] == 0)
    window = cut(np.zeros((60, 60)), [-6, -1, 15, 20], fill=1.0)
    assert window.shape == (22, 22)
    assert np.all(window[:, :6] == 1.0) and np.all(window[0] == 1.0)
    assert np.all(window[1:, 6:] == 0.0)


def test_bilinear_resize_matches_the_half_pixel_grid():
    a, b, c, d = 0.0, 1.0, 2.0, 4.0
    out = resize_bilinear(np.array([[a, b], [c, d]]), 4)
    # Output column 1 samples source x = 0.25: 0.75 a + 0.25 b; edges clamp.
    np.testing.assert_allclose(out[0], [a, 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b, b])
    np.testing.assert_allclose(out[1, 1], 0.75 * (0.75 * a + 0.25 * b) + 0.25 * (0.75 * c + 0.25 * d))


def test_soft_mask_and_jitter():
    mask = np.zeros((40, 40))
    mask[10:30, 10:30] = 1
    crop = crop_example(np.ones((40, 40, 3)), mask, [10, 10, 29, 29], np.zeros((15, 3)), size=16)
    # Window [9, 9, 30, 30] (22 px) -> 16 px: the mask's border becomes fractional.
    np.testing.assert_array_equal(crop.window, [9, 9, 30, 30])
    assert crop.mask.max() == 1.0 and np.any((crop.mask > 0) & (crop.mask < 1))
    j1 = crop_window([10, 10, 29, 29], jitter=0.05, rng=np.random.default_rng(3))
    j2 = crop_window([10, 10, 29, 29], jitter=0.05, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(j1, j2)
    with pytest.raises(ValueError):
        padded_box([0, 0, 1, 1], jitter=0.05)


def test_mirror_swaps_left_and_right_and_twice_is_identity():
    kp = np.zeros((15, 3))
    kp[6] = (40, 50, 1)  # Left Eye
    kp[1] = (70, 20, 1)  # Beak
    sfm = SfmCamera(30.0, np.array([50.0, 40.0]), np.eye(3))
    crop = crop_example(np.random.default_rng(0).random((100, 100, 3)), np.ones((100, 100)),
                        [0, 0, 99, 99], kp, size=64, sfm=sfm)
    flipped = mirror_example(crop)
    assert flipped.keypoints[6, 2] == 0 and flipped.keypoints[10, 2] == 1  # now the Right Eye
    np.testing.assert_allclose(flipped.keypoints[10, 0], 63 - crop.keypoints[6, 0])
    np.testing.assert_array_equal(flipped.image, crop.image[:, ::-1])
    np.testing.assert_allclose(flipped.sfm.rotation, np.eye(3))  # F I F = I
    back = mirror_example(flipped)
    np.testing.assert_allclose(back.keypoints, crop.keypoints, atol=1e-12)
    np.testing.assert_array_equal(back.image, crop.image)
    np.testing.assert_allclose(back.sfm.translation, crop.sfm.translation, atol=1e-12)


def test_a_failing_split_leaves_the_previous_tables_untouched(synthetic, tmp_path):
    # A first import writes the set; a second one whose test annotations are damaged fails with
    # one line and leaves that set as it was (no new train table beside an old quarantine table).
    import shutil

    root = synthetic
    cache = tmp_path / "cache"
    shutil.copytree(root / "birds" / "cachedir", cache)
    out = tmp_path / "out"
    import_cub.import_cub(root / "birds" / "CUB_200_2011", cache, out, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["quarantine.parquet", "test.parquet", "train.parquet", "val.parquet"]
    F.annotation_path(cache, "test").write_bytes(b"not a mat file")
    with pytest.raises(F.StageError, match="test_cub_cleaned.mat"):
        import_cub.import_cub(root / "birds" / "CUB_200_2011", cache, out, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging folder left either
