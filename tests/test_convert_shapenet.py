import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stages import convert_shapenet
from stages.formats.obj import write_obj
from stages.tables import BOUNDS, MESHES, QUARANTINE, read_table, unpack_array

CUBE_V = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=float) - 0.5
CUBE_F = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                   [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]])

BROKEN = {
    "no_faces": ("v 0 0 0\nv 1 0 0\nv 0 1 0\n", "no faces"),
    "nan_vertex": ("v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n", "non-finite vertex coordinates (1 of 3"),
    "bad_index": ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", "line 4: face index 9"),
    "zero_index": ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 0 1 2\n", "face index 0"),
    "bad_number": ("v 0 0 0\nv 1 zero 0\nv 0 1 0\nf 1 2 3\n", "line 2: malformed number"),
}


def model_path(root: Path, synset: str, model: str) -> Path:
    path = root / synset / model / "models" / "model_normalized.obj"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def shapenet(tmp_path) -> Path:
    root = tmp_path / "ShapeNetCore.v2"
    for i in range(6):
        write_obj(model_path(root, "03001627", f"good{i}"), CUBE_V * (i + 1), CUBE_F)
    for name, (text, _) in BROKEN.items():
        model_path(root, "04379243", name).write_text(text)
    (root / "04379243" / "missing" / "models").mkdir(parents=True)
    model_path(root, "04379243", "directory").mkdir()  # unreadable: a folder where the file should be
    return root


def convert(root, out, *extra):
    assert convert_shapenet.main(["--root", str(root), "--out", str(out), "--partition-size", "2", *extra]) == 0


def test_good_and_broken_files(shapenet, tmp_path):
    convert(shapenet, tmp_path / "out", "--scheduler", "sync")
    meshes = read_table(tmp_path / "out" / "meshes", MESHES)
    quarantine = read_table(tmp_path / "out" / "quarantine", QUARANTINE).set_index("mesh_id")
    assert sorted(meshes.mesh_id) == [f"good{i}" for i in range(6)]
    row = meshes.set_index("mesh_id").loc["good2"]
    np.testing.assert_allclose(unpack_array(row.vertices, "<f4", (-1, 3)), CUBE_V * 3, atol=1e-6)
    np.testing.assert_array_equal(unpack_array(row.faces, "<i4", (-1, 3)), CUBE_F)
    assert (row.min_x, row.max_y, row.num_faces) == (-1.5, 1.5, 12)
    expected = {name: reason for name, (_, reason) in BROKEN.items()}
    expected["missing"] = "missing models/model_normalized.obj"
    expected["directory"] = "cannot read file: Is a directory"
    assert set(quarantine.index) == set(expected)
    for name, reason in expected.items():
        assert reason in quarantine.loc[name, "reason"], (name, quarantine.loc[name, "reason"])
    assert set(quarantine.synset) == {"04379243"}


def test_shards_partition_the_models_and_dask_matches_sync(shapenet, tmp_path):
    for shard in range(3):
        convert(shapenet, tmp_path / "sharded", "--shard", str(shard), "--num-shards", "3", "--threads", "2")
    convert(shapenet, tmp_path / "whole", "--scheduler", "sync")
    for spec in (MESHES, QUARANTINE):
        sharded = read_table(tmp_path / "sharded" / spec.name, spec)
        whole = read_table(tmp_path / "whole" / spec.name, spec)
        key = ["synset", "mesh_id"]
        pd.testing.assert_frame_equal(
            sharded.sort_values(key).reset_index(drop=True), whole.sort_values(key).reset_index(drop=True)
        )
    per_shard = [len(read_table(tmp_path / "sharded" / "meshes" / f"shard-0000{s}.parquet", MESHES)) for s in range(3)]
    assert sum(per_shard) == 6


def test_missing_root_is_one_line_error(tmp_path):
    with pytest.raises(SystemExit, match="not a directory"):
        convert(tmp_path / "nope", tmp_path / "out")


def test_unused_vertex_does_not_stretch_the_bounds(tmp_path):
    # A unit cube [0, 1]^3 plus one vertex no face uses, 3 units below it.
    root = tmp_path / "ShapeNetCore.v2"
    cube = CUBE_V + 0.5
    write_obj(model_path(root, "03001627", "stray"), np.vstack([cube, [[0.5, -3.0, 0.5]]]), CUBE_F)
    write_obj(model_path(root, "03001627", "first"), np.vstack([[[9.0, 9.0, 9.0]], cube]), CUBE_F + 1)
    convert(root, tmp_path / "out", "--scheduler", "sync")
    meshes = read_table(tmp_path / "out" / "meshes", MESHES).set_index("mesh_id")
    for name in ("stray", "first"):
        row = meshes.loc[name]
        assert [row[b] for b in BOUNDS] == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
        assert (row.num_vertices, row.unused_vertices, row.num_faces) == (8, 1, 12)
        np.testing.assert_array_equal(unpack_array(row.vertices, "<f4", (-1, 3)), cube)
        np.testing.assert_array_equal(unpack_array(row.faces, "<i4", (-1, 3)), CUBE_F)


def test_nul_padded_file_is_quarantined_with_a_short_reason(tmp_path):
    root = tmp_path / "ShapeNetCore.v2"
    model_path(root, "03001627", "cut").write_bytes(b"v 0 0 0\nv 1 0 0\nv 0 1 " + b"\0" * 2**20)
    convert(root, tmp_path / "out", "--scheduler", "sync")
    reason = read_table(tmp_path / "out" / "quarantine", QUARANTINE).set_index("mesh_id").loc["cut", "reason"]
    assert reason == "line 3: malformed number '" + "\\x00" * 14 + "\\x0... in vertex"
    assert len(reason) < 200


def test_command_line_error_is_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "stages.convert_shapenet", "--root", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
        cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"convert_shapenet: {tmp_path / 'nope'}: not a directory"]
