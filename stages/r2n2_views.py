"""r2n2_views: ShapeNetRendering + ShapeNetVox32 folders (real or rendered by render_views) ->
the 3D-R2N2 view table, one row per model.

    python -m stages.r2n2_views --rendering ROOT... --voxels ROOT... --out views.parquet \\
        --quarantine views_quarantine.parquet [--split original|pix2vox --split-file ShapeNet.json]

The layout (3D-R2N2's released data, and what `stages.render_views` writes):

    <rendering root>/<synset>/<model_id>/rendering/00.png .. 23.png   137x137 RGBA
                                                  /renderings.txt          one file name a line
                                                  /rendering_metadata.txt  one view a line:
        azimuth elevation in-plane-rotation distance-ratio field-of-view
    <voxels root>/<synset>/<model_id>/model.binvox                         32^3

Row i of rendering_metadata.txt describes the file on line i of renderings.txt. The camera sits
at distance ratio * 1.75 (3D-R2N2's RENDERING.MAX_CAMERA_DIST) from the object's centre; the
fifth column is always 25 in the released files, although Blender rendered them with its default
lens (see `stages.render_views`).

Splits: `original` is 3D-R2N2's rule (per class, model ids sorted, the first 80% train, the
rest test; no val); `pix2vox` reads a Pix2Vox ShapeNet.json (a list of {taxonomy_id, train,
val, test}); models it does not list are left out of the table (counted in the log). The split
is computed over every model found, so one broken folder does not move the others.

A model whose folder cannot be used (missing or unreadable images, metadata that does not match
the image list, missing or unreadable binvox, wrong sizes) becomes a row of the quarantine table
with the reason; the run goes on.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
from PIL import Image

from stages.cli import run
from stages.formats.binvox import read_binvox
from stages.parallel import add_dask_arguments, chunk, dask_options, map_partitions
from stages.tables import SPLITS, TableSpec, ShardWriter, pack_array, write_shard
from stages.taxonomy import class_name
from stages.voxel_codec import ENCODING, encode_planes

RENDERING_DIR = "rendering"
RENDERINGS_LIST = "renderings.txt"
METADATA_FILE = "rendering_metadata.txt"
BINVOX_FILE = "model.binvox"
MAX_CAMERA_DIST = 1.75  # 3D-R2N2 lib/config.py: RENDERING.MAX_CAMERA_DIST
METADATA_COLUMNS = ("azimuth", "elevation", "inplane", "distance_ratio", "fov")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRAIN_FRACTION = 0.8  # 3D-R2N2 lib/config.py: TRAIN.DATASET_PORTION = [0, 0.8]


# The layout's text files ------------------------------------------------------------------


def format_metadata_line(values: Sequence[float]) -> str:
    """One line of rendering_metadata.txt. The released files hold Python 2's str() of each
    float (12 significant digits, integers without a point: `222.956664706 28.6626066017 0
    0.926673522361 25`); '%.12g' writes the same text."""
    if len(values) != len(METADATA_COLUMNS):
        raise ValueError(f"a metadata line has {len(METADATA_COLUMNS)} values, got {len(values)}")
    return " ".join(f"{float(v):.12g}" for v in values)


def parse_rendering_metadata(text: str, where: str = METADATA_FILE) -> np.ndarray:
    """float64 [views, 5] from rendering_metadata.txt; blank lines, any whitespace and CRLF
    endings are accepted, anything but five finite numbers a line is an error."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            values = [float(f) for f in fields]
        except ValueError:
            raise ValueError(f"{where} line {number}: not numbers: {line.strip()[:60]!r}") from None
        if len(values) != len(METADATA_COLUMNS) or not np.isfinite(values).all():
            raise ValueError(
                f"{where} line {number}: expected 5 finite numbers "
                f"({' '.join(METADATA_COLUMNS)}), got {line.strip()[:60]!r}"
            )
        rows.append(values)
    return np.array(rows, dtype=np.float64).reshape(-1, len(METADATA_COLUMNS))


def parse_renderings_list(text: str) -> list[str]:
    """File names from renderings.txt, one a line; blank lines and surrounding spaces ignored."""
    return [line.strip() for line in text.splitlines() if line.strip()]


# Splits -------------------------------------------------------------------------------------


def original_split(keys: Sequence[tuple[str, str]], train_fraction: float = TRAIN_FRACTION) -> dict[tuple[str, str], str]:
    """3D-R2N2's split: per class, model ids sorted, models[:int(n * 0.8)] train, the rest test
    (lib/data_io.py slices each class's model list by DATASET_PORTION)."""
    by_class: dict[str, list[str]] = {}
    for synset, model_id in keys:
        by_class.setdefault(synset, []).append(model_id)
    split = {}
    for synset, ids in by_class.items():
        ids = sorted(set(ids))
        cut = int(len(ids) * train_fraction)
        split.update({(synset, m): ("train" if i < cut else "test") for i, m in enumerate(ids)})
    return split


def read_pix2vox_split(path: str | os.PathLike) -> dict[tuple[str, str], str]:
    """(synset, model_id) -> split from a Pix2Vox ShapeNet.json: a list of
    {"taxonomy_id": ..., "train": [ids], "val": [ids], "test": [ids]}."""
    try:
        taxonomies = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SystemExit(f"r2n2_views: {path}: unreadable split file: {err}") from None
    if not isinstance(taxonomies, list):
        raise SystemExit(f"r2n2_views: {path}: expected a JSON list of taxonomies")
    split: dict[tuple[str, str], str] = {}
    for entry in taxonomies:
        if not isinstance(entry, dict) or "taxonomy_id" not in entry:
            raise SystemExit(f"r2n2_views: {path}: every entry needs a taxonomy_id")
        for name in SPLITS:
            for model_id in entry.get(name, []):
                key = (str(entry["taxonomy_id"]), str(model_id))
                if split.setdefault(key, name) != name:
                    raise SystemExit(f"r2n2_views: {path}: {key[0]}/{key[1]} is in two splits")
    return split


# The table --------------------------------------------------------------------------------


def _png_list(s: pd.Series) -> pd.Series:
    return s.map(lambda images: all(isinstance(b, bytes) and b[:8] == PNG_SIGNATURE for b in images))


R2N2_VIEWS = TableSpec(
    name="r2n2_views",
    arrow=pyarrow.schema(
        [
            ("synset", pyarrow.string()),
            ("class_name", pyarrow.string()),
            ("model_id", pyarrow.string()),
            ("split", pyarrow.string()),
            ("num_views", pyarrow.int64()),
            ("images", pyarrow.list_(pyarrow.binary())),
            ("metadata", pyarrow.binary()),
            ("resolution", pyarrow.int64()),
            ("encoding", pyarrow.string()),
            ("voxels", pyarrow.binary()),
            ("occupied", pyarrow.int64()),
        ]
    ),
    checks=pa.DataFrameSchema(
        {
            "synset": pa.Column(str, pa.Check.str_matches(r"^\d{8}$")),
            "class_name": pa.Column(str, pa.Check.str_length(min_value=1)),
            "model_id": pa.Column(str, pa.Check.str_length(min_value=1)),
            "split": pa.Column(str, pa.Check.isin(SPLITS)),
            "num_views": pa.Column("int64", pa.Check.ge(1)),
            "images": pa.Column(object, pa.Check(_png_list, name="list of PNG bytes")),
            "metadata": pa.Column(object, pa.Check(lambda s: s.map(lambda v: isinstance(v, bytes)), name="is bytes")),
            "resolution": pa.Column("int64", pa.Check.ge(1)),
            "encoding": pa.Column(str, pa.Check.isin([ENCODING])),
            "voxels": pa.Column(object, pa.Check(lambda s: s.map(lambda v: isinstance(v, bytes)), name="is bytes")),
            "occupied": pa.Column("int64", pa.Check.ge(0)),
        },
        checks=[
            pa.Check(lambda df: df["images"].map(len) == df["num_views"], name="len(images) == num_views"),
            pa.Check(lambda df: df["metadata"].map(len) == 40 * df["num_views"], name="len(metadata) == 40 * num_views"),
        ],
        unique=["synset", "model_id"],
        strict=True,
    ),
    doc="One row per model. images: the PNG files (RGBA, object on a transparent background) "
    "in renderings.txt order; metadata: float64 LE [num_views, 5] = azimuth, elevation, in-plane "
    "rotation, distance ratio, field of view per view; voxels: the binvox grid as one plane "
    "[1, R, R, R] indexed [z, y, x] (binvox's [x, y, z] transposed, like every grid of the "
    "pipeline), packbits-zlib-v1 (stages.voxel_codec); occupied: voxels set.",
)

R2N2_QUARANTINE = TableSpec(
    name="r2n2_quarantine",
    arrow=pyarrow.schema(
        [
            ("synset", pyarrow.string()),
            ("model_id", pyarrow.string()),
            ("path", pyarrow.string()),
            ("reason", pyarrow.string()),
        ]
    ),
    checks=pa.DataFrameSchema(
        {
            "synset": pa.Column(str),
            "model_id": pa.Column(str),
            "path": pa.Column(str),
            "reason": pa.Column(str, pa.Check.str_length(min_value=1)),
        },
        strict=True,
    ),
    doc="One row per model folder that could not be used, with the reason.",
)


# Reading model folders ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelFolders:
    """Where one model's files are; None when that half of the layout lacks the model."""

    synset: str
    model_id: str
    rendering: Path | None  # <root>/<synset>/<model_id>
    voxels: Path | None  # <root>/<synset>/<model_id>


def _model_dirs(root: Path) -> dict[tuple[str, str], Path]:
    if not root.is_dir():
        raise SystemExit(f"r2n2_views: {root}: not a directory")
    found = {}
    for synset_dir in sorted(root.iterdir()):
        # Hidden names are render_views' unfinished temporary folders.
        if not synset_dir.is_dir() or synset_dir.name.startswith("."):
            continue
        for model_dir in sorted(synset_dir.iterdir()):
            if model_dir.is_dir() and not model_dir.name.startswith("."):
                found[(synset_dir.name, model_dir.name)] = model_dir
    return found


def discover_models(rendering_roots: Sequence[Path], voxel_roots: Sequence[Path]) -> list[ModelFolders]:
    """Every (synset, model_id) under any rendering or voxels root, sorted."""
    halves: list[dict[tuple[str, str], Path]] = [{}, {}]
    for half, roots in zip(halves, (rendering_roots, voxel_roots)):
        for root in roots:
            for key, path in _model_dirs(Path(root)).items():
                if key in half:
                    raise SystemExit(f"r2n2_views: {key[0]}/{key[1]} is in both {half[key]} and {path}")
                half[key] = path
    keys = sorted(halves[0].keys() | halves[1].keys())
    return [ModelFolders(s, m, halves[0].get((s, m)), halves[1].get((s, m))) for s, m in keys]


class FolderError(ValueError):
    """A model folder that cannot be used; the message is the quarantine reason."""


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as err:
        raise FolderError(f"unreadable {path.name}: {err.strerror or err}") from None


def _read_png(path: Path, size: int) -> bytes:
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise FolderError(f"{path.name} is {image.format}, not PNG")
            if image.size != (size, size) or image.mode != "RGBA":
                raise FolderError(f"{path.name} is {image.size[0]}x{image.size[1]} {image.mode}, expected {size}x{size} RGBA")
            image.verify()  # chunk checksums, without decoding the pixels
    except FolderError:
        raise
    except FileNotFoundError:
        raise FolderError(f"missing image {path.name}") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise FolderError(f"unreadable image {path.name}: {err}") from None
    return data


def read_rendering(folder: Path, views: int, size: int) -> tuple[list[bytes], np.ndarray]:
    """(PNG bytes per view, metadata float64 [views, 5]) of one model's rendering folder."""
    rendering = folder / RENDERING_DIR
    if not rendering.is_dir():
        raise FolderError(f"no {RENDERING_DIR}/ folder")
    names = parse_renderings_list(_read_text(rendering / RENDERINGS_LIST))
    try:
        metadata = parse_rendering_metadata(_read_text(rendering / METADATA_FILE))
    except ValueError as err:
        raise FolderError(str(err)) from None
    if len(names) != views:
        raise FolderError(f"{RENDERINGS_LIST} lists {len(names)} images, expected {views}")
    if len(metadata) != len(names):
        raise FolderError(f"{METADATA_FILE} has {len(metadata)} lines for {len(names)} images")
    if any(Path(n).name != n for n in names):
        raise FolderError(f"{RENDERINGS_LIST} names a file outside rendering/")
    return [_read_png(rendering / n, size) for n in names], metadata


def read_voxels(folder: Path, resolution: int) -> np.ndarray:
    """bool [R, R, R] indexed [z, y, x] from <folder>/model.binvox."""
    path = folder / BINVOX_FILE
    if not path.is_file():
        raise FolderError(f"missing {BINVOX_FILE}")
    try:
        grid = read_binvox(path).grid
    except (OSError, ValueError) as err:
        raise FolderError(f"unreadable {BINVOX_FILE}: {err}") from None
    if grid.shape != (resolution,) * 3:
        raise FolderError(f"{BINVOX_FILE} is {'x'.join(map(str, grid.shape))}, expected {resolution}^3")
    return np.ascontiguousarray(grid.transpose(2, 1, 0))


def read_model(model: ModelFolders, split: str, views: int, size: int, resolution: int) -> dict:
    """One table row; raises FolderError with the quarantine reason."""
    if model.rendering is None:
        raise FolderError("no rendering folder (only voxels)")
    if model.voxels is None:
        raise FolderError("no voxels folder (only renderings)")
    images, metadata = read_rendering(model.rendering, views, size)
    grid = read_voxels(model.voxels, resolution)
    return {
        "synset": model.synset,
        "class_name": class_name(model.synset),
        "model_id": model.model_id,
        "split": split,
        "num_views": len(images),
        "images": images,
        "metadata": pack_array(metadata, "<f8"),
        "resolution": resolution,
        "encoding": ENCODING,
        "voxels": encode_planes(grid[None]),
        "occupied": int(grid.sum()),
    }


def read_partition(
    models: list[ModelFolders], splits: dict[tuple[str, str], str], views: int, size: int, resolution: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    good, bad = [], []
    for model in models:
        try:
            good.append(read_model(model, splits[(model.synset, model.model_id)], views, size, resolution))
        except FolderError as err:
            path = model.rendering or model.voxels
            bad.append({"synset": model.synset, "model_id": model.model_id, "path": str(path), "reason": str(err)})
    return (
        pd.DataFrame(good, columns=R2N2_VIEWS.columns).astype({"num_views": "int64", "resolution": "int64", "occupied": "int64"}),
        pd.DataFrame(bad, columns=R2N2_QUARANTINE.columns),
    )


# CLI --------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.r2n2_views", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rendering", type=Path, nargs="+", required=True, help="ShapeNetRendering root(s)")
    parser.add_argument("--voxels", type=Path, nargs="+", required=True, help="ShapeNetVox32 root(s)")
    parser.add_argument("--out", type=Path, required=True, help="view table to write (Parquet)")
    parser.add_argument("--quarantine", type=Path, required=True, help="quarantine table to write (Parquet)")
    parser.add_argument("--split", choices=["original", "pix2vox"], default="original")
    parser.add_argument("--split-file", type=Path, default=None, help="Pix2Vox ShapeNet.json (--split pix2vox)")
    parser.add_argument("--train-fraction", type=float, default=TRAIN_FRACTION, help="--split original (default 0.8)")
    parser.add_argument("--views", type=int, default=24, help="views every model must have (default 24)")
    parser.add_argument("--size", type=int, default=137, help="image side in pixels (default 137)")
    parser.add_argument("--resolution", type=int, default=32, help="binvox grid side (default 32)")
    parser.add_argument("--partition-size", type=int, default=64, help="models per Dask partition (default 64)")
    add_dask_arguments(parser)
    args = parser.parse_args(argv)
    if args.split == "pix2vox" and args.split_file is None:
        parser.error("--split pix2vox needs --split-file")
    if not 0 < args.train_fraction < 1:
        parser.error("--train-fraction must be in (0, 1)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    options = dask_options(args)
    models = discover_models(args.rendering, args.voxels)
    keys = [(m.synset, m.model_id) for m in models]
    if args.split == "original":
        splits = original_split(keys, args.train_fraction)
    else:
        splits = read_pix2vox_split(args.split_file)
    listed = [m for m in models if (m.synset, m.model_id) in splits]
    work = partial(read_partition, splits=splits, views=args.views, size=args.size, resolution=args.resolution)
    quarantined = []
    with ShardWriter(args.out, R2N2_VIEWS) as writer:
        for good, bad in map_partitions(work, chunk(listed, args.partition_size), options, "r2n2_views"):
            writer.write(good)
            quarantined.append(bad)
    bad = pd.concat(quarantined, ignore_index=True) if quarantined else pd.DataFrame(columns=R2N2_QUARANTINE.columns)
    write_shard(bad, args.quarantine, R2N2_QUARANTINE)
    print(
        f"r2n2_views: {writer.rows} models, {len(bad)} quarantined, {len(models) - len(listed)} "
        f"not in the {args.split} split, of {len(models)} found -> {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    run(main)
