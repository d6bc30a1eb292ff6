import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from stages import make_scenes
from stages.camera import corenet_camera_transform, image_to_pixel, transform_points
from stages.formats.corenet_npz import CorenetSceneError, image_to_png, read_corenet_scene
from stages.make_scenes import SCENE_QUARANTINE
from stages.scene_layout import FLOOR_Y, MARGIN, MeshBounds, place_objects, world_bounds
from stages.splits import SplitFractions, assign_mesh_splits
from stages.tables import MESHES, RENDERS, SCENES, read_table, unpack_array


def test_corenet_camera_projects_cube_corners():
    # With a 60 degree field of view from z = -0.8666666, the cube's front face (z = 0) almost
    # exactly fills the image; world +y is at the top (row 0), +x at the right. Hand-derived:
    # a point at depth d and offset 0.5 from the axis lands 0.5 / (d tan 30deg) half-images out.
    m = image_to_pixel(100, 100) @ corenet_camera_transform()
    corners = transform_points(m, np.array([[0, 1, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0], [0.5, 0.5, 0.5]]))
    front = 50 * 0.5 / (0.8666666 * math.tan(math.radians(30)))
    expected = np.array([[50 - front, 50 - front], [50 + front, 50 - front], [50 - front, 50 + front], [50 + front, 50 + front], [50, 50]])
    np.testing.assert_allclose(corners[:, :2], expected, atol=1e-4)
    assert front == pytest.approx(49.963, abs=1e-3)
    back = transform_points(m, np.array([[1.0, 1.0, 1.0]]))[0]
    half = 50 * 0.5 / (1.8666666 * math.tan(math.radians(30)))
    np.testing.assert_allclose(back[:2], [50 + half, 50 - half], atol=1e-4)


bounds_strategy = st.builds(
    lambda a, b, c: MeshBounds(lo=-np.array([a, b, c]) / 2, hi=np.array([a, b, c]) / 2),
    st.floats(0.05, 1.0), st.floats(0.05, 1.0), st.floats(0.05, 1.0),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(bounds_strategy, min_size=1, max_size=3), st.integers(0, 2**32 - 1))
def test_placement_inside_cube_on_floor_and_disjoint(bounds, seed):
    transforms = place_objects(bounds, np.random.default_rng(seed))
    boxes = [world_bounds(b, m) for b, m in zip(bounds, transforms)]
    for (lo, hi), m in zip(boxes, transforms):
        assert np.all(lo >= MARGIN - 1e-9) and np.all(hi <= 1 - MARGIN + 1e-9)
        assert lo[1] == pytest.approx(FLOOR_Y)
        # Only turns about the vertical axis and uniform scale: the y axis stays vertical.
        np.testing.assert_allclose(m[:3, 1] / np.linalg.norm(m[:3, 1]), [0, 1, 0], atol=1e-12)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            (alo, ahi), (blo, bhi) = boxes[i], boxes[j]
            # World boxes of the rotated bounding boxes never overlap in x-z.
            assert np.any(alo[[0, 2]] >= bhi[[0, 2]] - 1e-9) or np.any(ahi[[0, 2]] <= blo[[0, 2]] + 1e-9)


def test_splits_by_mesh():
    meshes = pd.DataFrame({"synset": ["a"] * 10 + ["b"] * 3 + ["c"] * 1, "mesh_id": [f"m{i}" for i in range(14)]})
    split = assign_mesh_splits(meshes, SplitFractions(0.8, 0.1))
    counts = split.groupby(meshes.synset).value_counts().to_dict()
    assert counts == {("a", "train"): 8, ("a", "val"): 1, ("a", "test"): 1, ("b", "train"): 1, ("b", "val"): 1, ("b", "test"): 1, ("c", "train"): 1}
    # Stable: the same meshes get the same splits whatever the row order.
    shuffled = meshes.sample(frac=1, random_state=3)
    assert assign_mesh_splits(shuffled, SplitFractions(0.8, 0.1)).sort_index().equals(split)


def _run(args):
    assert make_scenes.main(args) == 0


def test_make_scenes_no_test_mesh_in_training(tmp_path, mesh_table):
    out = tmp_path / "scenes"
    _run(["synthetic", "--meshes", *map(str, mesh_table), "--dataset", "pairs", "--objects", "2",
          "--count", "train=10", "val=3", "test=5", "--shard-size", "4", "--seed", "7", "--out", str(out)])
    scenes = read_table(out, SCENES)
    assert sorted(scenes.groupby("split").size().to_dict().items()) == [("test", 5), ("train", 10), ("val", 3)]
    assert len(list((out / "train").glob("shard-*.parquet"))) == 3
    used = {s: {m for ids in g.mesh_ids for m in ids} for s, g in scenes.groupby("split")}
    assert not used["test"] & used["train"] and not used["val"] & used["train"]
    index = read_table(mesh_table, MESHES, columns=["synset", "mesh_id"])
    expected = assign_mesh_splits(index, SplitFractions())
    test_meshes = set(index.mesh_id[expected == "test"])
    assert used["test"] <= test_meshes
    np.testing.assert_allclose(unpack_array(scenes.camera_transform[0], "<f8", (4, 4)), corenet_camera_transform())
    # One shard regenerated alone is byte-for-byte the same as in the full run.
    again = tmp_path / "again"
    _run(["synthetic", "--meshes", *map(str, mesh_table), "--dataset", "pairs", "--objects", "2",
          "--count", "train=10", "--shard", "1", "--shard-size", "4", "--seed", "7", "--out", str(again)])
    pd.testing.assert_frame_equal(read_table(again / "train" / "shard-00001.parquet", SCENES),
                                  read_table(out / "train" / "shard-00001.parquet", SCENES))


def _webp(color, size=(256, 256)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="WEBP", lossless=True)
    return out.getvalue()


def _webp_ending_in_zero() -> bytes:
    """A lossy WebP whose last byte is 0x00 (RIFF pads an odd-sized VP8 chunk with a zero)."""
    rng = np.random.default_rng(0)
    for quality in range(50, 100):
        out = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(out, format="WEBP", quality=quality)
        if out.getvalue().endswith(b"\x00"):
            return out.getvalue()
    raise AssertionError("no lossy WebP ending in 0x00 found")


def write_corenet_npz(path, k=2, **overrides):
    """A scene file in the layout CoReNet released (fields and dtypes as documented)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = dict(
        scene_filename=np.array(path.stem.encode()),
        mesh_labels=np.array(["03001627", "04379243"][:k]),
        mesh_filenames=np.array(["1a2b", "3c4d"][:k]),
        mesh_visible_fractions=np.array([0.9, 0.4][:k], dtype=np.float32),
        mesh_object_to_world_transforms=np.stack([np.eye(4) * (i + 1) for i in range(k)]).astype(np.float32),
        view_transform=np.eye(4, dtype=np.float32),
        camera_transform=corenet_camera_transform().astype(np.float32),
        opengl_image=np.array(_webp((200, 10, 10))),
        pbrt_image=np.array(_webp((10, 200, 10)), dtype=object),  # object arrays need the pickle path
    )
    fields.update(overrides)
    np.savez(path, **fields)


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_image_bytes_ending_in_zero_are_kept(tmp_path):
    encoded = _webp_ending_in_zero()
    # the bug this guards against: NumPy strips trailing NULs from a bytes scalar
    assert np.array(encoded).item() != encoded
    for name, value in (("s", np.array(encoded)), ("o", np.array(encoded, dtype=object))):
        write_corenet_npz(tmp_path / f"{name}.npz", opengl_image=value, pbrt_image=value)
        scene = read_corenet_scene(tmp_path / f"{name}.npz")
        assert scene.opengl_image == encoded and scene.pbrt_image == encoded
        png, width, height = image_to_png(scene.opengl_image, "x")
        assert np.array_equal(np.array(Image.open(io.BytesIO(png))), np.array(Image.open(io.BytesIO(encoded)).convert("RGB")))


def test_a_pickle_that_runs_a_command_is_refused(tmp_path):
    marker = tmp_path / "ran"
    write_corenet_npz(tmp_path / "evil.npz", pbrt_image=np.array([_RunsCommand(marker)], dtype=object).reshape(()))
    with pytest.raises(CorenetSceneError, match="evil.npz: field pbrt_image: refused pickled object: pickle references posix.system"):
        read_corenet_scene(tmp_path / "evil.npz")
    assert not marker.exists()


def test_import_corenet_scenes(tmp_path, mesh_table):
    meshes = read_table(mesh_table, MESHES, columns=["synset", "mesh_id"])
    known = (str(meshes.synset[0]), str(meshes.mesh_id[0]))
    root = tmp_path / "pairs.test"
    entries = [f"{name[:3]}/{name}.npz" for name in ("0c8aa", "1b2bb", "2c3cc", "3d4dd", "4e5ee", "5f6ff", "6a7gg")]
    write_corenet_npz(root / entries[0], k=1, mesh_labels=np.array([known[0]]), mesh_filenames=np.array([known[1]]))
    write_corenet_npz(root / entries[1])
    write_corenet_npz(root / entries[2], view_transform=np.zeros((4, 4)))
    (root / entries[3]).parent.mkdir()
    (root / entries[3]).write_bytes(b"not a zip")
    # entries[4] has no file
    write_corenet_npz(root / entries[5], pbrt_image=np.array([_RunsCommand(tmp_path / "ran")], dtype=object).reshape(()))
    write_corenet_npz(root / entries[6], opengl_image=np.array(_webp((1, 2, 3), size=(128, 128))))
    dataset_json = root / "dataset.json"
    dataset_json.write_text(json.dumps({"classes": [{"id": "03001627", "human_readable": "chair"}],
                                        "files": entries + [entries[1]]}))
    scene = read_corenet_scene(root / entries[1])
    assert scene.mesh_labels == ["03001627", "04379243"] and scene.mesh_filenames == ["1a2b", "3c4d"]
    np.testing.assert_allclose(scene.mesh_object_to_world_transforms[1], np.eye(4) * 2)

    out, renders, quarantine = tmp_path / "scenes", tmp_path / "renders", tmp_path / "quarantine"
    common = ["import-corenet", "--dataset-json", str(dataset_json), "--dataset", "pairs", "--split", "test",
              "--out", str(out), "--renders", str(renders), "--quarantine", str(quarantine)]
    _run([*common, "--shard-size", "10"])
    scenes = read_table(out, SCENES)
    assert list(scenes.scene_id) == ["pairs-test-0c8aa", "pairs-test-1b2bb"]
    assert list(scenes.num_objects) == [1, 2] and set(scenes.source) == {"corenet"}
    low = read_table(renders / "low" / "pairs", RENDERS)
    high = read_table(renders / "high" / "pairs", RENDERS)
    assert tuple(np.array(Image.open(io.BytesIO(low.image[0])))[0, 0]) == (200, 10, 10)
    assert (low.width[0], low.height[0]) == (256, 256)
    assert tuple(np.array(Image.open(io.BytesIO(high.image[1])))[2, 3]) == (10, 200, 10)
    np.testing.assert_allclose(unpack_array(low.visible_fractions[1], "<f4", (-1,)), [0.9, 0.4])
    bad = read_table(quarantine, SCENE_QUARANTINE)
    reasons = dict(zip(bad.entry, bad.reason))
    assert len(bad) == 6 and not (tmp_path / "ran").exists()
    assert "view_transform is not an invertible" in reasons[entries[2]]
    assert "unreadable npz" in reasons[entries[3]]
    assert "listed in dataset.json but no such file" in reasons[entries[4]]
    assert "refused pickled object" in reasons[entries[5]]
    assert "low-realism image is 128x128, expected 256x256" in reasons[entries[6]]
    assert list(bad.entry).count(entries[1]) == 1 and "listed twice" in reasons[entries[1]]

    # one shard alone (entries 0..2 of the json), and the meshes table check
    _run([*common, "--shard-size", "3", "--shard", "0", "--meshes", *map(str, mesh_table)])
    first = read_table(out / "test" / "shard-00000.parquet", SCENES)
    assert list(first.scene_id) == ["pairs-test-0c8aa"]
    bad = read_table(quarantine / "test" / "shard-00000.parquet", SCENE_QUARANTINE)
    assert "mesh 03001627/1a2b is not in the meshes table" in dict(zip(bad.entry, bad.reason))[entries[1]]
    with pytest.raises(SystemExit, match="--shard must be in"):
        make_scenes.main([*common, "--shard-size", "3", "--shard", "3"])
