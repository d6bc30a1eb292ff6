import numpy as np
import pandas as pd
import pytest

from stages.tables import (
    MESHES,
    QUARANTINE,
    SchemaViolation,
    ShardWriter,
    iter_batches,
    read_table,
    write_shard,
)
from stages.voxel_codec import decode_planes, encode_planes, labels_from_planes
from mesh_fixtures import PRIMITIVES, mesh_row


def _meshes(n=3):
    return pd.DataFrame([mesh_row("03001627", f"m{i}", PRIMITIVES["box"]()) for i in range(n)], columns=MESHES.columns)


def test_round_trip(tmp_path):
    frame = _meshes()
    write_shard(frame, tmp_path / "shard-00000.parquet", MESHES)
    back = read_table(tmp_path, MESHES)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)


def test_violation_names_table_column_and_row(tmp_path):
    frame = _meshes()
    frame.loc[1, "synset"] = "chair"
    with pytest.raises(SchemaViolation, match=r"meshes table .*column 'synset', row 1: check str_matches"):
        write_shard(frame, tmp_path / "shard-00000.parquet", MESHES)
    assert not list(tmp_path.iterdir()), "a failed write must leave nothing behind"


def test_row_check_names_row(tmp_path):
    frame = _meshes()
    frame.loc[2, "num_faces"] = 5
    with pytest.raises(SchemaViolation, match=r"row 2: check len\(faces\) == 12 \* num_faces"):
        write_shard(frame, tmp_path / "x.parquet", MESHES)


def test_violation_on_read(tmp_path):
    # A file written by another tool with a bad value is caught when the next stage reads it.
    frame = _meshes()
    frame.loc[0, "max_x"] = np.inf
    frame.to_parquet(tmp_path / "shard-00000.parquet", index=False)
    with pytest.raises(SchemaViolation, match=r"column 'max_x', row 0: check finite"):
        read_table(tmp_path, MESHES)


def test_wrong_columns_on_read(tmp_path):
    _meshes().to_parquet(tmp_path / "shard-00000.parquet", index=False)
    with pytest.raises(SchemaViolation, match="quarantine table .*do not match the schema"):
        read_table(tmp_path, QUARANTINE)


def test_streaming_writer_is_atomic(tmp_path):
    path = tmp_path / "shard-00000.parquet"
    with pytest.raises(RuntimeError):
        with ShardWriter(path, MESHES) as writer:
            writer.write(_meshes(2))
            raise RuntimeError("job killed")
    assert list(tmp_path.iterdir()) == []
    with ShardWriter(path, MESHES) as writer:
        writer.write(_meshes(2))
        writer.write(_meshes(0))
        writer.write(_meshes(1).assign(mesh_id="other"))
    assert writer.rows == 3
    batches = list(iter_batches(path, MESHES, batch_rows=2))
    assert [len(b) for b in batches] == [2, 1]


def test_projection_checks_columns_read(tmp_path):
    write_shard(_meshes(), tmp_path / "shard-00000.parquet", MESHES)
    frame = read_table(tmp_path, MESHES, columns=["synset", "mesh_id"])
    assert list(frame.columns) == ["synset", "mesh_id"] and len(frame) == 3


def test_empty_shard(tmp_path):
    write_shard(_meshes(0), tmp_path / "shard-00000.parquet", MESHES)
    assert len(read_table(tmp_path, MESHES)) == 0


def test_voxel_codec_round_trip_and_labels():
    rng = np.random.default_rng(0)
    planes = rng.random((3, 16, 16, 16)) < 0.2
    encoded = encode_planes(planes)
    assert np.array_equal(decode_planes(encoded, 3, 16), planes)
    with pytest.raises(ValueError, match="expected 1024 for shape"):
        decode_planes(encoded, 2, 16)
    labels = labels_from_planes(planes)
    # Independent reference: first plane (in object order) that is set, else 0.
    expected = np.where(planes.any(0), planes.argmax(0) + 1, 0)
    assert np.array_equal(labels, expected)
