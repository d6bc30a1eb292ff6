"""import_pix3d: a tiny release in Pix3D's layout (pix3d.json, img/, mask/, model/) written here,
with good and bad entries whose table rows, grids and quarantine reasons are known."""

from __future__ import annotations

import io
import itertools
import json
import math

import numpy as np
import pytest
from PIL import Image

from stages import import_pix3d
from stages.cli import run
from stages.formats.obj import write_obj
from stages.import_pix3d import (
    EntryError,
    canonical_cube,
    crop_window,
    cut_out,
    parse_entry,
    voxelize_model,
)
from stages.pix3d_tables import FRAME, PIX3D, PIX3D_QUARANTINE
from stages.tables import read_table
from stages.voxel_codec import decode_planes

BACKGROUND = 240
RES = 4
# Model coordinates are voxel coordinates at RES = 4 shifted by OFFSET (the cube maps any offset away).
OFFSET = np.array([10.0, -3.0, 5.0])


def box_mesh(lo, hi):
    """An axis-aligned box: vertices [8, 3], faces [12, 3] wound outwards."""
    (x0, y0, z0), (x1, y1, z1) = lo, hi
    v = np.array([[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)], dtype=np.float64)
    f = [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
    return v, np.array(f, dtype=np.int64)


def write_boxes(path, boxes):
    """One OBJ holding several (overlapping, as in CAD models) boxes, shifted by OFFSET."""
    vertices, faces = [], []
    for lo, hi in boxes:
        v, f = box_mesh(np.add(lo, OFFSET), np.add(hi, OFFSET))
        faces.append(f + sum(len(x) for x in vertices))
        vertices.append(v)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_obj(path, np.concatenate(vertices), np.concatenate(faces))


# An L: a foot 3.5 long in x and 1.5 high, and a bar 0.5 thick in x standing 4 high in y, both
# 1 deep in z. y is the longest extent (4), so the cube is [0, 4] in y and centred in x and z:
# voxel x = model x + 0.25, voxel z = model z + 1.5. Every face then falls inside a voxel
# (or on the grid's border), so the occupied voxels can be read off: foot i 0..3, j 0..1; bar
# i 0, j 0..3; both k 1..2. [z, y, x] indexing.
L_BOXES = [((0.0, 0.0, 0.0), (3.5, 1.5, 1.0)), ((0.0, 0.0, 0.0), (0.5, 4.0, 1.0))]
L_VOXELS = {(k, j, i) for k in (1, 2) for j, i in itertools.product(range(4), range(4)) if j <= 1 or i == 0}
# A plank: x [0, 4] (the longest), y 1.5 and z 0.5 centred: j 1..2, k 1..2, i 0..3.
PLANK_BOXES = [((0.0, 0.0, 0.0), (4.0, 1.5, 0.5))]
PLANK_VOXELS = {(k, j, i) for k in (1, 2) for j in (1, 2) for i in range(4)}


def occupied(grid):
    return {tuple(int(v) for v in idx) for idx in np.argwhere(grid)}


def save(path, array, fmt="PNG", mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path, format=fmt)


def entry(img, category="chair", model="model/chair/L/model.obj", size=(200, 150), bbox=(10, 20, 136, 120), **flags):
    stem = img.split("/", 1)[1].rsplit(".", 1)[0]
    return {
        "img": img, "category": category, "img_size": list(size), "bbox": list(bbox),
        "mask": f"mask/{stem}.png", "model": model, "voxel": model.replace("model.obj", "voxel.mat"),
        "rot_mat": np.eye(3).tolist(), "trans_mat": [0, 0, 2], "focal_length": 35.0,
        "cam_position": [0, 0, -2], "inplane_rotation": 0.0,
        "truncated": flags.get("truncated", False), "occluded": flags.get("occluded", False),
        "slightly_occluded": flags.get("slightly_occluded", False),
    }


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The release folder and the arrays its good photographs were made from."""
    root = tmp_path_factory.mktemp("pix3d")
    rng = np.random.default_rng(7)
    write_boxes(root / "model/chair/L/model.obj", L_BOXES)
    write_boxes(root / "model/desk/plank/model.obj", PLANK_BOXES)
    (root / "model/chair/flat").mkdir(parents=True)
    (root / "model/chair/flat/model.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    chair = rng.integers(0, 256, (150, 200, 3), dtype=np.uint8)
    chair_mask = np.where(rng.random((150, 200)) < 0.6, 255, 0).astype(np.uint8)
    save(root / "img/chair/0001.png", chair)
    save(root / "mask/chair/0001.png", chair_mask)
    desk = rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)
    desk_mask = np.where(rng.random((100, 150)) < 0.5, 255, 0).astype(np.uint8)
    save(root / "img/desk/0001.jpg", desk, fmt="JPEG")
    save(root / "mask/desk/0001.png", desk_mask)
    save(root / "img/chair/0009.png", np.full((300, 300), 77, np.uint8))  # grey: becomes RGB
    save(root / "mask/chair/0009.png", np.full((300, 300), 255, np.uint8))
    for stem in ("0002", "0003", "0006", "0007", "0010"):
        save(root / f"img/chair/{stem}.png", chair)
        save(root / f"mask/chair/{stem}.png", chair_mask)
    save(root / "mask/chair/0007.png", chair_mask[:100])  # wrong size
    (root / "img/chair/0005.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)  # corrupt
    save(root / "mask/chair/0005.png", chair_mask)
    save(root / "mask/chair/0004.png", chair_mask)  # its image is missing
    annotations = [
        entry("img/chair/0001.png"),                                                       # 0 good
        entry("img/desk/0001.jpg", "desk", "model/desk/plank/model.obj", (150, 100), (20, 0, 146, 50)),  # 1 good
        entry("img/chair/0002.png", truncated=True),                                       # 2
        entry("img/chair/0003.png", occluded="true"),                                      # 3 README's spelling
        entry("img/chair/0004.png"),                                                       # 4 image missing
        entry("img/chair/0005.png"),                                                       # 5 image corrupt
        entry("img/chair/0006.png", model="model/chair/gone/model.obj"),                   # 6 model missing
        entry("img/bed/0001.png", "bed", "model/bed/x/model.obj", truncated=True),         # 7 skipped
        entry("img/chair/0007.png"),                                                       # 8 mask size
        entry("img/chair/0008.png", bbox=(50, 20, 40, 120)),                               # 9 bad bbox
        entry("img/../../etc/0001.png"),                                                   # 10 escapes
        entry("img/chair/0001.png"),                                                       # 11 duplicate
        "not an object",                                                                   # 12
        entry("img/chair/0009.png", size=(300, 300), bbox=(50, 50, 250, 250), slightly_occluded=True),  # 13 good
        entry("img/chair/0010.png", model="model/chair/flat/model.obj"),                   # 14 flat model
        entry("img/sofa/0001.png", "sofa", truncated=True, occluded=True),                 # 15
    ]
    (root / "pix3d.json").write_text(json.dumps(annotations))
    return root, {"chair": (chair, chair_mask), "desk": (desk, desk_mask)}


@pytest.fixture(scope="module")
def imported(release, tmp_path_factory):
    root, _ = release
    out = tmp_path_factory.mktemp("out")
    import_pix3d.main(["--root", str(root), "--out", str(out), "--resolution", str(RES), "--partition-size", "2"])
    return read_table(out / "pix3d.parquet", PIX3D), read_table(out / "quarantine.parquet", PIX3D_QUARANTINE)


def decoded(png):
    with Image.open(io.BytesIO(png)) as image:
        assert image.mode == "RGB"
        return np.asarray(image)


# Pure functions -----------------------------------------------------------------------------


def test_crop_window_is_pix2vox_square_with_truncation_towards_zero():
    # side 126, centre (73, 70): ends int(10.0), int(136.0), int(7.0), int(133.0).
    assert crop_window((10, 20, 136, 120)) == (10, 7, 136, 133)
    # side 126, centre y 25.5: int(-37.5) = -37 (towards zero), int(88.5) = 88 -> 127 x 126.
    assert crop_window((20, 1, 146, 50)) == (20, -37, 146, 88)
    # taller than wide: the side is the height.
    assert crop_window((0, 0, 10, 40)) == (-15, 0, 25, 40)


def test_cut_out_blends_partial_mask_and_pads_with_background():
    rgb = np.full((4, 4, 3), 100, np.uint8)
    mask = np.array([[255, 128, 0, 255]] * 4, np.uint8)
    # bbox (0, 0, 4, 2): side 4, centre (2, 1) -> window x 0..4, y -1..3: a 5 x 5 square whose
    # last column and first row lie outside the image.
    out = cut_out(rgb, mask, (0, 0, 4, 2), size=5, background=BACKGROUND)
    half = round(100 * 128 / 255 + 240 * 127 / 255)  # 169.73 -> 170
    assert half == 170
    assert out[0].tolist() == [[240] * 3] * 5
    assert out[1:].tolist() == [[[100] * 3, [half] * 3, [240] * 3, [100] * 3, [240] * 3]] * 4


def test_canonical_cube_is_centred_on_the_box():
    corner, side = canonical_cube(np.array([[1.0, 2.0, 3.0], [3.0, 10.0, 4.0]]))
    assert side == 8.0
    assert corner.tolist() == [-2.0, 2.0, -0.5]


def test_l_shape_voxelizes_in_the_canonical_frame(release):
    root, _ = release
    grid = voxelize_model(root / "model/chair/L/model.obj", RES)
    assert grid.shape == (RES,) * 3
    assert occupied(grid) == L_VOXELS and len(L_VOXELS) == 20
    # Not symmetric: swapping x and y, or Pix3D's voxel.mat axes (x, -z, y), would show.
    assert occupied(grid.transpose(0, 2, 1)) != L_VOXELS
    assert occupied(np.flip(grid.transpose(1, 0, 2), 1)) != L_VOXELS


def test_l_shape_at_32_matches_the_touching_rule(release):
    root, _ = release
    grid = voxelize_model(root / "model/chair/L/model.obj", 32)
    # At 32 every voxel coordinate is 8x the one at 4; a box [a, b] along an axis touches the
    # voxels ceil(a) - 1 .. floor(b) (a shared face counts), clipped to the grid.
    def span(a, b):
        return range(max(math.ceil(a) - 1, 0), min(math.floor(b), 31) + 1)

    expected = set()
    for lo, hi in L_BOXES:
        lo = 8 * (np.array(lo) + [0.25, 0.0, 1.5])
        hi = 8 * (np.array(hi) + [0.25, 0.0, 1.5])
        expected |= set(itertools.product(span(lo[2], hi[2]), span(lo[1], hi[1]), span(lo[0], hi[0])))
    assert occupied(grid) == expected
    # k 11..20; the foot i 1..30, j 0..12; the bar adds i 1..6, j 13..31.
    assert len(expected) == 10 * (30 * 13 + 6 * 19)


def test_parse_entry_accepts_readme_spelled_flags_and_names_the_problem():
    good = entry("img/chair/0001.png", truncated="false", slightly_occluded="TRUE")
    parsed = parse_entry(3, good)
    assert (parsed.index, parsed.image_id, parsed.slightly_occluded, parsed.bbox) == (3, "chair/0001", True, (10.0, 20.0, 136.0, 120.0))
    with pytest.raises(EntryError, match="img_size .* is not two positive integers") as err:
        parse_entry(0, {**good, "img_size": [200.5, 150]})
    assert err.value.kind == "annotation"
    with pytest.raises(EntryError, match="occluded is 'maybe', expected true or false"):
        parse_entry(0, {**good, "occluded": "maybe"})
    with pytest.raises(EntryError, match="bbox is .* expected 4 finite numbers"):
        parse_entry(0, {**good, "bbox": [1, 2, 3, float("nan")]})


# The command --------------------------------------------------------------------------------


def test_good_photographs_become_rows(imported):
    table, _ = imported
    # Ordered by model path, then by position in pix3d.json.
    assert table["image_id"].tolist() == ["chair/0001", "chair/0009", "desk/0001"]
    assert table["category"].tolist() == ["chair", "chair", "desk"]
    assert table["class_name"].tolist() == ["chair", "chair", "table"]
    assert table["synset"].tolist() == ["03001627", "03001627", "04379243"]
    assert table["slightly_occluded"].tolist() == [False, True, False]
    assert set(table["frame"]) == {FRAME} and set(table["resolution"]) == {RES}
    assert set(table["size"]) == {127} and set(table["background"]) == {BACKGROUND}
    assert table["occupied"].tolist() == [20, 20, 16]
    grids = [decode_planes(v, 1, RES)[0] for v in table["voxels"]]
    assert [occupied(g) for g in grids] == [L_VOXELS, L_VOXELS, PLANK_VOXELS]


def test_image_is_masked_window_on_background(imported, release):
    table, _ = imported
    _, arrays = release
    chair, mask = arrays["chair"]
    # Window x 10..136, y 7..133: exactly 127 x 127, so no resize.
    expected = np.where(mask[7:134, 10:137, None] == 255, chair[7:134, 10:137], BACKGROUND)
    assert np.array_equal(decoded(table["image"][0]), expected)


def test_window_above_the_image_is_background_and_jpeg_decodes(imported, release):
    table, _ = imported
    root, arrays = release
    with Image.open(root / "img/desk/0001.jpg") as jpeg:
        desk = np.asarray(jpeg.convert("RGB"))  # the JPEG's pixels, not the array it was saved from
    _, mask = arrays["desk"]
    # bbox (20, 0, 146, 50): window x 20..146, y -38..88: 38 rows above the photograph.
    image = decoded(table["image"][2])
    assert image.shape == (127, 127, 3)
    assert (image[:38] == BACKGROUND).all()
    assert np.array_equal(image[38:], np.where(mask[0:89, 20:147, None] == 255, desk[0:89, 20:147], BACKGROUND))


def test_resized_window_of_a_grey_photograph(imported):
    table, _ = imported
    # A 201 x 201 window of a uniform grey photograph, fully masked, shrunk to 127.
    assert np.array_equal(decoded(table["image"][1]), np.full((127, 127, 3), 77, np.uint8))


def test_bad_entries_are_quarantined_with_reasons(imported):
    _, quarantine = imported
    rows = {r.index: (r.kind, r.reason) for r in quarantine.itertuples()}
    assert sorted(rows) == [2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 14, 15]
    assert rows[2] == ("truncated", "Pix3D flags the object truncated")
    assert rows[3] == ("occluded", "Pix3D flags the object occluded")
    assert rows[15] == ("truncated", "Pix3D flags the object truncated and occluded")
    assert rows[4] == ("image", "image file missing: 0004.png")
    assert rows[5][0] == "image" and rows[5][1].startswith("image unreadable: 0005.png: ")
    assert rows[6] == ("model", "model file missing: model.obj")
    assert rows[8] == ("mask", "mask 0007.png is 200x100, img_size says 200x150")
    assert rows[9] == ("annotation", "bbox [50, 20, 40, 120] is not a box inside the 200x150 image")
    assert rows[10] == ("annotation", "img path 'img/../../etc/0001.png' leaves the release folder")
    assert rows[11] == ("annotation", "image img/chair/0001.png repeats entry 0")
    assert rows[12] == ("annotation", "entry is str, expected an object")
    assert rows[14] == ("model", "model unusable: model.obj: all 1 faces are degenerate (zero area)")
    assert quarantine.loc[quarantine["index"] == 6, ["img", "category", "model"]].values.tolist() == [
        ["img/chair/0006.png", "chair", "model/chair/gone/model.obj"]
    ]
    assert quarantine.loc[quarantine["index"] == 12, ["img", "category", "model"]].values.tolist() == [["", "", ""]]


def test_counts_are_printed(release, tmp_path, capsys):
    root, _ = release
    import_pix3d.main(["--root", str(root), "--out", str(tmp_path), "--resolution", str(RES)])
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"import_pix3d: 3 images (chair 2, desk 1), 12 quarantined (annotation 4, image 2, mask 1, "
        f"model 2, occluded 1, truncated 2), 1 skipped, no ShapeNet class (bed 1), of 16 entries -> {tmp_path}"
    )


def test_unusable_annotation_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "pix3d.json").write_text('{"img": "img/chair/0001.png"}')
    with pytest.raises(SystemExit) as exit_:
        run(import_pix3d.main, ["--root", str(tmp_path), "--out", str(tmp_path / "out")], prog="import_pix3d")
    assert exit_.value.code == 1
    assert capsys.readouterr().err == f"import_pix3d: {tmp_path / 'pix3d.json'}: expected a list of annotations, found dict\n"
    (tmp_path / "pix3d.json").write_text("[{")
    with pytest.raises(SystemExit):
        run(import_pix3d.main, ["--root", str(tmp_path), "--out", str(tmp_path / "out")], prog="import_pix3d")
    assert "pix3d.json: not valid JSON: Expecting property name enclosed in double quotes at line 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
