"""render and voxelize stages on a small scene table: alignment, determinism, visible fractions."""

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import binary_dilation

from stages import make_scenes, render, voxelize
from stages.camera import image_to_pixel, transform_points
from stages.rendering.shading import render_object_ids
from stages.scene_geometry import mesh_shard_files, place_scenes
from stages.tables import RENDERS, SCENES, VOXELS, read_table, unpack_array
from stages.voxel_codec import decode_planes, labels_from_planes

SIZE, RES = 48, 32


@pytest.fixture
def tables(tmp_path, mesh_table):
    scenes = tmp_path / "scenes"
    make_scenes.main(["synthetic", "--meshes", *map(str, mesh_table), "--dataset", "pairs", "--objects", "2",
                      "--count", "train=5", "--shard-size", "5", "--out", str(scenes)])
    shard = scenes / "train" / "shard-00000.parquet"
    common = ["--scenes", str(shard), "--meshes", *map(str, mesh_table), "--scheduler", "sync", "--partition-size", "2"]
    render.main([*common, "--realism", "low", "--size", str(SIZE), "--out", str(tmp_path / "low.parquet")])
    render.main([*common, "--realism", "high", "--size", str(SIZE), "--out", str(tmp_path / "high.parquet")])
    voxelize.main(["scenes", *common, "--resolution", str(RES), "--backend", "cpu", "--out", str(tmp_path / "vox.parquet")])
    return tmp_path, shard, mesh_table


def test_voxels_project_onto_the_rendered_objects(tables):
    tmp, shard, mesh_files = tables
    scenes = read_table(shard, SCENES)
    voxels = read_table(tmp / "vox.parquet", VOXELS).set_index("scene_id")
    placed = {s.scene_id: s for s in place_scenes(scenes, mesh_shard_files(mesh_files))}
    for scene_id, scene in placed.items():
        row = voxels.loc[scene_id]
        labels = labels_from_planes(decode_planes(row.grid, row.num_objects, RES))
        ids = render_object_ids(
            [render.SceneObject(o.vertices, o.faces, np.ones(3)) for o in scene.objects],
            np.eye(4), scene.camera_transform, SIZE, SIZE,
        )
        to_pixel = image_to_pixel(SIZE, SIZE) @ scene.camera_transform
        for index in range(len(scene.objects)):
            k, j, i = np.nonzero(labels == index + 1)
            centres = (np.stack([i, j, k], 1) + 0.5) / RES
            pixels = np.floor(transform_points(to_pixel, centres)[:, :2]).astype(int)
            projected = np.zeros((SIZE, SIZE), bool)
            projected[pixels[:, 1], pixels[:, 0]] = True
            silhouette = render_object_ids([render.SceneObject(scene.objects[index].vertices, scene.objects[index].faces, np.ones(3))], np.eye(4), scene.camera_transform, SIZE, SIZE) == 0
            # Voxel centres of an object fall within a voxel of its own silhouette: a voxel at the
            # front of the cube spans 48 / 32 / 0.87 < 2 pixels, so dilate by 2 pixels.
            near = binary_dilation(silhouette, iterations=2)
            assert near[projected].mean() > 0.98, (scene_id, index)
            assert projected[silhouette].mean() > 0.6, (scene_id, index)
        assert ids.max() == len(scene.objects) - 1


def test_renders_are_deterministic_and_record_visibility(tables, tmp_path):
    tmp, shard, mesh_files = tables
    low = read_table(tmp / "low.parquet", RENDERS)
    high = read_table(tmp / "high.parquet", RENDERS)
    assert list(low.scene_id) == list(read_table(shard, SCENES).scene_id)
    again = tmp_path / "again.parquet"
    render.main(["--scenes", str(shard), "--meshes", *map(str, mesh_files), "--scheduler", "sync",
                 "--realism", "high", "--size", str(SIZE), "--out", str(again)])
    pd.testing.assert_frame_equal(read_table(again, RENDERS), high)
    for row in low.itertuples():
        image = np.array(Image.open(io.BytesIO(row.image)))
        assert image.shape == (SIZE, SIZE, 3)
        fractions = unpack_array(row.visible_fractions, "<f4", (-1,))
        assert np.all((fractions >= 0) & (fractions <= 1)) and fractions.max() > 0.5
    assert not np.array_equal(np.array(Image.open(io.BytesIO(low.image[0]))), np.array(Image.open(io.BytesIO(high.image[0]))))


def test_voxelize_dask_workers_match_in_process(tables, tmp_path):
    tmp, shard, mesh_files = tables
    out = tmp_path / "dask.parquet"
    voxelize.main(["scenes", "--scenes", str(shard), "--meshes", *map(str, mesh_files), "--resolution", str(RES),
                   "--backend", "cpu", "--threads", "2", "--partition-size", "2", "--out", str(out)])
    pd.testing.assert_frame_equal(read_table(out, VOXELS), read_table(tmp / "vox.parquet", VOXELS))


def test_missing_mesh_is_a_clear_error(tables, tmp_path):
    tmp, shard, mesh_files = tables
    with pytest.raises(Exception, match="absent from the meshes table"):
        # Only one of the two mesh shards: some scenes refer to meshes it does not hold.
        voxelize.main(["scenes", "--scenes", str(shard), "--meshes", str(mesh_files[0]), "--resolution", "16",
                       "--backend", "cpu", "--scheduler", "sync", "--out", str(tmp_path / "x.parquet")])
    assert not (tmp_path / "x.parquet").exists()
