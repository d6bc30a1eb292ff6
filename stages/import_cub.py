"""Stage `import_cub`: CUB-200-2011 with CMR's annotation cache -> pandera-checked Parquet tables.

    python -m stages.import_cub --cub-root DIR/CUB_200_2011 --annotations DIR/cachedir \
        [--parts DIR/scops] --out OUT [--splits train val test]

For every split it reads ``<annotations>/data/{split}_cub_cleaned.mat`` (required) and
``<annotations>/sfm/anno_{split}.mat`` (optional; its entries must line up with the images), the
image files under ``<cub-root>/images/<rel_path>``, and with --parts a SCOPS part map per image,
under UMR's name ``<class>/<stem>_<index>.npy`` or else SCOPS's ``<class>/<stem>.npy``. It writes
OUT/{split}.parquet (``stages.cub_tables.CUB_IMAGES``) and OUT/quarantine.parquet
(``CUB_QUARANTINE``): an entry with a missing or unreadable image, an image whose size differs
from the annotation's, a mask of another size, an empty mask, a bbox outside the image, a bad
field, or (with --parts) a missing or malformed part map goes to quarantine with its reason;
nothing is dropped silently, and counts are printed per split. A missing or unreadable
annotation file, or an SfM file of another length, stops the stage with a one-line error.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from stages.cub_tables import (
    CUB_IMAGES, CUB_QUARANTINE, NUM_PARTS, PART_MAP_DTYPE, pack_mask, quaternion_from_rotation,
)
from stages.errors import StageError, one_line, quote
from stages.formats import cub as cub_format
from stages.tables import SPLITS, ShardWriter, write_shard

BATCH_ROWS = 128


class Quarantined(Exception):
    """An entry that cannot be used; the message is the quarantine reason."""


@dataclass(frozen=True)
class Sources:
    cub_root: Path
    annotations: Path
    parts: Path | None


def _read_image(path: Path, rel_path: str) -> tuple[bytes, int, int]:
    if not path.is_file():
        raise Quarantined(f"missing file: images/{rel_path}")
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return data, image.width, image.height
    except Exception as err:  # Pillow raises many kinds for corrupt files
        reason = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "the file", one_line(err))  # no run-dependent address
        raise Quarantined(f"unreadable image images/{rel_path}: {quote(reason)}") from None


def _read_part_map(sources: Sources, rel_path: str, index: int) -> tuple[np.ndarray, str]:
    candidates = cub_format.part_map_candidates(sources.parts, rel_path, index)
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        names = " or ".join(str(p.relative_to(sources.parts)) for p in candidates)
        raise Quarantined(f"missing part map: {names}")
    try:
        array = np.load(found, allow_pickle=False)
    except Exception as err:
        raise Quarantined(f"unreadable part map {found.name}: {quote(one_line(err))}") from None
    if array.ndim != 3 or array.shape[2] != NUM_PARTS or not np.issubdtype(array.dtype, np.number):
        raise Quarantined(f"part map {found.name} has shape {array.shape} ({array.dtype}), "
                          f"expected (H, W, {NUM_PARTS}) numbers")
    if not np.all(np.isfinite(array)):
        raise Quarantined(f"part map {found.name} is not finite")
    return array, str(found)


def _row(sources: Sources, split: str, index: int, entry, sfm_entry) -> dict:
    try:
        ann = cub_format.parse_annotation(entry)
    except StageError as err:
        raise Quarantined(f"bad annotation: {err}") from None
    data, width, height = _read_image(sources.cub_root / "images" / ann.rel_path, ann.rel_path)
    if (width, height) != (ann.width, ann.height):
        raise Quarantined(f"image size {width}x{height} differs from the annotation's "
                          f"{ann.width}x{ann.height}")
    if ann.mask.shape != (height, width):
        raise Quarantined(f"mask size mismatch: mask {ann.mask.shape[1]}x{ann.mask.shape[0]}, "
                          f"image {width}x{height}")
    if not ann.mask.any():
        raise Quarantined("empty mask")
    x1, y1, x2, y2 = ann.bbox - 1.0  # UMR data/base.py: "Adjust to 0 indexing"
    if not (0 <= x1 <= x2 <= width - 1 and 0 <= y1 <= y2 <= height - 1):
        raise Quarantined(f"bbox outside the image: 0-based ({x1:g}, {y1:g}, {x2:g}, {y2:g}) "
                          f"in {width}x{height}")
    keypoints = ann.parts.T.copy()
    visible = keypoints[:, 2] > 0
    keypoints[visible, :2] -= 1.0
    keypoints[visible, 2] = 1.0
    keypoints[~visible] = 0.0
    row = {
        "split": split, "index": index, "image_id": ann.image_id, "rel_path": ann.rel_path,
        "class_id": ann.class_id, "image": data, "width": width, "height": height,
        "bbox_x1": x1, "bbox_y1": y1, "bbox_x2": x2, "bbox_y2": y2,
        "mask": pack_mask(ann.mask), "keypoints": keypoints.ravel().tolist(),
        "sfm_scale": np.nan, "sfm_translation": None, "sfm_rotation": None, "sfm_quaternion": None,
        "part_map": None, "part_height": 0, "part_width": 0, "part_map_path": "",
    }
    if sfm_entry is not None:
        try:
            sfm = cub_format.parse_sfm(sfm_entry)
        except StageError as err:
            raise Quarantined(f"bad sfm entry: {err}") from None
        row.update(sfm_scale=sfm.scale, sfm_translation=(sfm.translation - 1.0).tolist(),
                   sfm_rotation=sfm.rotation.ravel().tolist(),
                   sfm_quaternion=quaternion_from_rotation(sfm.rotation).tolist())
    if sources.parts is not None:
        part_map, path = _read_part_map(sources, ann.rel_path, index)
        row.update(part_map=np.ascontiguousarray(part_map, dtype=PART_MAP_DTYPE).tobytes(),
                   part_height=int(part_map.shape[0]), part_width=int(part_map.shape[1]),
                   part_map_path=path)
    return row


def _sfm_entries(sources: Sources, split: str, count: int) -> list | None:
    path = cub_format.sfm_path(sources.annotations, split)
    if not path.is_file():
        return None
    entries, _, _ = cub_format.load_sfm(path)
    if len(entries) != count:
        raise StageError(f"{path}: {len(entries)} sfm_anno entries for {count} images")
    return entries


def import_split(sources: Sources, split: str, out: Path, progress: bool = True) -> tuple[int, list[dict], bool]:
    """Import one split into out/{split}.parquet; returns (rows written, quarantine rows,
    whether SfM cameras were found)."""
    ann_path = cub_format.annotation_path(sources.annotations, split)
    if not ann_path.is_file():
        raise StageError(f"{ann_path}: annotation file not found")
    entries = cub_format.load_images(ann_path)
    sfm = _sfm_entries(sources, split, len(entries))
    quarantine: list[dict] = []
    batch: list[dict] = []
    with ShardWriter(out / f"{split}.parquet", CUB_IMAGES) as writer:
        for index, entry in enumerate(tqdm(entries, desc=f"import_cub {split}", unit="image",
                                           file=sys.stderr, disable=not progress)):
            try:
                batch.append(_row(sources, split, index, entry, None if sfm is None else sfm[index]))
            except Quarantined as why:
                rel = getattr(entry, "rel_path", "")
                quarantine.append({"split": split, "index": index,
                                   "rel_path": rel if isinstance(rel, str) else "",
                                   "reason": str(why)})
            if len(batch) >= BATCH_ROWS:
                writer.write(pd.DataFrame(batch, columns=CUB_IMAGES.columns))
                batch = []
        if batch:
            writer.write(pd.DataFrame(batch, columns=CUB_IMAGES.columns))
        rows = writer.rows
    return rows, quarantine, sfm is not None


def import_cub(cub_root, annotations, out, parts=None, splits: Sequence[str] = SPLITS,
               progress: bool = True) -> dict[str, tuple[int, int]]:
    """Import the splits; returns {split: (rows, quarantined)}. See the module docstring."""
    sources = Sources(Path(cub_root), Path(annotations), None if parts is None else Path(parts))
    if not (sources.cub_root / "images").is_dir():
        raise StageError(f"{sources.cub_root}: no images/ folder (expected the CUB_200_2011 folder)")
    if sources.parts is not None and not sources.parts.is_dir():
        raise StageError(f"{sources.parts}: part-map folder not found")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Every table is written into a staging folder and moved into `out` only when all splits
    # imported: a split that fails leaves the previous set of tables as it was.
    staging = Path(tempfile.mkdtemp(prefix=".import_cub-", dir=out))
    try:
        counts, quarantine = {}, []
        for split in splits:
            rows, bad, has_sfm = import_split(sources, split, staging, progress)
            quarantine.extend(bad)
            counts[split] = (rows, len(bad))
            note = "" if has_sfm else " (no sfm file: sfm columns are null)"
            print(f"import_cub: {split}: {rows} images, {len(bad)} quarantined{note}", file=sys.stderr)
        write_shard(pd.DataFrame(quarantine, columns=CUB_QUARANTINE.columns),
                    staging / "quarantine.parquet", CUB_QUARANTINE)
        for name in [f"{split}.parquet" for split in splits] + ["quarantine.parquet"]:
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m stages.import_cub",
        description="Import CUB-200-2011 with CMR's annotation cache (and SCOPS part maps) into "
                    "Parquet tables, one per split, plus a quarantine table.")
    p.add_argument("--cub-root", required=True, metavar="DIR", help="the CUB_200_2011 folder")
    p.add_argument("--annotations", required=True, metavar="DIR",
                   help="CMR's cache folder holding data/{split}_cub_cleaned.mat and sfm/")
    p.add_argument("--parts", metavar="DIR", default=None,
                   help="SCOPS part maps: <class>/<stem>_<index>.npy or <class>/<stem>.npy")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="writes DIR/{split}.parquet and DIR/quarantine.parquet")
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS))
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import_cub(args.cub_root, args.annotations, args.out, args.parts, args.splits,
               progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    from stages.cli import run

    run(main)
