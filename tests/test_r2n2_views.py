"""3D-R2N2 data: render_views' ShapeNetRendering/ShapeNetVox32 layout, the reader into the view
table (metadata parsing, splits, quarantine), and the dataset's preprocessing."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import binary_dilation

from mesh_fixtures import write_mesh_table
from stages import r2n2_views, render_views
from stages.camera import transform_points
from stages.formats.binvox import read_binvox
from stages.families.r2n2.data import R2N2Views, ViewBatchSampler, make_loader, preprocess_view
from stages.r2n2_views import (
    R2N2_QUARANTINE,
    R2N2_VIEWS,
    format_metadata_line,
    original_split,
    parse_rendering_metadata,
    parse_renderings_list,
    read_pix2vox_split,
)
from stages.tables import MESHES, read_table, unpack_array
from stages.voxel_codec import decode_planes
from stages.voxelization import cube_to_voxel_space, voxelize_triangles

VIEWS, SIZE = 24, 137


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Three fixture meshes (box, sphere, cylinder) rendered and voxelized once."""
    root = tmp_path_factory.mktemp("r2n2")
    mesh_files = write_mesh_table(root / "meshes", per_class=1)
    rendering, voxels = root / "ShapeNetRendering", root / "ShapeNetVox32"
    for shard in mesh_files:
        render_views.main(["--meshes", str(shard), "--rendering-out", str(rendering), "--voxels-out", str(voxels)])
    meshes = read_table(mesh_files, MESHES)
    return root, rendering, voxels, meshes


def model_dirs(root):
    return sorted(p for p in root.glob("*/*") if p.is_dir())


# render_views -------------------------------------------------------------------------------


def test_layout_is_exactly_shapenet_rendering_and_vox32(rendered):
    _, rendering, voxels, meshes = rendered
    keys = sorted(zip(meshes.synset, meshes.mesh_id))
    assert [(p.parent.name, p.name) for p in model_dirs(rendering)] == keys
    assert [(p.parent.name, p.name) for p in model_dirs(voxels)] == keys
    names = [f"{i:02d}.png" for i in range(VIEWS)]
    for folder in model_dirs(rendering):
        assert sorted(p.name for p in folder.iterdir()) == ["rendering"]
        files = sorted(p.name for p in (folder / "rendering").iterdir())
        assert files == sorted(names + ["renderings.txt", "rendering_metadata.txt"])
        assert (folder / "rendering" / "renderings.txt").read_text() == "".join(f"{n}\n" for n in names)
    for folder in model_dirs(voxels):
        assert [p.name for p in folder.iterdir()] == ["model.binvox"]
    # No temporary folder survives.
    assert not [p for p in (*rendering.rglob(".*"), *voxels.rglob(".*"))]


def test_views_are_rgba_with_transparent_background(rendered):
    _, rendering, _, _ = rendered
    for folder in model_dirs(rendering):
        for view in (0, 11, 23):
            with Image.open(folder / "rendering" / f"{view:02d}.png") as image:
                assert image.format == "PNG" and image.mode == "RGBA" and image.size == (SIZE, SIZE)
                rgba = np.asarray(image)
            alpha = rgba[..., 3]
            assert set(np.unique(alpha)) == {0, 255}
            assert (alpha[[0, 0, -1, -1], [0, -1, 0, -1]] == 0).all()  # corners
            assert (rgba[alpha == 0, :3] == 0).all()
            assert 0.02 < (alpha > 0).mean() < 0.6  # the object fills a fair part of the frame


def test_metadata_ranges_and_determinism(rendered):
    _, rendering, _, _ = rendered
    for folder in model_dirs(rendering):
        meta = parse_rendering_metadata((folder / "rendering" / "rendering_metadata.txt").read_text())
        assert meta.shape == (VIEWS, 5)
        az, el, inplane, ratio, fov = meta.T
        assert ((0 <= az) & (az < 360)).all() and ((25 <= el) & (el < 30)).all()
        assert ((0.65 <= ratio) & (ratio < 0.95)).all()
        assert (inplane == 0).all() and (fov == 25).all()
        synset, model_id = folder.parent.name, folder.name
        for view in (0, 7):
            pose = render_views.view_pose(0, synset, model_id, view)
            assert np.array_equal(meta[view], [pose.azimuth, pose.elevation, pose.inplane, pose.distance_ratio, pose.fov])
    a = render_views.view_pose(0, "03001627", "x", 3)
    assert a == render_views.view_pose(0, "03001627", "x", 3)
    assert a != render_views.view_pose(1, "03001627", "x", 3) != render_views.view_pose(0, "03001627", "x", 4)


def test_camera_follows_the_released_convention():
    # az 0, el 0: on +x; az 90: on +z; el 90: straight above (+y); distance ratio * 1.75.
    pose = render_views.ViewPose(0.0, 0.0, 0.0, 0.8, 25.0)
    assert np.allclose(render_views.camera_position(pose), [1.4, 0, 0])
    assert np.allclose(render_views.camera_position(render_views.ViewPose(90.0, 0.0, 0.0, 0.8, 25.0)), [0, 0, 1.4])
    assert np.allclose(render_views.camera_position(render_views.ViewPose(0.0, 90.0, 0.0, 0.8, 25.0)), [0, 1.4, 0])
    # Up is up and the picture is not mirrored: seen from +x, +y is at the top and +z (which
    # is to the camera's left when it looks down -x with +y up) is on the left.
    transform = render_views.world_to_image(pose)
    top, left = transform_points(transform, np.array([[0, 0.2, 0], [0, 0, 0.2]]))
    assert top[1] < 0 and abs(top[0]) < 1e-12
    assert left[0] < 0 and abs(left[1]) < 1e-12


def test_voxels_match_our_voxelizer_in_the_binvox_cube(rendered):
    _, _, voxels, meshes = rendered
    for row in meshes.itertuples():
        vertices = unpack_array(row.vertices, "<f4", (-1, 3)).astype(np.float64)
        faces = unpack_array(row.faces, "<i4", (-1, 3))
        vox = read_binvox(voxels / row.synset / row.mesh_id / "model.binvox")
        lo, hi = vertices.min(0), vertices.max(0)
        side = (hi - lo).max()
        assert vox.scale == pytest.approx(side)
        assert np.allclose(vox.translate + side / 2, (lo + hi) / 2)  # binvox -cb: centred cube
        expected = voxelize_triangles(cube_to_voxel_space(vertices[faces], vox.translate, side, 32), 32, backend="cpu")
        assert np.array_equal(vox.grid, expected.transpose(2, 1, 0))
        # The largest extent spans the whole grid along its axis.
        axis = int(np.argmax(hi - lo))
        filled = np.flatnonzero(vox.grid.any(axis=tuple(a for a in range(3) if a != axis)))
        assert filled[0] == 0 and filled[-1] == 31


def test_voxels_project_onto_the_views(rendered):
    """Voxels and views share one frame: every occupied voxel's centre projects onto the object,
    up to the distance from a voxel centre to the surface it touches (half a voxel diagonal)."""
    _, rendering, voxels, _ = rendered
    focal = SIZE / 2 / np.tan(np.radians(render_views.BLENDER_FOV_DEG) / 2)
    for folder in model_dirs(rendering):
        vox = read_binvox(voxels / folder.parent.name / folder.name / "model.binvox")
        centres = vox.translate + vox.scale * (np.argwhere(vox.grid) + 0.5) / 32
        meta = parse_rendering_metadata((folder / "rendering" / "rendering_metadata.txt").read_text())
        for view in (0, 5, 17):
            nearest = meta[view, 3] * 1.75 - np.linalg.norm(centres, axis=1).max()
            margin = int(np.ceil(focal * np.sqrt(3) / 2 * vox.scale / 32 / nearest))
            p = transform_points(render_views.world_to_image(render_views.ViewPose(*meta[view])), centres)
            cols = np.clip(((p[:, 0] + 1) * SIZE / 2).astype(int), 0, SIZE - 1)
            rows = np.clip(((p[:, 1] + 1) * SIZE / 2).astype(int), 0, SIZE - 1)
            alpha = np.asarray(Image.open(folder / "rendering" / f"{view:02d}.png"))[..., 3] > 0
            assert binary_dilation(alpha, np.ones((3, 3)), iterations=margin + 1)[rows, cols].all()
            assert alpha[rows, cols].mean() > 0.95
            assert alpha[rows, SIZE - 1 - cols].mean() < alpha[rows, cols].mean()  # not mirrored


def test_rerun_skips_finished_models(rendered, tmp_path, capsys):
    root, rendering, voxels, _ = rendered
    before = {p: p.stat().st_mtime_ns for p in rendering.rglob("00.png")}
    shard = root / "meshes" / "shard-00000.parquet"
    render_views.main(["--meshes", str(shard), "--rendering-out", str(rendering), "--voxels-out", str(voxels)])
    assert "0 models rendered" in capsys.readouterr().err
    assert before == {p: p.stat().st_mtime_ns for p in rendering.rglob("00.png")}


# The reader -------------------------------------------------------------------------------


def test_metadata_parsing_is_tolerant_of_whitespace():
    text = "\n 290.10703234753094  26.4421\t0 0.770787 25   \r\n\n\t\n1 2 3 4 5"
    meta = parse_rendering_metadata(text)
    assert meta.shape == (2, 5)
    assert meta[0].tolist() == [290.10703234753094, 26.4421, 0, 0.770787, 25]
    assert meta[1].tolist() == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="line 2"):
        parse_rendering_metadata("1 2 3 4 5\n1 2 3 4\n")
    with pytest.raises(ValueError, match="not numbers"):
        parse_rendering_metadata("1 2 three 4 5")
    assert parse_renderings_list("00.png\n 01.png \r\n\n") == ["00.png", "01.png"]


def test_metadata_lines_are_written_like_the_released_files():
    line = "222.956664706 28.6626066017 0 0.926673522361 25"
    assert format_metadata_line(parse_rendering_metadata(line)[0]) == line


def test_original_split_rule():
    ids = [f"m{i}" for i in (7, 3, 9, 1, 0, 5, 2, 8, 6, 4)]  # class A, unsorted, 10 models
    keys = [("A", m) for m in ids] + [("B", "z"), ("B", "y"), ("B", "x"), ("C", "only")]
    split = original_split(keys)
    assert [m for m in sorted(ids) if split[("A", m)] == "train"] == [f"m{i}" for i in range(8)]
    assert [split[("A", m)] for m in ("m8", "m9")] == ["test", "test"]
    # int(3 * 0.8) = 2 train; int(1 * 0.8) = 0: a lone model is a test model.
    assert [split[("B", m)] for m in "xyz"] == ["train", "train", "test"]
    assert split[("C", "only")] == "test"


def test_pix2vox_split_file(tmp_path):
    path = tmp_path / "ShapeNet.json"
    path.write_text(json.dumps([{"taxonomy_id": "03001627", "taxonomy_name": "chair", "train": ["a"], "val": ["b"], "test": ["c"]}]))
    assert read_pix2vox_split(path) == {("03001627", "a"): "train", ("03001627", "b"): "val", ("03001627", "c"): "test"}


def build_table(rendering, voxels, tmp_path, *extra):
    out, quarantine = tmp_path / "views.parquet", tmp_path / "quarantine.parquet"
    r2n2_views.main(["--rendering", str(rendering), "--voxels", str(voxels), "--out", str(out), "--quarantine", str(quarantine), *extra])
    return out, read_table(out, R2N2_VIEWS), read_table(quarantine, R2N2_QUARANTINE)


def test_table_holds_the_files(rendered, tmp_path):
    _, rendering, voxels, meshes = rendered
    _, table, quarantine = build_table(rendering, voxels, tmp_path)
    assert len(table) == len(meshes) and quarantine.empty
    for row in table.itertuples():
        folder = rendering / row.synset / row.model_id / "rendering"
        assert list(row.images) == [(folder / f"{i:02d}.png").read_bytes() for i in range(VIEWS)]
        meta = unpack_array(row.metadata, "<f8", (VIEWS, 5))
        assert np.array_equal(meta, parse_rendering_metadata((folder / "rendering_metadata.txt").read_text()))
        grid = decode_planes(row.voxels, 1, 32)[0]
        binvox = read_binvox(voxels / row.synset / row.model_id / "model.binvox").grid
        assert np.array_equal(grid, binvox.transpose(2, 1, 0))  # stored [z, y, x]
        assert row.occupied == grid.sum() > 0
        assert row.split == "test"  # one model per class: int(1 * 0.8) = 0 train


def test_broken_folders_are_quarantined(rendered, tmp_path):
    _, rendering, voxels, _ = rendered
    rendering_copy, voxels_copy = tmp_path / "R", tmp_path / "V"
    shutil.copytree(rendering, rendering_copy)
    shutil.copytree(voxels, voxels_copy)
    models = model_dirs(rendering_copy)
    (models[0] / "rendering" / "05.png").unlink()
    (voxels_copy / models[1].parent.name / models[1].name / "model.binvox").write_bytes(b"#binvox 1\ndim 32 32 32\ndata\n\x00\x10")
    _, table, quarantine = build_table(rendering_copy, voxels_copy, tmp_path)
    assert table.model_id.tolist() == [models[2].name]
    reasons = dict(zip(quarantine.model_id, quarantine.reason))
    assert reasons[models[0].name] == "missing image 05.png"
    assert reasons[models[1].name].startswith("unreadable model.binvox")


# The dataset ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table_path(rendered, tmp_path_factory):
    _, rendering, voxels, _ = rendered
    out, _, _ = build_table(rendering, voxels, tmp_path_factory.mktemp("table"))
    return out


def alpha_of(dataset, index, view):
    return np.asarray(Image.open(io.BytesIO(dataset.view_png(index, view))))[..., 3]


def test_test_views_are_centre_crops_on_240(table_path):
    dataset = R2N2Views(table_path, "test", train=False)
    item = dataset[(0, (0, 3), 0)]
    assert item["views"].shape == (2, 3, 127, 127) and item["views"].dtype == torch.float32
    assert item["voxels"].shape == (32, 32, 32) and item["voxels"].dtype == torch.int64
    assert set(item["voxels"].unique().tolist()) == {0, 1}
    for k, view in enumerate((0, 3)):
        empty = torch.from_numpy(alpha_of(dataset, 0, view)[5:132, 5:132] == 0)
        values = item["views"][k][:, empty]
        assert torch.equal(values, torch.full_like(values, np.float32(240) / np.float32(255)))
        assert torch.equal(torch.round(values * 255), torch.full_like(values, 240))
    assert torch.equal(dataset[(0, (0, 3), 0)]["views"], dataset[(0, (0, 3), 99)]["views"])  # no randomness


def test_training_views_are_random_crops_on_random_backgrounds(table_path):
    dataset = R2N2Views(table_path, "test", train=True)  # the only non-empty split of 3 models
    item = dataset[(0, (2,), 5)]
    assert item["views"].shape == (1, 3, 127, 127)
    assert torch.equal(item["views"], dataset[(0, (2,), 5)]["views"])  # a seed fixes everything
    backgrounds = set()
    for seed in range(12):
        view = dataset[(0, (2,), seed)]["views"][0]
        corner = torch.round(view[:, 0, 0] * 255)  # corners stay background under any crop
        assert ((225 <= corner) & (corner <= 255)).all()
        backgrounds.add(tuple(corner.tolist()))
    assert len(backgrounds) > 1
    # A dark square at rows 60..69: a crop starting at row 0..10 puts its top at 60..50.
    rgba = np.zeros((137, 137, 4), np.uint8)
    rgba[60:70, 60:70] = (10, 20, 30, 255)
    tops = set()
    for seed in range(30):
        view = preprocess_view(rgba, True, np.random.default_rng(seed))
        assert view.shape == (3, 127, 127)
        tops.add(int(np.argwhere(view[0] < 0.5)[:, 0].min()))
    assert len(tops) > 3 and tops <= set(range(50, 61))


def test_batches_share_a_view_count_and_are_deterministic(table_path):
    dataset = R2N2Views(table_path, "test", train=True)

    def batches(seed):
        loader = make_loader(dataset, batch_size=2, max_views=5, seed=seed)
        loader.batch_sampler.set_epoch(1)
        return list(loader)

    first, again, other = batches(3), batches(3), batches(4)
    for a, b in zip(first, again):
        assert torch.equal(a["views"], b["views"]) and torch.equal(a["view_indices"], b["view_indices"])
    assert any(not torch.equal(a["view_indices"], b["view_indices"]) for a, b in zip(first, other))
    for batch in first:
        n = batch["views"].shape[1]
        assert 1 <= n <= 5 and batch["view_indices"].shape == (2, n)
        assert all(len(set(row.tolist())) == n for row in batch["view_indices"])  # distinct views


def test_view_counts_vary_and_test_views_are_the_first(table_path):
    sampler = ViewBatchSampler([[0, 1]] * 50, total_views=24, max_views=5, seed=0)
    counts = {len(batch[0][1]) for batch in sampler}
    assert counts == {1, 2, 3, 4, 5}
    dataset = R2N2Views(table_path, "test", train=False)
    batch = next(iter(make_loader(dataset, batch_size=3, num_views=4)))
    assert batch["view_indices"].tolist() == [[0, 1, 2, 3]] * 3


def test_ranks_split_the_test_set_without_repeats(table_path):
    dataset = R2N2Views(table_path, "test", train=False)
    seen = [m for rank in range(2) for batch in make_loader(dataset, 1, num_replicas=2, rank=rank) for m in batch["model_id"]]
    assert sorted(seen) == sorted(dataset.model_ids)
