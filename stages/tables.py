"""The pipeline's tables: one Arrow schema and one pandera schema per table, checked on write and read.

Every table is a Parquet dataset made of shard files; a shard is what one Snakemake job writes.
Arrays live in binary columns as raw little-endian buffers (documented per column below), which
keeps Parquet files compact and reading them free of per-element Python objects.

Writers are atomic: a shard is written to `.<name>.tmp-<pid>` and renamed into place only when
complete, so an interrupted job never leaves a shard that looks finished. Every data page carries
a CRC checksum that readers verify, so a shard damaged after it was written (truncated, bytes
overwritten) is refused with one line naming the file rather than read as different numbers.
"""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pyarrow
import pyarrow.parquet as pq

from stages.atomic import atomic_path
from stages.errors import StageError, one_line

# Arrow's default jemalloc pool keeps freed memory for reuse, so a job's resident memory creeps
# up with every partition it reads (measured: +140 MB over 60 partitions of a voxelize job);
# the system allocator gives it back, which keeps a job's memory bounded by one partition.
pyarrow.set_memory_pool(pyarrow.system_memory_pool())

SPLITS = ("train", "val", "test")
DATASETS = ("single", "pairs", "triplets")
REALISMS = ("low", "high")


class SchemaViolation(StageError):
    """A table failed its schema, or a shard is unreadable; the message names the table and the
    file (and the column and row where the schema failed)."""


@dataclass(frozen=True)
class TableSpec:
    name: str
    arrow: pyarrow.Schema
    checks: pa.DataFrameSchema
    doc: str

    @property
    def columns(self) -> list[str]:
        return self.arrow.names


def _byte_length_is(column: str, count_column: str, bytes_per_count: int):
    """A row check: len(column) == bytes_per_count * count_column (binary-encoded arrays)."""

    def check(df: pd.DataFrame) -> pd.Series:
        lengths = df[column].map(len)
        return lengths == df[count_column].astype("int64") * bytes_per_count

    return pa.Check(check, name=f"len({column}) == {bytes_per_count} * {count_column}")


def _list_length_is(column: str, count_column: str):
    def check(df: pd.DataFrame) -> pd.Series:
        return df[column].map(len) == df[count_column].astype("int64")

    return pa.Check(check, name=f"len({column}) == {count_column}")


def _str(**kwargs) -> pa.Column:
    return pa.Column(str, nullable=False, **kwargs)


def _binary(checks=()) -> pa.Column:
    if isinstance(checks, pa.Check):
        checks = [checks]
    is_bytes = pa.Check(lambda s: s.map(lambda v: isinstance(v, bytes)), name="is bytes")
    return pa.Column(object, [is_bytes, *checks], nullable=False)


def _list_of_str() -> pa.Column:
    return pa.Column(
        object,
        pa.Check(
            lambda s: s.map(lambda v: all(isinstance(x, str) for x in v)), name="list of str"
        ),
        nullable=False,
    )


SYNSET = _str(checks=pa.Check.str_matches(r"^\d{8}$"))
SPLIT = _str(checks=pa.Check.isin(SPLITS))
BOUNDS = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z")

MESHES = TableSpec(
    name="meshes",
    arrow=pyarrow.schema(
        [
            ("synset", pyarrow.string()),
            ("mesh_id", pyarrow.string()),
            ("source_path", pyarrow.string()),
            ("num_vertices", pyarrow.int64()),
            ("num_faces", pyarrow.int64()),
            ("unused_vertices", pyarrow.int64()),
            ("vertices", pyarrow.binary()),
            ("faces", pyarrow.binary()),
            *[(b, pyarrow.float64()) for b in BOUNDS],
        ]
    ),
    checks=pa.DataFrameSchema(
        {
            "synset": SYNSET,
            "mesh_id": _str(checks=pa.Check.str_length(min_value=1)),
            "source_path": _str(),
            "num_vertices": pa.Column("int64", pa.Check.ge(3)),
            "num_faces": pa.Column("int64", pa.Check.ge(1)),
            "unused_vertices": pa.Column("int64", pa.Check.ge(0)),
            "vertices": _binary(),
            "faces": _binary(),
            **{b: pa.Column("float64", pa.Check(np.isfinite, name="finite")) for b in BOUNDS},
        },
        checks=[
            _byte_length_is("vertices", "num_vertices", 12),
            _byte_length_is("faces", "num_faces", 12),
        ],
        unique=["synset", "mesh_id"],
        strict=True,
    ),
    doc="One row per usable mesh. vertices: float32 LE [num_vertices, 3], only those faces use; "
    "faces: int32 LE [num_faces, 3], 0-based, polygons cut into triangles; unused_vertices: how "
    "many vertices of the file no face uses (dropped); min_*/max_*: axis-aligned bounds of the "
    "stored vertices.",
)

QUARANTINE = TableSpec(
    name="quarantine",
    arrow=pyarrow.schema(
        [
            ("synset", pyarrow.string()),
            ("mesh_id", pyarrow.string()),
            ("source_path", pyarrow.string()),
            ("reason", pyarrow.string()),
        ]
    ),
    checks=pa.DataFrameSchema(
        {
            "synset": _str(),
            "mesh_id": _str(),
            "source_path": _str(),
            "reason": _str(checks=pa.Check.str_length(min_value=1)),
        },
        strict=True,
    ),
    doc="One row per mesh that could not be used, with the reason.",
)

SCENES = TableSpec(
    name="scenes",
    arrow=pyarrow.schema(
        [
            ("scene_id", pyarrow.string()),
            ("dataset", pyarrow.string()),
            ("split", pyarrow.string()),
            ("num_objects", pyarrow.int64()),
            ("mesh_labels", pyarrow.list_(pyarrow.string())),
            ("mesh_ids", pyarrow.list_(pyarrow.string())),
            ("object_to_world", pyarrow.binary()),
            ("view_transform", pyarrow.binary()),
            ("camera_transform", pyarrow.binary()),
            ("seed", pyarrow.int64()),
            ("source", pyarrow.string()),
        ]
    ),
    checks=pa.DataFrameSchema(
        {
            "scene_id": _str(),
            "dataset": _str(),
            "split": SPLIT,
            "num_objects": pa.Column("int64", pa.Check.ge(1)),
            "mesh_labels": _list_of_str(),
            "mesh_ids": _list_of_str(),
            "object_to_world": _binary(),
            "view_transform": _binary(checks=pa.Check(lambda s: s.map(len) == 128, name="4x4 float64")),
            "camera_transform": _binary(checks=pa.Check(lambda s: s.map(len) == 128, name="4x4 float64")),
            "seed": pa.Column("int64"),
            "source": _str(checks=pa.Check.isin(["synthetic", "corenet"])),
        },
        checks=[
            _byte_length_is("object_to_world", "num_objects", 128),
            _list_length_is("mesh_labels", "num_objects"),
            _list_length_is("mesh_ids", "num_objects"),
        ],
        unique=["scene_id"],
        strict=True,
    ),
    doc="One row per scene. mesh_labels: synset per object; object_to_world: float64 LE "
    "[num_objects, 4, 4]; view_transform (world -> reconstruction space, the unit cube) and "
    "camera_transform (reconstruction -> image space): float64 LE [4, 4]; seed drives rendering.",
)

RENDERS = TableSpec(
    name="renders",
    arrow=pyarrow.schema(
        [
            ("scene_id", pyarrow.string()),
            ("realism", pyarrow.string()),
            ("width", pyarrow.int64()),
            ("height", pyarrow.int64()),
            ("image", pyarrow.binary()),
            ("num_objects", pyarrow.int64()),
            ("visible_fractions", pyarrow.binary()),
        ]
    ),
    checks=pa.DataFrameSchema(
        {
            "scene_id": _str(),
            "realism": _str(checks=pa.Check.isin(REALISMS)),
            "width": pa.Column("int64", pa.Check.ge(1)),
            "height": pa.Column("int64", pa.Check.ge(1)),
            "image": _binary(checks=pa.Check(lambda s: s.map(lambda b: b[:4] in (b"\x89PNG", b"RIFF")), name="PNG or WebP")),
            "num_objects": pa.Column("int64", pa.Check.ge(1)),
            "visible_fractions": _binary(),
        },
        checks=[_byte_length_is("visible_fractions", "num_objects", 4)],
        unique=["scene_id", "realism"],
        strict=True,
    ),
    doc="One input image per scene and realism level. image: PNG (WebP for imported CoReNet "
    "scenes) bytes, RGB; visible_fractions: float32 LE [num_objects], the fraction of each "
    "object's pixels that stay visible in the full scene.",
)

VOXELS = TableSpec(
    name="voxels",
    arrow=pyarrow.schema(
        [
            ("scene_id", pyarrow.string()),
            ("resolution", pyarrow.int64()),
            ("num_objects", pyarrow.int64()),
            ("encoding", pyarrow.string()),
            ("grid", pyarrow.binary()),
            ("object_voxels", pyarrow.binary()),
        ]
    ),
    checks=pa.DataFrameSchema(
        {
            "scene_id": _str(),
            "resolution": pa.Column("int64", pa.Check.isin([16, 32, 64, 128, 256])),
            "num_objects": pa.Column("int64", pa.Check.ge(1)),
            "encoding": _str(checks=pa.Check.isin(["packbits-zlib-v1"])),
            "grid": _binary(),
            "object_voxels": _binary(),
        },
        checks=[_byte_length_is("object_voxels", "num_objects", 8)],
        unique=["scene_id"],
        strict=True,
    ),
    doc="Ground-truth occupancy per scene: grid holds one bool plane per object, shape "
    "[num_objects, D, H, W] (D=H=W=resolution, indexed [k, j, i] = [z, y, x] in voxel space), "
    "bit-packed with numpy.packbits (big-endian bit order, C order) then zlib-compressed "
    "(encoding 'packbits-zlib-v1', see stages.voxel_codec); object_voxels: int64 LE "
    "[num_objects], occupied voxels per object.",
)

TABLES = {t.name: t for t in (MESHES, QUARANTINE, SCENES, RENDERS, VOXELS)}


def validate(df: pd.DataFrame, spec: TableSpec, where: str = "") -> pd.DataFrame:
    """Check `df` against the table's schema; raise SchemaViolation naming table, column, row."""
    missing = [c for c in spec.columns if c not in df.columns]
    extra = [c for c in df.columns if c not in spec.columns]
    label = f"{spec.name} table" + (f" ({where})" if where else "")
    if missing or extra:
        raise SchemaViolation(f"{label}: columns missing {missing}, unexpected {extra}")
    if df.empty:
        return df
    try:
        return spec.checks.validate(df, lazy=True)
    except pa.errors.SchemaErrors as err:
        raise SchemaViolation(_describe_failure(label, err.failure_cases)) from None


def _describe_failure(label: str, cases: pd.DataFrame) -> str:
    first = cases.iloc[0]
    column = first.get("column")
    row = first.get("index")
    check = first.get("check")
    value = first.get("failure_case")
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    more = f" (and {len(cases) - 1} more failures)" if len(cases) > 1 else ""
    column_text = f"column {column!r}" if column is not None and column == column else "row check"
    row_text = f"row {int(row)}" if row is not None and row == row else "all rows"
    return f"{label}: {column_text}, {row_text}: check {check!s} failed on value {text}{more}"


def to_arrow(df: pd.DataFrame, spec: TableSpec) -> pyarrow.Table:
    return pyarrow.Table.from_pandas(df[spec.columns], schema=spec.arrow, preserve_index=False)


class ShardWriter:
    """Stream validated partitions into one Parquet shard (one row group each), atomically.

    Memory stays bounded by one partition: each partition is validated and written as it
    arrives. The file is written under `stages.atomic`'s temporary name and appears under its
    final name only in `close()`; `abort()` (or an exception in a `with` block, or a failing
    close) removes the temporary file.
    """

    def __init__(self, path: str | os.PathLike, spec: TableSpec):
        self.path = Path(path)
        self.spec = spec
        self.rows = 0
        with self._naming_failures(), ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.path))  # creates the parent folders
            self._writer = stack.enter_context(
                pq.ParquetWriter(tmp, spec.arrow, compression="zstd", write_page_checksum=True))
            self._files = stack.pop_all()

    def write(self, df: pd.DataFrame) -> None:
        validate(df, self.spec, where=str(self.path))
        if len(df):
            with self._naming_failures():
                self._writer.write_table(to_arrow(df, self.spec))
            self.rows += len(df)

    def close(self) -> None:
        with self._naming_failures():
            self._files.close()  # closes the Parquet writer, then renames the file into place

    def abort(self) -> None:
        with self._naming_failures():
            self._files.__exit__(_Aborted, _Aborted(), None)  # closes the writer, removes the file

    @contextmanager
    def _naming_failures(self):
        """Arrow's write errors (a full disk: EFBIG, ENOSPC) name no file: name the shard."""
        try:
            yield
        except OSError as err:
            if err.filename is not None:
                raise
            reason = os.strerror(err.errno) if err.errno else one_line(err)
            raise OSError(err.errno, f"could not write the shard: {reason}", str(self.path)) from None

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            with self._naming_failures():
                self._files.__exit__(exc_type, exc, tb)


class _Aborted(Exception):
    """Stands for the reason of an explicit `ShardWriter.abort()` (never raised)."""


def write_shard(df: pd.DataFrame, path: str | os.PathLike, spec: TableSpec) -> None:
    with ShardWriter(path, spec) as writer:
        writer.write(df)


def shard_path(root: str | os.PathLike, shard: int, split: str | None = None) -> Path:
    """The file of one shard: ROOT[/SPLIT]/shard-NNNNN.parquet."""
    root = Path(root)
    if split is not None:
        root = root / split
    return root / f"shard-{shard:05d}.parquet"


def shard_files(root: str | os.PathLike) -> list[Path]:
    """All shard files under a table folder (any split), sorted."""
    return sorted(Path(root).rglob("shard-*.parquet"))


def _as_files(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(shard_files(p))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"table shard not found: {p}")
    return files


# What Arrow raises on a damaged file (a footer whose names are no longer UTF-8 included).
READ_ERRORS = (OSError, pyarrow.ArrowException, UnicodeDecodeError)


def unreadable(path: Path, spec: TableSpec, err: BaseException) -> SchemaViolation:
    """The error for a shard Parquet cannot read (truncated, overwritten, a failed checksum)."""
    return SchemaViolation(f"{spec.name} table ({path}): unreadable Parquet, truncated or corrupt "
                           f"(rebuild it): {one_line(err)}")


def open_shard(path: Path, spec: TableSpec) -> pq.ParquetFile:
    """Open one shard of `spec`'s table, its footer and columns checked, its page checksums
    verified on every read."""
    try:
        pf = pq.ParquetFile(path, page_checksum_verification=True)
        names = pf.schema_arrow.names
    except READ_ERRORS as err:
        raise unreadable(path, spec, err) from None
    if names != spec.columns:
        raise SchemaViolation(
            f"{spec.name} table ({path}): columns {names} do not match the schema {spec.columns}"
        )
    return pf


def iter_batches(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    spec: TableSpec,
    columns: Sequence[str] | None = None,
    batch_rows: int = 256,
) -> Iterator[pd.DataFrame]:
    """Yield validated DataFrames of at most `batch_rows` rows; memory stays per batch."""
    for path in _as_files(paths):
        pf = open_shard(path, spec)
        batches = pf.iter_batches(batch_size=batch_rows, columns=list(columns or spec.columns))
        while True:
            try:
                df = next(batches).to_pandas()
            except StopIteration:
                break
            except READ_ERRORS as err:  # a damaged page: never partial data
                raise unreadable(path, spec, err) from None
            yield _validate_columns(df, spec, path)


def _validate_columns(df: pd.DataFrame, spec: TableSpec, path: Path) -> pd.DataFrame:
    if list(df.columns) == spec.columns:
        return validate(df, spec, where=str(path))
    # A column projection: check the columns read, leave out row checks that need others.
    partial = pa.DataFrameSchema(
        {c: spec.checks.columns[c] for c in df.columns}, strict=True
    )
    try:
        return partial.validate(df, lazy=True)
    except pa.errors.SchemaErrors as err:
        raise SchemaViolation(
            _describe_failure(f"{spec.name} table ({path})", err.failure_cases)
        ) from None


def read_table(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    spec: TableSpec,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Read and validate whole shards (use iter_batches for bounded memory)."""
    frames = list(iter_batches(paths, spec, columns=columns, batch_rows=65536))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in (columns or spec.columns)})
    return pd.concat(frames, ignore_index=True)


def count_rows(paths: str | os.PathLike | Sequence[str | os.PathLike], spec: TableSpec) -> int:
    return sum(open_shard(p, spec).metadata.num_rows for p in _as_files(paths))


# Binary array columns ---------------------------------------------------------------------


def pack_array(array: np.ndarray, dtype: str) -> bytes:
    """Encode an array as raw little-endian bytes of `dtype` (e.g. '<f4', '<i4', '<f8')."""
    return np.ascontiguousarray(array, dtype=np.dtype(dtype)).tobytes()


def unpack_array(buffer: bytes, dtype: str, shape: Iterable[int]) -> np.ndarray:
    """Decode raw little-endian bytes into an array of `shape` (a -1 is inferred)."""
    return np.frombuffer(buffer, dtype=np.dtype(dtype)).reshape(tuple(shape))
