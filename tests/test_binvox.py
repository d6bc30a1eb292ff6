"""binvox reading and writing, and the `voxelize mesh` command's output files."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import trimesh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.errors import StageError
from stages.formats.binvox import BinvoxError, read_binvox, write_binvox
from stages.formats.load import load_mesh
from stages.formats.mesh import triangles
from stages.voxelization import cube_to_voxel_space, mesh_to_voxel_transform, voxelize_triangles
from stages.voxelization.mesh_command import add_mesh_arguments, run_mesh_command, voxelize_mesh_file


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    dims=st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)),
    density=st.sampled_from([0.0, 0.02, 0.5, 0.98, 1.0]),
    seed=st.integers(0, 2**32 - 1),
    translate=st.tuples(*[st.floats(-1e6, 1e6, allow_nan=False)] * 3),
    scale=st.floats(1e-6, 1e6),
)
def test_round_trip(tmp_path, dims, density, seed, translate, scale):
    grid = np.random.default_rng(seed).random(dims) < density
    path = tmp_path / "g.binvox"
    write_binvox(path, grid, translate, scale)
    back = read_binvox(path)
    assert back.grid.dtype == bool and back.grid.shape == dims
    np.testing.assert_array_equal(back.grid, grid)
    np.testing.assert_array_equal(back.translate, translate)
    assert back.scale == scale
    assert not [p for p in tmp_path.iterdir() if p.name != "g.binvox"]  # no temporary left


def test_long_runs_split_at_255(tmp_path):
    grid = np.ones((10, 10, 10), bool)
    path = tmp_path / "full.binvox"
    write_binvox(path, grid)
    data = path.read_bytes().split(b"data\n", 1)[1]
    assert data == bytes([1, 255] * 3 + [1, 235])
    np.testing.assert_array_equal(read_binvox(path).grid, grid)


def test_voxel_order_hand_checked(tmp_path):
    # dims (x, y, z) = (2, 3, 4): voxel (1, 2, 3) has index x*(4*3) + z*3 + y = 12 + 9 + 2 = 23,
    # the last of 24; voxel (0, 1, 0) has index 1.
    grid = np.zeros((2, 3, 4), bool)
    grid[1, 2, 3] = grid[0, 1, 0] = True
    path = tmp_path / "order.binvox"
    write_binvox(path, grid, (0.5, -1.0, 2.0), 3.0)
    raw = path.read_bytes()
    assert raw == b"#binvox 1\ndim 2 3 4\ntranslate 0.5 -1.0 2.0\nscale 3.0\ndata\n" + bytes([0, 1, 1, 1, 0, 21, 1, 1])


FIXTURE = (
    b"  #binvox   1  \r\n"
    b"# written by hand\r\n"
    b"\r\n"
    b"dim\t2  3 4\r\n"
    b"#   a comment between header lines\r\n"
    b"   scale  2.5\r\n"
    b"data\r\n" + bytes([0, 1, 1, 1, 0, 21, 1, 1])
)


def test_reads_hand_written_file_with_comments_and_odd_whitespace(tmp_path):
    path = tmp_path / "odd.binvox"
    path.write_bytes(FIXTURE)
    vox = read_binvox(path)
    expected = np.zeros((2, 3, 4), bool)
    expected[1, 2, 3] = expected[0, 1, 0] = True
    np.testing.assert_array_equal(vox.grid, expected)
    np.testing.assert_array_equal(vox.translate, [0.0, 0.0, 0.0])  # missing: defaults
    assert vox.scale == 2.5


def test_defaults_without_translate_or_scale_and_final_newline(tmp_path):
    path = tmp_path / "min.binvox"
    path.write_bytes(b"#binvox 1\ndim 2 2 2\ndata\n" + bytes([1, 8]) + b"\n")
    vox = read_binvox(path)
    assert vox.grid.all() and vox.scale == 1.0 and not vox.translate.any()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"#binvox 3\ndim 2 2 2\ndata\n" + bytes([0, 8]), "bad magic"),
        (b"binvox 1\ndim 2 2 2\ndata\n" + bytes([0, 8]), "bad magic"),
        (b"#binvox 1\ntranslate 0 0 0\ndata\n" + bytes([0, 8]), "no 'dim'"),
        (b"#binvox 1\ndim 2 0 2\ndata\n", "non-positive"),
        (b"#binvox 1\ndim 2 -2 2\ndata\n", "non-positive"),
        (b"#binvox 1\ndim 2 2\ndata\n", "malformed"),
        (b"#binvox 1\ndim 2 2 2\nscale x\ndata\n" + bytes([0, 8]), "malformed"),
        (b"#binvox 1\ndim 2 2 2\n", "before a 'data' line"),
        (b"#binvox 1\ndim 2 2 2\ndata\n" + bytes([0, 5]), "truncated"),
        (b"#binvox 1\ndim 2 2 2\ndata\n" + bytes([0, 5, 1]), "truncated"),
        (b"#binvox 1\ndim 2 2 2\ndata\n", "truncated"),
        (b"#binvox 1\ndim 2 2 2\ndata\n" + bytes([0, 5, 1, 4]), "overflows"),
        (b"#binvox 1\ndim 2 2 2\ndata\n" + bytes([0, 8, 1, 1]), "overflows"),
        (b"#binvox 1\ndim 2 2 2\ndata\n" + bytes([0, 8, 7]), "stray byte"),
    ],
)
def test_errors_name_the_file_in_one_line(tmp_path, content, message):
    path = tmp_path / "bad.binvox"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        read_binvox(path)
    text = str(info.value)
    assert str(path) in text and "\n" not in text


def test_reasons_quote_at_most_a_bounded_fragment(tmp_path):
    path = tmp_path / "padded.binvox"
    path.write_bytes(b"#binvox 1\ndim 2 2 2\n" + b"\0" * 2**20 + b"\ndata\n")
    with pytest.raises(BinvoxError) as info:
        read_binvox(path)
    assert str(info.value) == f"{path}: not a valid binvox file: unexpected header line '" + "\\x00" * 14 + "\\x0..."


def test_missing_file_is_a_binvox_error(tmp_path):
    with pytest.raises(BinvoxError) as info:
        read_binvox(tmp_path / "absent.binvox")
    assert str(info.value) == f"{tmp_path / 'absent.binvox'}: cannot read file: No such file or directory"
    assert isinstance(info.value, StageError)


def test_non_cubic_dims_are_accepted(tmp_path):
    path = tmp_path / "nc.binvox"
    path.write_bytes(b"#binvox 1\ndim 1 2 3\ndata\n" + bytes([0, 5, 1, 1]))
    grid = read_binvox(path).grid
    assert grid.shape == (1, 2, 3) and grid.sum() == 1 and grid[0, 1, 2]


def write_mesh(path, mesh: trimesh.Trimesh) -> None:
    mesh.export(path)


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".off", ".stl"])
def test_voxelize_mesh_file_matches_voxelize_triangles(tmp_path, suffix):
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.7)
    mesh.apply_translation([0.2, -1.0, 3.0])
    src = tmp_path / f"sphere{suffix}"
    write_mesh(src, mesh)
    loaded = load_mesh(src)
    translate, scale = mesh_to_voxel_transform(loaded.vertices, 24)
    expected = voxelize_triangles(cube_to_voxel_space(triangles(loaded), translate, scale, 24), 24, backend="cpu")

    out = tmp_path / "sphere.binvox"
    voxelize_mesh_file(src, 24, out, backend="cpu")
    vox = read_binvox(out)
    np.testing.assert_array_equal(vox.grid, expected.transpose(2, 1, 0))
    np.testing.assert_array_equal(vox.translate, translate)
    assert vox.scale == scale

    npy = tmp_path / "sphere.npy"
    voxelize_mesh_file(src, 24, npy, backend="cpu")
    np.testing.assert_array_equal(np.load(npy), expected)
    # The bounding cube touches the mesh on three sides, and the sphere is filled.
    assert expected[0].any() and expected[:, 0].any() and expected[:, :, 0].any()
    assert expected[12, 12, 12]


def test_mesh_command_with_explicit_cube(tmp_path):
    mesh = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    src = tmp_path / "box.obj"
    write_mesh(src, mesh)
    parser = add_mesh_arguments(argparse.ArgumentParser())
    out = tmp_path / "box.npy"
    argv = [str(src), "--resolution", "8", "--cube", "-1", "-1", "-1", "4", "--out", str(out), "--backend", "cpu"]
    args = parser.parse_args(argv)
    assert run_mesh_command(args) == 0
    grid = np.load(out)
    # Cube [-1, 3]^3 at 8 voxels, 2 per unit: the box [-0.5, 0.5]^3 maps to [1, 3]^3, and its
    # faces on the voxel boundaries 1 and 3 touch the voxels on both sides: 0..3 on each axis.
    expected = np.zeros((8, 8, 8), bool)
    expected[:4, :4, :4] = True
    np.testing.assert_array_equal(grid, expected)
    assert "(z, y, x)" in parser.format_help() and "x, y, z" in parser.format_help()


def test_mesh_command_rejects_unknown_suffixes(tmp_path):
    with pytest.raises(ValueError, match="binvox"):
        voxelize_mesh_file(tmp_path / "a.obj", 8, tmp_path / "a.vox")
    with pytest.raises(ValueError, match="mesh"):
        voxelize_mesh_file(tmp_path / "a.gltf", 8, tmp_path / "a.npy")
