"""The tolerant OBJ reader, mesh validation, unused vertices and extension-dispatched loading.

Each fixture in tests/fixtures/obj holds one oddity found in real files; the expected meshes are
written out by hand.
"""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import trimesh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from stages.errors import StageError
from stages.formats.load import load_mesh
from stages.formats.mesh import MeshError, TriangleMesh, drop_unused_vertices, triangles, validate_mesh
from stages.formats.obj import (
    _normalise_text,
    _parse_by_line,
    _parse_vectorised,
    parse_obj,
    read_obj,
    write_obj,
)
from stages.formats.polygons import PolygonError, triangulate

FIXTURES = Path(__file__).parent / "fixtures" / "obj"

SQUARE = [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]
TETRA = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]

EXPECTED = {
    "negative_indices.obj": (SQUARE + [[0, 0, 1]], [[0, 1, 2], [0, 2, 3], [0, 1, 4], [2, 3, 4]]),
    "polygons.obj": (
        [[0, 0, 0], [2, 0, 0], [2, 2, 0], [0, 2, 0], [3, 0, 1], [4, 1, 1], [3.5, 2, 1], [2.5, 2, 1], [2, 1, 1]],
        # The pentagon is ear-clipped (see test_polygons_fixture_covers_each_polygon_once).
        [[0, 1, 2], [0, 2, 3], [7, 8, 4], [7, 4, 5], [7, 5, 6], [0, 1, 3]],
    ),
    "mixed_face_forms.obj": (
        SQUARE,
        [[0, 1, 2], [0, 2, 3], [1, 2, 0], [3, 0, 1], [0, 1, 2], [0, 2, 3]],
    ),
    "groups_materials.obj": (TETRA, [[0, 1, 2], [0, 1, 3], [1, 2, 3]]),
    "comments_blank_faces.obj": (TETRA, [[0, 1, 2], [0, 2, 3]]),
    "crlf.obj": (SQUARE, [[0, 1, 2], [0, 2, 3]]),
    "continuation.obj": (
        [[0, 0, 0], [1.5, 0, 0], [0, 2.5, 0], [0, 0, 3.5]],
        [[0, 1, 2], [0, 2, 3], [0, 3, 1]],
    ),
    "tabs_spaces.obj": (TETRA[:3], [[0, 1, 2], [0, 2, 1]]),
    "vertex_colours.obj": (TETRA + [[1, 1, -0.25]], [[0, 1, 2], [0, 3, 4]]),
    "latin1_comment.obj": (TETRA[:3], [[0, 1, 2]]),
}


def assert_mesh(mesh: TriangleMesh, vertices, faces) -> None:
    assert mesh.vertices.dtype == np.float64 and mesh.faces.dtype == np.int64
    np.testing.assert_array_equal(mesh.vertices, np.array(vertices, dtype=np.float64).reshape(-1, 3))
    np.testing.assert_array_equal(mesh.faces, np.array(faces, dtype=np.int64).reshape(-1, 3))


def same_mesh(a: TriangleMesh, b: TriangleMesh) -> bool:
    return np.array_equal(a.vertices, b.vertices, equal_nan=True) and np.array_equal(a.faces, b.faces)


def same_polygons(a, b) -> bool:
    return (
        np.array_equal(a.vertices, b.vertices, equal_nan=True)
        and np.array_equal(a.corners, b.corners)
        and np.array_equal(a.counts, b.counts)
    )


def canonical_triangles(mesh_vertices: np.ndarray, mesh_faces: np.ndarray) -> list:
    """Triangles as corner positions, each rotated to start at its smallest corner (winding kept)."""
    result = []
    for tri in np.asarray(mesh_vertices)[np.asarray(mesh_faces)]:
        corners = [tuple(c) for c in tri.tolist()]
        k = corners.index(min(corners))
        result.append(tuple(corners[k:] + corners[:k]))
    return sorted(result)


# --- fixtures: one oddity each ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_expected_mesh(name):
    vertices, faces = EXPECTED[name]
    assert_mesh(read_obj(FIXTURES / name), vertices, faces)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_takes_the_vectorised_path_and_agrees_with_the_reference(name):
    # Clean real-world oddities must not push the reader onto its slow path.
    text = _normalise_text((FIXTURES / name).read_bytes().decode("latin-1"))
    fast = _parse_vectorised(text)
    assert fast is not None
    assert same_polygons(fast, _parse_by_line(text, name)[0])


def test_polygons_fixture_covers_each_polygon_once():
    # Independent answer: the quad [0, 2]^2 has area 4, the pentagon (3,0) (4,1) (3.5,2) (2.5,2)
    # (2,1) has shoelace area 2.5, the triangle 2; every triangle turns the polygon's way (+z).
    soup = triangles(read_obj(FIXTURES / "polygons.obj"))
    doubled = np.cross(soup[:, 1] - soup[:, 0], soup[:, 2] - soup[:, 0])
    assert (doubled[:, 2] > 0).all() and (doubled[:, :2] == 0).all()
    assert doubled[:2, 2].sum() / 2 == 4.0 and doubled[2:5, 2].sum() / 2 == 2.5 and doubled[5, 2] / 2 == 2.0


def test_crlf_fixture_really_has_crlf_line_ends():
    # Guards against a checkout that rewrote the fixture (see .gitattributes there).
    assert b"\r\n" in (FIXTURES / "crlf.obj").read_bytes()


def test_latin1_fixture_is_not_utf8():
    with pytest.raises(UnicodeDecodeError):
        (FIXTURES / "latin1_comment.obj").read_bytes().decode("utf-8")


def test_reads_open_binary_and_text_files():
    vertices, faces = EXPECTED["polygons.obj"]
    with open(FIXTURES / "polygons.obj", "rb") as f:
        assert_mesh(read_obj(f), vertices, faces)
    with open(FIXTURES / "polygons.obj", encoding="utf-8") as f:
        assert_mesh(read_obj(f), vertices, faces)
    assert_mesh(read_obj(io.StringIO((FIXTURES / "polygons.obj").read_text())), vertices, faces)


def test_byte_order_mark_and_missing_final_newline():
    text = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3"
    assert_mesh(parse_obj("\ufeff" + text), TETRA[:3], [[0, 1, 2]])
    assert_mesh(read_obj(io.BytesIO(b"\xef\xbb\xbf" + text.encode())), TETRA[:3], [[0, 1, 2]])
    # A BOM followed by latin-1 bytes fails UTF-8 decoding; the BOM must still go.
    assert_mesh(read_obj(io.BytesIO(b"\xef\xbb\xbf# \xe9\n" + text.encode())), TETRA[:3], [[0, 1, 2]])


def test_continuation_on_the_last_line_without_newline():
    assert_mesh(parse_obj("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3 \\"), TETRA[:3], [[0, 1, 2]])


def test_empty_text_gives_an_empty_mesh():
    mesh = parse_obj("# nothing but a comment\n")
    assert mesh.vertices.shape == (0, 3) and mesh.faces.shape == (0, 3)


def test_forward_references_are_allowed():
    assert_mesh(parse_obj("f 1 2 3\nv 0 0 0\nv 1 0 0\nv 0 1 0\n"), TETRA[:3], [[0, 1, 2]])


def test_nan_vertices_parse_and_are_left_to_validation():
    mesh = parse_obj("v nan 0 0\nv 1 0 0\nv 0 1 inf\nf 1 2 3\n")
    assert np.isnan(mesh.vertices[0, 0]) and np.isinf(mesh.vertices[2, 2])
    assert validate_mesh(mesh).startswith("non-finite vertex coordinates")


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("zero_index.obj", "line 5: face index 0 (OBJ indices start at 1)"),
        ("out_of_range.obj", "line 6: face index 7 out of range (3 vertices)"),
        ("negative_out_of_range.obj", "line 3: face index -3 out of range (2 vertices before it)"),
        ("malformed_number.obj", "line 4: malformed number '1,5' in vertex"),
    ],
)
def test_error_fixture_reason(name, reason):
    with pytest.raises(MeshError) as info:
        read_obj(FIXTURES / name)
    assert info.value.reason == reason
    assert info.value.source == str(FIXTURES / name)
    assert str(info.value) == f"{FIXTURES / name}: {reason}"
    assert isinstance(info.value, StageError) and isinstance(info.value, ValueError)


def test_mesh_error_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(MeshError("line 3: bad", "a/b.obj")))
    assert (err.reason, err.source, str(err)) == ("line 3: bad", "a/b.obj", "a/b.obj: line 3: bad")
    polygon = pickle.loads(pickle.dumps(PolygonError(4, "quad crosses itself")))
    assert (polygon.polygon, polygon.reason) == (4, "quad crosses itself")


def test_missing_file(tmp_path):
    with pytest.raises(MeshError) as info:
        read_obj(tmp_path / "absent.obj")
    assert info.value.reason == "cannot read file: No such file or directory"
    assert str(info.value) == f"{tmp_path / 'absent.obj'}: cannot read file: No such file or directory"


def test_directory_is_unreadable(tmp_path):
    with pytest.raises(MeshError) as info:
        read_obj(tmp_path)
    assert info.value.reason == "cannot read file: Is a directory"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("v 0 0\n", "line 1: vertex has 2 coordinates, needs 3"),
        ("v 0 0 0 x\n", "line 1: malformed number 'x' in vertex"),
        ("v 0 0 0\nv 1 \\\n 0 zero\n", "line 2: malformed number 'zero' in vertex"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 x\n", "line 4: malformed face index 'x'"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 /3\n", "line 4: malformed face index '/3'"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 -\n", "line 4: malformed face index '-'"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 /+3\n", "line 4: malformed face index '/+3'"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 -0\n", "line 4: face index 0 (OBJ indices start at 1)"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 99999999999999999999999\n",
         "line 4: face index 99999999999999999999999 out of range (3 vertices)"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 " + "9" * 4000 + "\n",
         "line 4: face index " + "9" * 60 + "... out of range (3 vertices)"),
        ("v 0 0 0\nv 2 2 0\nv 2 0 0\nv 0 1 0\nf 1 2 3 4\n", "line 5: quad crosses itself (its edges cross)"),
    ],
)
def test_error_reasons_inline(text, reason):
    with pytest.raises(MeshError) as info:
        parse_obj(text)
    assert str(info.value) == reason


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vertices", "faces", "reason"),
    [
        (np.empty((0, 3)), [[0, 1, 2]], "no vertices"),
        (TETRA, np.empty((0, 3)), "no faces"),
        ([[0, 0, 0], [1, np.nan, 0], [0, 1, 0]], [[0, 1, 2]], "non-finite vertex coordinates (1 of 3 used vertices)"),
        ([[0, 0, 0], [1, 0, np.inf], [0, 1, 0]], [[0, 1, 2]], "non-finite vertex coordinates (1 of 3 used vertices)"),
        (TETRA, [[0, 1, 4]], "face index out of range (indices 0..4, 4 vertices)"),
        (TETRA, [[0, -1, 2]], "face index out of range (indices -1..2, 4 vertices)"),
        (TETRA, [[0, 0, 1], [2, 2, 2]], "all 2 faces are degenerate (zero area)"),
        ([[0, 0, 0], [0.1, 0.2, 0.3], [0.3, 0.6, 0.9]], [[0, 1, 2]], "all 1 faces are degenerate (zero area)"),
    ],
)
def test_validate_mesh_reasons(vertices, faces, reason):
    assert validate_mesh(TriangleMesh(np.array(vertices, float), np.array(faces))) == reason


def test_validate_mesh_accepts_a_mesh_with_some_degenerate_faces():
    assert validate_mesh(TriangleMesh(TETRA, [[0, 0, 1], [0, 1, 2]])) is None


def test_validate_mesh_ignores_an_unused_non_finite_vertex():
    assert validate_mesh(TriangleMesh(TETRA + [[np.nan, 0, 0]], [[0, 1, 2]])) is None


def test_drop_unused_vertices_keeps_order_and_renumbers():
    mesh = TriangleMesh([[9, 9, 9], [0, 0, 0], [8, 8, 8], [1, 0, 0], [0, 1, 0]], [[1, 3, 4], [4, 3, 1]])
    kept, dropped = drop_unused_vertices(mesh)
    assert dropped == 2
    assert_mesh(kept, TETRA[:3], [[0, 1, 2], [2, 1, 0]])
    same, none = drop_unused_vertices(kept)
    assert same is kept and none == 0


def test_validate_mesh_of_parsed_empty_file():
    assert validate_mesh(parse_obj("g nothing\n")) == "no vertices"
    assert validate_mesh(parse_obj("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2\n")) == "no faces"


def test_triangle_mesh_is_frozen_and_typed():
    source = np.array(TETRA, dtype=np.float32)
    mesh = TriangleMesh(source, [[0, 1, 2]])
    assert mesh.vertices.dtype == np.float64 and mesh.faces.dtype == np.int64
    with pytest.raises(ValueError):
        mesh.vertices[0, 0] = 5.0
    with pytest.raises(AttributeError):
        mesh.faces = np.zeros((1, 3), dtype=np.int64)
    float64_source = np.array(TETRA, dtype=np.float64)
    TriangleMesh(float64_source, [[0, 1, 2]])
    float64_source[0, 0] = 1.0  # the caller's array stays writeable
    with pytest.raises(ValueError, match="shape"):
        TriangleMesh(np.zeros((3, 2)), [[0, 1, 2]])


def test_triangles_is_the_soup():
    soup = triangles(read_obj(FIXTURES / "negative_indices.obj"))
    assert soup.shape == (4, 3, 3) and soup.dtype == np.float64
    np.testing.assert_array_equal(soup[2], [[0, 0, 0], [1, 0, 0], [0, 0, 1]])


# --- load_mesh -------------------------------------------------------------------------------


@pytest.mark.parametrize("extension", ["ply", "off", "stl", "ascii.stl", "ascii.ply"])
def test_load_mesh_other_formats_match_the_obj(tmp_path, extension):
    obj = read_obj(FIXTURES / "polygons.obj")
    path = tmp_path / f"polygons.{extension.split('.')[-1]}"
    file_type = {"ascii.stl": "stl_ascii"}.get(extension, extension.split(".")[-1])
    mesh = trimesh.Trimesh(obj.vertices, obj.faces, process=False)
    if extension == "ascii.ply":
        path.write_bytes(trimesh.exchange.ply.export_ply(mesh, encoding="ascii"))
    else:
        mesh.export(path, file_type=file_type)
    loaded = load_mesh(path)
    np.testing.assert_array_equal(triangles(loaded), triangles(obj))
    if extension.endswith("stl"):
        # STL stores every triangle's corners separately; shared again, they are numbered in
        # order of first use.
        first_use = list(dict.fromkeys(obj.faces.reshape(-1).tolist()))
        assert_mesh(loaded, obj.vertices[first_use], np.argsort(first_use)[obj.faces])
    else:
        assert_mesh(loaded, obj.vertices, obj.faces)


def test_load_mesh_obj_by_extension_any_case(tmp_path):
    path = tmp_path / "SQUARE.OBJ"
    path.write_bytes((FIXTURES / "crlf.obj").read_bytes())
    assert_mesh(load_mesh(path), SQUARE, [[0, 1, 2], [0, 2, 3]])


def test_load_mesh_errors(tmp_path):
    with pytest.raises(MeshError) as info:
        load_mesh(tmp_path / "model.glb")
    assert info.value.reason == "unknown mesh format '.glb' (expected one of .obj, .off, .ply, .stl)"
    with pytest.raises(MeshError) as info:
        load_mesh(tmp_path / "absent.ply")
    assert str(info.value) == f"{tmp_path / 'absent.ply'}: cannot read file: No such file or directory"
    broken = tmp_path / "broken.ply"
    broken.write_text("this is not a ply file\n")
    with pytest.raises(MeshError) as info:
        load_mesh(broken)
    assert str(info.value) == f"{broken}: not a PLY file (starts with b'this is not a pl')"
    with pytest.raises(MeshError, match="line 5: face index 0"):
        load_mesh(FIXTURES / "zero_index.obj")


def test_mesh_io_keeps_the_old_import_path():
    from stages.formats import mesh_io

    assert mesh_io.MeshError is MeshError and mesh_io.TriangleMesh is TriangleMesh
    assert mesh_io.load_mesh is load_mesh and mesh_io.validate_mesh is validate_mesh


# --- properties ------------------------------------------------------------------------------


@st.composite
def random_meshes(draw):
    n = draw(st.integers(1, 40))
    m = draw(st.integers(0, 60))
    coordinate = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)
    vertices = draw(arrays(np.float64, (n, 3), elements=coordinate))
    faces = draw(arrays(np.int64, (m, 3), elements=st.integers(0, n - 1)))
    return vertices, faces


@settings(max_examples=60, deadline=None)
@given(random_meshes())
def test_write_then_read_round_trips(mesh):
    vertices, faces = mesh
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "mesh.obj"
        write_obj(path, vertices, faces, header="round trip\nsecond header line")
        loaded = read_obj(path)
    np.testing.assert_allclose(loaded.vertices, vertices, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(loaded.faces, faces.reshape(-1, 3))


def test_cross_check_against_trimesh_obj_loader():
    # All vertices come before the faces here: trimesh 5.2 resolves negative indices against the
    # file's final vertex count, which only agrees with the OBJ rule (count so far) in that case.
    path = FIXTURES / "cube_quads_negative_shared.obj"
    ours = read_obj(path)
    theirs = trimesh.load(path, force="mesh", process=False)
    assert len(ours.faces) == 12
    assert canonical_triangles(ours.vertices, ours.faces) == canonical_triangles(theirs.vertices, theirs.faces)


def test_interleaved_negative_indices_build_the_cube():
    # Each quad refers to the four vertices just before it, so this only works if negative
    # indices count back from the line they are on. The quads are split along other diagonals
    # than in the shared-corner cube, so compare what the triangles enclose.
    mesh = read_obj(FIXTURES / "cube_quads_negative.obj")
    assert mesh.vertices.shape == (24, 3) and mesh.faces.shape == (12, 3)
    a, b, c = np.moveaxis(triangles(mesh), 1, 0)
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    np.testing.assert_array_equal(area, 0.5)
    assert np.einsum("ij,ij->", a, np.cross(b, c)) / 6 == 1.0  # outward winding, unit volume


# The two parsers must agree on everything: whatever the vectorised one returns, the reference
# returns too. Lines are drawn from a grammar of real OBJ content, and in one text out of four
# also from broken content.
_NUMBER = st.one_of(
    st.floats(-100, 100, allow_nan=False).map(lambda x: f"{x:.5g}"),
    st.integers(-5, 5).map(str),
    st.sampled_from(["-0", "1e3", "1.", "-.5", "+2", "nan", "inf", "-Infinity", "1E-3"]),
)
_BROKEN_NUMBER = st.sampled_from(["1,5", "x", "1e", "--1", "0x10", "1_0", "-", ".", "1.2.3", "\u0663"])
_INDEX = st.integers(-4, 6).filter(lambda i: i != 0).map(str)
_BROKEN_INDEX = st.sampled_from(["", "0", "-0", "-", "+3", "a", "1.0", "99999999999999999999", "\u0663", "1-2"])
_FORMS = ["{}", "{}/1", "{}//2", "{}/1/2", "{}/-1/-2", "{}/"]
_BROKEN_FORMS = ["/{}", "{}/-1/x", "{}/a", "{}//"]
_OTHER_LINES = ["", "   ", "vt 0 1", "vn 0 0 1", "vp 1", "g a b", "o x", "s off", "usemtl m", "mtllib a.mtl",
                "l 1 2", "p 1", "# comment", "f", "fv 1 2 3", "vertex 1 2 3"]
_BROKEN_LINES = ["v", "v 1", "\\"]


def _sometimes(draw, good, bad, broken):
    return draw(bad) if broken and draw(st.integers(0, 3)) == 0 else draw(good)


@st.composite
def _obj_line(draw, broken):
    kind = draw(st.sampled_from(["v", "v", "v", "f", "f", "other"]))
    separator = draw(st.sampled_from([" ", "  ", "\t", " \t "]))
    if kind == "v":
        count = draw(st.sampled_from([3, 3, 3, 4, 6, 7]))
        numbers = [_sometimes(draw, _NUMBER, _BROKEN_NUMBER, broken) for _ in range(count)]
        line = "v" + separator + separator.join(numbers)
    elif kind == "f":
        corners = []
        for _ in range(draw(st.sampled_from([0, 1, 2, 3, 3, 3, 3, 4, 4, 5, 6]))):
            index = _sometimes(draw, _INDEX, _BROKEN_INDEX, broken)
            form = _sometimes(draw, st.sampled_from(_FORMS), st.sampled_from(_BROKEN_FORMS), broken)
            corners.append(form.format(index))
        line = "f" + separator + separator.join(corners)
    else:
        line = _sometimes(draw, st.sampled_from(_OTHER_LINES), st.sampled_from(_BROKEN_LINES), broken)
    if draw(st.integers(0, 3)) == 0:
        line = draw(st.sampled_from([" ", "\t", "  "])) + line
    if draw(st.integers(0, 5)) == 0:
        # Continue the line on the next one, at a separator, with odd spacing around the "\\".
        cut = draw(st.sampled_from([m.start() for m in re.finditer(r"\s", line)] or [len(line)]))
        line = line[:cut] + draw(st.sampled_from([" \\", "\\", " \\ \t", "\\ # note"])) + "\n" + line[cut:]
    if draw(st.integers(0, 5)) == 0:
        line += draw(st.sampled_from([" # trailing", "#", "# ends in a path C:\\models\\"]))
    if broken and draw(st.integers(0, 9)) == 0:
        line += " \\"  # runs into whatever comes next
    return line


@st.composite
def obj_texts(draw):
    broken = draw(st.integers(0, 3)) == 0
    vertices = [f"v {i} {i * i % 7} {i % 3}" for i in range(draw(st.integers(0, 6)))]
    lines = vertices + draw(st.lists(_obj_line(broken), max_size=30))
    return "\n".join(lines).replace("\n", draw(st.sampled_from(["\n", "\r\n"])))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj_texts())
def test_vectorised_and_reference_parsers_agree(raw):
    text = _normalise_text(raw)
    fast = _parse_vectorised(text)
    try:
        reference, lines = _parse_by_line(text, "fuzz")
    except MeshError as err:
        assert fast is None, f"vectorised parser accepted what the reference rejects: {err}"
        with pytest.raises(MeshError, match="^line "):
            parse_obj(raw)
        return
    if fast is not None:
        assert same_polygons(fast, reference)
    assert len(lines) == len(reference.counts)
    try:
        expected = triangulate(reference)
    except PolygonError as err:
        # A polygon no triangulation fits is refused, on the line that holds it.
        with pytest.raises(MeshError) as info:
            parse_obj(raw)
        assert info.value.reason == f"line {lines[err.polygon]}: {err.reason}"
        return
    assert same_mesh(parse_obj(raw), expected)
