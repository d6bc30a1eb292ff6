"""TSDF fusion, labels, marching cubes and the fuse_tsdf stage, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import trimesh

from stages.scannet_tables import FRAMES, encode_color, encode_depth, frames_shard
from stages.tables import read_table, write_shard
from stages.tsdf.fusion import (
    TSDFVolume,
    VolumeGrid,
    backproject,
    depth_point_bounds,
    fuse_frames,
    grid_for_bounds,
    level_grids,
    project,
    valid_depth,
)
from stages.tsdf.labels import INNER, OUTER, SURFACE, fine_labels, fine_loss_mask, level_labels
from stages.tsdf.meshing import tsdf_to_mesh
from stages.tsdf.tables import TSDF_QUARANTINE, TSDF_VOLUMES, decode_volume, quarantine_shard, volumes_shard

K = np.array([[100.0, 0.0, 31.5], [0.0, 100.0, 23.5], [0.0, 0.0, 1.0]])  # 64 x 48 image
WALL_GRID = VolumeGrid((-0.2, -0.2, 0.6), 0.04, (11, 11, 16))  # voxel k at z = 0.6 + 0.04 k


def fuse_wall(depths, grid=WALL_GRID):
    volume = TSDFVolume(grid)
    for d in depths:
        volume.integrate(np.full((48, 64), d, np.float32), K, np.eye(4))
    return volume.arrays()


def test_wall_at_one_metre_column():
    # A camera at the origin looking down +z at a wall at z = 1 m; truncation 3 voxels = 0.12 m.
    # Stored t = max(-1, (z - d) / 0.12) for z - d <= 0.12, +1 with weight 0 beyond.
    tsdf, weight = fuse_wall([1.0])
    z = 0.6 + 0.04 * np.arange(16)
    expected = np.clip((z - 1.0) / 0.12, -1, 1)
    expected[13:] = 1.0
    np.testing.assert_allclose(tsdf[5, 5], expected, atol=1e-6)
    np.testing.assert_allclose(tsdf[5, 5, 8:13], [-2 / 3, -1 / 3, 0, 1 / 3, 2 / 3], atol=1e-6)
    assert weight[5, 5, :13].tolist() == [1] * 13  # z = 1.12 sits at the truncation (observed, +1)
    assert weight[5, 5, 14:].tolist() == [0, 0]
    labels = fine_labels(tsdf)[5, 5]
    assert labels.tolist() == [OUTER] * 8 + [SURFACE] * 5 + [INNER] * 3
    # Columns within |x|, |y| <= 0.12 m stay in view down to z = 0.6 and see the same wall; the
    # voxel (0.2, 0, 0.6) projects to u = 100 * 0.2 / 0.6 + 31.5 = 64.8 -> 65, outside the image.
    assert np.all(tsdf[2:9, 2:9] == tsdf[5:6, 5:6])
    assert (tsdf[10, 5, 0], weight[10, 5, 0]) == (1.0, 0)


def test_running_average_of_two_frames():
    tsdf, weight = fuse_wall([1.0, 1.06])
    # voxel k = 10 (z = 1.00): (0 + (1.00 - 1.06) / 0.12) / 2 = -0.25; k = 12 (z = 1.08):
    # (2/3 + 1/6) / 2 = 5/12; k = 14 (z = 1.16): only the second frame (0.1 / 0.12 = 5/6).
    np.testing.assert_allclose(tsdf[5, 5, [10, 12, 14]], [-0.25, 5 / 12, 5 / 6], atol=1e-6)
    assert weight[5, 5, [10, 12, 14, 15]].tolist() == [2, 2, 1, 0]


def test_project_and_backproject_known_voxel():
    # Voxel (7, 2, 10) of WALL_GRID is at (0.08, -0.12, 1.0): u = 100 * 0.08 + 31.5 = 39.5 ->
    # pixel 40 (nearest, ties up); v = 100 * -0.12 + 23.5 = 11.5 -> 12.
    point = WALL_GRID.points()[7, 2, 10]
    np.testing.assert_allclose(point, [0.08, -0.12, 1.0], atol=1e-12)
    pose = np.eye(4)
    pose[:3, 3] = [0.5, -0.25, 0.1]  # the camera moved: the voxel moves the other way
    pixels, z = project(point[None] + pose[:3, 3], K, pose)
    assert pixels.tolist() == [[40, 12]]
    np.testing.assert_allclose(z, [1.0])
    pixels, _ = project(np.array([[0.0, 0.0, -1.0]]), K, np.eye(4))
    assert pixels.tolist() == [[-1, -1]]  # behind the camera
    depth = np.zeros((48, 64), np.float32)
    depth[12, 40] = 2.0
    np.testing.assert_allclose(backproject(depth, K, pose), [[0.17 + 0.5, -0.23 - 0.25, 2.1]], atol=1e-12)


def test_volume_bounds_rule_and_levels():
    grid = grid_for_bounds(np.array([0.05, -0.3, 0.0]), np.array([1.0, 0.3, 0.5]), 0.04, 0.12, 0.16)
    # lower - margin = (-0.07, -0.42, -0.12) -> floor to 0.16: (-0.16, -0.48, -0.16);
    # upper + margin = (1.12, 0.42, 0.62) -> ceil: (1.12, 0.48, 0.64): 8, 6, 5 cells of 16 cm.
    np.testing.assert_allclose(grid.origin, [-0.16, -0.48, -0.16], atol=1e-12)
    assert grid.dims == (32, 24, 20)
    g4, g8, g16 = level_grids(grid)
    assert (g8.dims, g16.dims) == ((16, 12, 10), (8, 6, 5))
    np.testing.assert_allclose(g8.points()[3, 2, 1], g4.points()[6, 4, 2], atol=1e-12)
    with pytest.raises(ValueError):
        grid_for_bounds(np.zeros(3), np.full(3, np.nan), 0.04, 0.12, 0.16)
    depth = valid_depth(np.array([[0.5, 4.0], [np.nan, -1.0]]))
    assert depth.tolist() == [[0.5, 0.0], [0.0, 0.0]]
    assert depth_point_bounds([(np.zeros((2, 2), np.float32), K, np.eye(4))]) is None


def test_coarse_labels_force_dilated_surface():
    # A 4 cm column: outer, outer, surface at k = 2, inner beyond.
    tsdf = np.ones((4, 4, 8), np.float32)
    tsdf[:, :, :2] = -1.0
    tsdf[:, :, 2] = 0.2
    l4, l8, l16 = level_labels(tsdf)
    assert l4[0, 0].tolist() == [OUTER, OUTER, SURFACE, INNER, INNER, INNER, INNER, INNER]
    # 8 cm voxels are 4 cm voxels 0, 2, 4, 6; the surface at 2 dilates to 1..3.
    assert l8.shape == (2, 2, 4)
    assert l8[0, 0].tolist() == [OUTER, SURFACE, INNER, INNER]
    # 16 cm voxels are 8 cm voxels 0, 2; the 8 cm surface at 1 dilates to 0..2.
    assert l16[0, 0].tolist() == [SURFACE, SURFACE]
    mask = fine_loss_mask(np.stack([tsdf[0], np.ones_like(tsdf[0])]))
    assert mask[0, 0].tolist() == [True, True, True, False, False, False, False, False]
    assert mask[1].all()  # a column with no observed voxel counts whole


@pytest.mark.parametrize("wall", [1.0, 1.013])
def test_marching_cubes_places_the_wall(wall):
    tsdf, weight = fuse_wall([wall])
    mesh = tsdf_to_mesh(tsdf, weight, WALL_GRID)
    assert len(mesh.faces) > 0
    np.testing.assert_allclose(mesh.vertices[:, 2], wall, atol=1e-3)
    np.testing.assert_allclose(mesh.bounds[:, :2], [[-0.2, -0.2], [0.2, 0.2]], atol=1e-9)
    # normals face the camera (-z): from behind the surface towards observed free space
    assert np.all(mesh.face_normals[:, 2] < -0.99)


def test_marching_cubes_drops_surfaces_against_unobserved_voxels():
    tsdf = -np.ones((4, 4, 4), np.float32)  # all observed free space ...
    weight = np.ones((4, 4, 4), np.uint16)
    tsdf[:, :, 3] = 1.0  # ... next to a layer never observed (+1, weight 0)
    weight[:, :, 3] = 0
    assert len(tsdf_to_mesh(tsdf, weight, VolumeGrid((0, 0, 0), 0.04, (4, 4, 4))).faces) == 0
    weight[:, :, 3] = 1  # the same values observed: a real surface at z = 2.5 voxels
    mesh = tsdf_to_mesh(tsdf, weight, VolumeGrid((0, 0, 0), 0.04, (4, 4, 4)))
    np.testing.assert_allclose(mesh.vertices[:, 2], 0.1, atol=1e-9)


def _frames_rows(scene, depths, poses):
    return [
        {
            "scene": scene, "frame": i, "keyframe": True,
            "cam_to_world": pose.reshape(-1).tolist(), "intrinsics": K.reshape(-1).tolist(),
            "width": np.int32(64), "height": np.int32(48),
            "depth": encode_depth(np.full((48, 64), d)),
            "color": encode_color(np.zeros((48, 64, 3), np.uint8)),
        }
        for i, (d, pose) in enumerate(zip(depths, poses))
    ]


def test_fuse_tsdf_stage(tmp_path):
    from stages.fuse_tsdf import main

    eye = np.eye(4)
    shifted = np.eye(4)
    shifted[0, 3] = 0.1
    rows = _frames_rows("scene0000_00", [1.0, 1.0], [eye, shifted]) + _frames_rows("scene0001_00", [0.0, 5.0], [eye, eye])
    df = pd.DataFrame(rows)
    df["width"] = df["width"].astype("int32")
    df["height"] = df["height"].astype("int32")
    write_shard(df, frames_shard(tmp_path / "conv", "test", 0), FRAMES)
    assert main(["--frames", str(tmp_path / "conv"), "--out", str(tmp_path / "tsdf"),
                 "--meshes", str(tmp_path / "meshes")]) == 0
    volumes = read_table(volumes_shard(tmp_path / "tsdf", "test", 0), TSDF_VOLUMES)
    assert volumes["voxel_size"].tolist() == pytest.approx([0.04, 0.08, 0.16])
    assert (volumes["scene"] == "scene0000_00").all() and (volumes["frames"] == 2).all()
    grid, tsdf, weight = decode_volume(volumes.iloc[0])
    # Depth points span x in [-0.315, 0.415], y in [-0.235, 0.235], z = 1; +0.12 margin, 16 cm lattice.
    np.testing.assert_allclose(grid.origin, [-0.48, -0.48, 0.8], atol=1e-9)
    assert grid.dims == (28, 24, 8)  # z: 0.8 .. 1.08 (1.12 = 1.0 + margin is the end, excluded)
    k_wall = 5  # z = 0.8 + 0.04 * 5 = 1.0
    assert tsdf[12, 12, k_wall] == pytest.approx(0, abs=1e-6) and weight[12, 12, k_wall] == 2
    assert tsdf[12, 12, k_wall - 1] == pytest.approx(-1 / 3, abs=1e-3)  # float16 storage
    g8, t8, _ = decode_volume(volumes.iloc[1])
    assert g8.dims == (14, 12, 4) and g8.origin == grid.origin
    quarantine = read_table(quarantine_shard(tmp_path / "tsdf", "test", 0), TSDF_QUARANTINE)
    assert quarantine["scene"].tolist() == ["scene0001_00"]
    assert "no valid depth" in quarantine["reason"].iloc[0]
    mesh = trimesh.load(tmp_path / "meshes" / "scene0000_00.ply", force="mesh")
    np.testing.assert_allclose(mesh.vertices[:, 2], 1.0, atol=1e-3)
    assert not (tmp_path / "meshes" / "scene0001_00.ply").exists()


def test_fuse_tsdf_refuses_missing_frames(tmp_path):
    from stages.fuse_tsdf import main
    from stages.errors import StageError

    with pytest.raises(StageError, match="no FRAMES split folder"):
        main(["--frames", str(tmp_path), "--out", str(tmp_path / "out")])


def test_fuse_tsdf_refuses_a_shard_of_another_table(tmp_path):
    # A table without the FRAMES columns (here: a scans-like table) in the frames folder: one
    # line naming the file and the missing columns, before any output is written.
    from stages.errors import StageError
    from stages.fuse_tsdf import main

    shard = frames_shard(tmp_path / "conv", "train", 0)
    shard.parent.mkdir(parents=True)
    pd.DataFrame({"scene": ["scene0000_00"], "split": ["train"]}).to_parquet(shard)
    with pytest.raises(StageError, match=r"\(.*shard-00000\.parquet\): columns \['scene', 'split'\] do not match"):
        main(["--frames", str(tmp_path / "conv"), "--out", str(tmp_path / "tsdf")])
    assert not (tmp_path / "tsdf").exists()
