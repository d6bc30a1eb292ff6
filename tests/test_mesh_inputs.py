"""Mesh files as they come: polygons that are not convex, in every format that holds polygons,
and unreadable files of every format, answered with one line that names the file."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from stages import voxelize
from stages.voxelization.mesh_command import voxelize_mesh_file
from stages.formats.load import load_mesh
from stages.formats.mesh import MeshError, triangles
from stages.formats.obj import read_obj
from stages.formats.off import read_off
from stages.formats.polygons import PolygonError, PolygonMesh, triangulate

REPO = Path(__file__).resolve().parents[1]

# An L-shaped prism of height 1: the 2 x 2 square minus the unit square at (1..2, 1..2). Each cap
# is one polygon of 6 corners, listed from (2, 0), a corner that cannot see the whole L: a fan
# from it covers the notch. Area 2 * 3 (caps) + 8 * 1 (sides) = 14, volume 3.
FOOTPRINT = [(2, 0), (2, 1), (1, 1), (1, 2), (0, 2), (0, 0)]
L_VERTICES = [(x, y, 0.0) for x, y in FOOTPRINT] + [(x, y, 1.0) for x, y in FOOTPRINT]
L_POLYGONS = [[5, 4, 3, 2, 1, 0], [6, 7, 8, 9, 10, 11]] + [[i, (i + 1) % 6, (i + 1) % 6 + 6, i + 6] for i in range(6)]


def write_l_prism(path: Path, endian: str = "<") -> Path:
    """The L prism in the format of the path's extension (PLY: binary, in the given byte order)."""
    suffix = path.suffix
    if suffix == ".obj":
        text = "".join(f"v {x} {y} {z}\n" for x, y, z in L_VERTICES)
        text += "".join("f " + " ".join(str(i + 1) for i in p) + "\n" for p in L_POLYGONS)
        path.write_text(text)
    elif suffix == ".off":
        text = f"OFF\n# an L prism\n{len(L_VERTICES)} {len(L_POLYGONS)} 0\n"
        text += "".join(f"{x} {y} {z}\n" for x, y, z in L_VERTICES)
        text += "".join(f"{len(p)} " + " ".join(map(str, p)) + "\n" for p in L_POLYGONS)
        path.write_text(text)
    elif suffix == ".ply":
        header = (
            f"ply\nformat binary_{'little' if endian == '<' else 'big'}_endian 1.0\ncomment an L prism\n"
            f"element vertex {len(L_VERTICES)}\n"
            "property float x\nproperty float y\nproperty float z\n"
            f"element face {len(L_POLYGONS)}\nproperty list uchar int vertex_indices\nend_header\n"
        ).encode()
        body = b"".join(struct.pack(f"{endian}3f", *v) for v in L_VERTICES)
        body += b"".join(struct.pack(f"{endian}B{len(p)}i", len(p), *p) for p in L_POLYGONS)
        path.write_bytes(header + body)
    return path


def write_ascii_ply(path: Path) -> Path:
    header = (
        f"ply\nformat ascii 1.0\nelement vertex {len(L_VERTICES)}\nproperty double x\nproperty double y\n"
        f"property double z\nproperty uchar red\nelement face {len(L_POLYGONS)}\n"
        "property list uchar uint vertex_index\nend_header\n"
    )
    body = "".join(f"{x} {y} {z} 7\n" for x, y, z in L_VERTICES)
    body += "".join(f"{len(p)} " + " ".join(map(str, p)) + "\n" for p in L_POLYGONS)
    path.write_text(header + body)
    return path


def closed_l_cells(resolution: int, cube_side: float) -> int:
    """Independent count: voxels of the cube [0, side]^3 that touch the closed L prism (a voxel
    touching a face on its boundary counts, as the voxelizer's conservative overlap says)."""
    step = cube_side / resolution
    lo = np.arange(resolution) * step
    x, y, z = np.meshgrid(lo, lo, lo, indexing="ij")
    touches_box = lambda x0, x1, y0, y1: (x <= x1) & (x + step >= x0) & (y <= y1) & (y + step >= y0)  # noqa: E731
    in_z = z <= 1.0
    return int(((touches_box(0, 2, 0, 1) | touches_box(0, 1, 0, 2)) & in_z).sum())


@pytest.mark.parametrize("suffix", [".obj", ".off", ".ply", "ascii.ply", "big-endian.ply"])
def test_l_prism_has_the_true_area_and_volume(tmp_path, suffix):
    if suffix == "ascii.ply":
        path = write_ascii_ply(tmp_path / "l.ply")
    elif suffix == "big-endian.ply":
        path = write_l_prism(tmp_path / "l.ply", endian=">")
    else:
        path = write_l_prism(tmp_path / f"l{suffix}")
    mesh = load_mesh(path)
    np.testing.assert_array_equal(mesh.vertices, L_VERTICES)
    assert len(mesh.faces) == 2 * 4 + 6 * 2
    solid = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    assert solid.area == pytest.approx(14.0, abs=1e-12)
    assert solid.volume == pytest.approx(3.0, abs=1e-12)
    assert solid.is_watertight and solid.is_winding_consistent


def test_l_prism_fills_275_voxels_through_the_command_line(tmp_path):
    assert closed_l_cells(8, 2.0) == 275  # the notch stays empty; the fan gave 289
    src, out = write_l_prism(tmp_path / "l.obj"), tmp_path / "l.npy"
    done = subprocess.run(
        [sys.executable, "-m", "stages.voxelize", "mesh", str(src), "--resolution", "8",
         "--cube", "0", "0", "0", "2", "--out", str(out), "--backend", "cpu"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{out}: 275 of 512 voxels occupied\n"
    grid = np.load(out)
    assert grid.sum() == 275 and not grid[:4, 5:, 5:].any()  # [z, y, x]: the notch


@pytest.mark.parametrize("suffix", [".off", ".ply"])
def test_l_prism_voxels_agree_in_every_polygon_format(tmp_path, suffix):
    grid = voxelize_mesh_file(write_l_prism(tmp_path / f"l{suffix}"), 8, tmp_path / "l.npy",
                              cube=(0, 0, 0, 2), backend="cpu")
    assert grid.sum() == 275


# --- polygons that fit no triangulation, and quads either way ------------------------------


def test_concave_quad_is_split_on_its_inside_diagonal():
    # Reflex corner at (1, 0.5): the fan's diagonal (0, 0)-(2, 0) runs outside the quad.
    quad = PolygonMesh([(0, 0, 0), (1, 0.5, 0), (2, 0, 0), (1, 2, 0)], [0, 1, 2, 3], [4])
    np.testing.assert_array_equal(triangulate(quad).faces, [[1, 2, 3], [1, 3, 0]])
    convex = PolygonMesh([(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0)], [0, 1, 2, 3], [4])
    np.testing.assert_array_equal(triangulate(convex).faces, [[0, 1, 2], [0, 2, 3]])  # the fan, as before


@pytest.mark.parametrize(
    ("vertices", "reason"),
    [
        ([(0, 0, 0), (2, 2, 0), (2, 0, 0), (0, 1, 0)], "quad crosses itself (its edges cross)"),
        ([(0, 0, 0), (1, 1, 0), (1, 0, 0), (0, 1, 0)], "quad crosses itself (its two halves cancel out)"),
        ([(0, 0, 0), (1, 0, 1), (2, 0, 0), (2, 2, 1), (0, 2, 0), (0, 1, 0.5)],
         "polygon of 6 corners is not planar: a corner lies 28% of its size off its best-fit plane (tolerance 5%)"),
        ([(np.cos(a), np.sin(a), 0) for a in np.arange(5) * 4 * np.pi / 5], "polygon of 5 corners crosses itself"),
    ],
)
def test_polygons_no_triangulation_fits_are_refused(vertices, reason):
    mesh = PolygonMesh(vertices, range(len(vertices)), [len(vertices)])
    with pytest.raises(PolygonError) as info:
        triangulate(mesh)
    assert (info.value.polygon, info.value.reason) == (0, reason)


def test_polygon_on_one_line_gives_zero_area_triangles():
    line = PolygonMesh([(k, 0, 0) for k in range(5)], range(5), [5])
    np.testing.assert_array_equal(triangulate(line).faces, [[0, 1, 2], [0, 2, 3], [0, 3, 4]])


def test_polygon_refusal_names_the_line(tmp_path):
    obj = tmp_path / "bowtie.obj"
    obj.write_text("v 0 0 0\nv 2 2 0\nv 2 0 0\nv 0 1 0\nf 1 2 3\n# a comment\nf 1 2 3 4\n")
    with pytest.raises(MeshError) as info:
        read_obj(obj)
    assert str(info.value) == f"{obj}: line 7: quad crosses itself (its edges cross)"
    off = tmp_path / "bowtie.off"
    off.write_text("OFF\n4 2 0\n0 0 0\n2 2 0\n2 0 0\n0 1 0\n3 0 1 2\n4 0 1 2 3\n")
    with pytest.raises(MeshError) as info:
        read_off(off)
    assert info.value.reason == "line 8: quad crosses itself (its edges cross)"


def test_triangulation_keeps_polygon_order_and_winding():
    # A triangle, the L cap (6 corners), a quad: triangles come out in polygon order, each
    # turning the way its polygon does (+z here).
    vertices = [(x, y, 0.0) for x, y in FOOTPRINT] + [(5, 5, 0), (6, 5, 0), (6, 6, 0), (5, 6, 0)]
    mesh = triangulate(PolygonMesh(vertices, [0, 1, 2, *range(6), 6, 7, 8, 9], [3, 6, 4]))
    assert len(mesh.faces) == 1 + 4 + 2
    np.testing.assert_array_equal(mesh.faces[0], [0, 1, 2])
    np.testing.assert_array_equal(mesh.faces[5:], [[6, 7, 8], [6, 8, 9]])
    assert set(mesh.faces[1:5].reshape(-1)) == set(range(6))
    soup = triangles(mesh)
    turn = np.cross(soup[:, 1] - soup[:, 0], soup[:, 2] - soup[:, 0])[:, 2]
    assert (turn > 0).all() and turn[1:5].sum() / 2 == 3.0


# --- unreadable files: one line naming the file, exit 1 -----------------------------------

BINARY_PLY_HEADER = (
    b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
    b"property float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n"
)
TRIANGLE_OFF = "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n"

BAD_FILES = {
    "header_only.off": ("OFF\n", "no vertex and face counts after the OFF header"),
    "index_past_count.off": (TRIANGLE_OFF + "3 0 1 3\n", "line 6: face index 3 out of range (3 vertices)"),
    "short.off": (TRIANGLE_OFF, "file ends after 0 of 1 faces"),
    "few_vertices.off": ("OFF\n3 1 0\n0 0 0\n", "file ends after 1 of 3 vertices"),
    "four_d.off": ("4OFF\n1 0 0\n0 0 0 0\n", "line 1: '4OFF' (4-D or n-D OFF) is not supported"),
    "bad_number.off": ("OFF\n3 1 0\n0 0 0\n1 x 0\n0 1 0\n3 0 1 2\n", "line 4: malformed number 'x' in vertex"),
    "empty.off": ("", "empty file (no OFF header or counts)"),
    "no_faces.off": ("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n", "no faces"),
    "degenerate.obj": ("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n", "all 1 faces are degenerate (zero area)"),
    "empty.obj": ("", "no vertices"),
    "zero_index.obj": ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 0 1 2\n", "line 4: face index 0 (OBJ indices start at 1)"),
    "truncated.ply": (BINARY_PLY_HEADER + struct.pack("<9f", 0, 0, 0, 1, 0, 0, 0, 1, 0) + b"\x03\x00",
                      "data ends inside element 'face' (1 rows declared)"),
    "index_past_count.ply": (BINARY_PLY_HEADER + struct.pack("<9fB3i", 0, 0, 0, 1, 0, 0, 0, 1, 0, 3, 0, 1, 7),
                             "face 0: vertex index 7 out of range (3 vertices)"),
    "no_end_header.ply": (b"ply\nformat ascii 1.0\nelement vertex 3\n", "no 'end_header' line"),
    "bad_header.ply": (b"ply\nformat ascii 1.0\nelement vertex three\nend_header\n",
                       "header line 3: cannot read 'element vertex three'"),
    "ascii_short.ply": (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
                        b"property float z\nend_header\n0 0 0\n1 0\n", "element 'vertex' row 1: cannot read '1 0'"),
    "cut_short.stl": (b"solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0",
                      "ASCII STL ends without 'endsolid' (cut short?)"),
    "count_mismatch.stl": (bytes(80) + struct.pack("<I", 5) + bytes(50 * 3),
                           "binary STL declares 5 triangles (334 bytes) but has 234 bytes"),
    "tiny.stl": (b"\0" * 40, "not an STL file (40 bytes, no 'solid' header)"),
    "bad_facet.stl": (b"solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nendloop\n"
                      b"endfacet\nendsolid x\n", "ASCII STL has 1 facets, 1 closed loops and 2 vertices"),
    "model.glb": (b"glTF", "unknown mesh format '.glb' (expected one of .obj, .off, .ply, .stl)"),
}


def voxelize_reason(tmp_path: Path, mesh: Path, out: str = "out.npy") -> str:
    """The message `python -m stages.voxelize mesh` prints alone on stderr, from its main."""
    with pytest.raises(SystemExit) as info:
        voxelize.main(["mesh", str(mesh), "--resolution", "8", "--out", str(tmp_path / out), "--backend", "cpu"])
    assert isinstance(info.value.code, str) and "\n" not in info.value.code
    return info.value.code


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_every_bad_mesh_file_is_one_line_naming_it(tmp_path, name):
    content, reason = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    message = voxelize_reason(tmp_path, path)
    assert message.startswith(f"voxelize: {path}: {reason}"), message
    assert not (tmp_path / "out.npy").exists()


def test_missing_file_directory_and_bad_output_are_one_line(tmp_path):
    for suffix in (".obj", ".off", ".ply", ".stl"):
        missing = tmp_path / f"absent{suffix}"
        assert voxelize_reason(tmp_path, missing) == f"voxelize: {missing}: cannot read file: No such file or directory"
    folder = tmp_path / "folder.obj"
    folder.mkdir()
    assert voxelize_reason(tmp_path, folder) == f"voxelize: {folder}: cannot read file: Is a directory"
    good = write_l_prism(tmp_path / "l.obj")
    assert voxelize_reason(tmp_path, good, "l.vox") == f"voxelize: {tmp_path / 'l.vox'}: output must be .binvox or .npy"


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("header_only.off", "OFF\n", "no vertex and face counts after the OFF header"),
        ("index_past_count.off", TRIANGLE_OFF + "3 0 1 3\n", "line 6: face index 3 out of range (3 vertices)"),
        ("absent.obj", None, "cannot read file: No such file or directory"),
    ],
)
def test_command_line_prints_one_line_and_exits_1(tmp_path, name, content, reason):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "stages.voxelize", "mesh", str(path), "-r", "8", "-o", str(tmp_path / "x.npy")],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"voxelize: {path}: {reason}"]


# --- bounded reasons -----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".obj", ".off"])
def test_nul_padded_file_gives_a_short_reason(tmp_path, suffix):
    # A download cut short and padded with 1 MiB of NUL bytes: the bad token is 1 MiB long.
    path = tmp_path / f"cut{suffix}"
    head = b"v 0 0 0\nv 1 0 0\nv 0 1 " if suffix == ".obj" else b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 "
    path.write_bytes(head + b"\0" * 2**20)
    with pytest.raises(MeshError) as info:
        load_mesh(path)
    line = 3 if suffix == ".obj" else 5
    assert info.value.reason == f"line {line}: malformed number '" + "\\x00" * 14 + "\\x0... in vertex"
    assert len(info.value.reason) < 200 and len(str(info.value)) < 200 + len(str(path))
