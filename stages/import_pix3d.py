"""import_pix3d: Pix3D's release (Sun et al., CVPR 2018) -> a real-photograph test table for the
3D-R2N2 family.

    python -m stages.import_pix3d --root DIR --out DIR [--resolution 32] [--size 127] \\
        [--background 240] [--backend cpu] [--partition-size 8] [--scheduler ... --threads N]

Reads DIR/pix3d.json (a list, one object per photograph: `img`, `category`, `img_size` [width,
height], `bbox` [x1, y1, x2, y2], `mask`, `model`, `truncated`, `occluded`, `slightly_occluded`,
among others; paths relative to DIR, e.g. img/chair/0011.png, mask/chair/0011.png,
model/chair/IKEA_FUSION/model.obj) and writes OUT/pix3d.parquet (`stages.pix3d_tables.PIX3D`) and
OUT/quarantine.parquet (`PIX3D_QUARANTINE`); the counts go to stderr.

Classes. Only Pix3D categories that ShapeNet's 13 share are kept: chair, sofa and table, and desk
scored as table (WordNet puts desk, 03179701, under table, 04379243, and ShapeNetCore's table
class holds desks). bed, bookcase, wardrobe, tool and misc have no ShapeNet class among the 13
(WordNet files bed, bookcase and wardrobe under furniture, not under cabinet) and are skipped,
counted but not quarantined: nothing is wrong with them.

Quarantine (one row each, with a kind and a reason): a malformed entry, a path that leaves DIR,
a second entry for the same image; entries Pix3D flags `truncated` or `occluded` (the Pix3D
paper's test protocol keeps untruncated, unoccluded photographs; `slightly_occluded` ones are
kept and flagged in the table); a missing or unreadable image or mask, or one whose size is not
`img_size`; a missing, unreadable or unusable model.

Input image (`cut_out`): the object is cut out by its mask over the family's test background
(grey 240, 3D-R2N2's TEST.NO_BG_COLOR_RANGE and Pix2Vox's TEST.RANDOM_BG_COLOR_RANGE) and cropped
as Pix2Vox's Pix3D test pipeline crops (hzxie/Pix2Vox utils/data_transforms.py, CenterCrop with a
bounding box): a square window around the box's centre with the box's longer side, then resized
to the model input (127, not Pix2Vox's 224). Ground truth: the model voxelized by
`stages.voxelization` in the canonical frame (`stages.pix3d_tables.FRAME`), one grid per model.

Work is spread over Dask partitions of `--partition-size` models; each model is read and
voxelized once for all its photographs. Rows come out ordered by model path, then by their
position in pix3d.json.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from stages.cli import run
from stages.errors import StageError, one_line, quote
from stages.formats.mesh_io import MeshError, load_mesh, triangles, validate_mesh
from stages.parallel import add_dask_arguments, chunk, dask_options, map_partitions
from stages.pix3d_tables import FRAME, PIX3D, PIX3D_QUARANTINE
from stages.tables import ShardWriter, write_shard
from stages.taxonomy import NAME_TO_SYNSET
from stages.voxel_codec import ENCODING, encode_planes
from stages.voxelization import cube_to_voxel_space, mesh_to_voxel_transform, voxelize_triangles

ANNOTATIONS = "pix3d.json"
# Pix3D category -> the ShapeNet class it is scored as (see the module docstring).
CATEGORY_TO_CLASS = {"chair": "chair", "desk": "table", "sofa": "sofa", "table": "table"}
_FLAGS = ("truncated", "occluded", "slightly_occluded")


class EntryError(ValueError):
    """An entry that goes to the quarantine table: `kind` (PIX3D_QUARANTINE's kinds) and reason."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


@dataclass(frozen=True)
class Entry:
    """One usable-looking pix3d.json entry (fields checked, files not yet read).

    index: position in the list; img, mask, model: paths relative to the release root;
    width, height: `img_size` in pixels; bbox: (x1, y1, x2, y2) in pixels, x rightward and y
    downward from the top-left corner (Pix3D's README).
    """

    index: int
    img: str
    category: str
    mask: str
    model: str
    width: int
    height: int
    bbox: tuple[float, float, float, float]
    slightly_occluded: bool

    @property
    def image_id(self) -> str:
        """Pix2Vox's annotation key: the img path without 'img/' and its extension ('chair/0011')."""
        path = PurePosixPath(self.img)
        parts = path.with_suffix("").parts
        return "/".join(parts[1:] if len(parts) > 1 and parts[0] == "img" else parts)


# pix3d.json ---------------------------------------------------------------------------------


def read_annotations(path: Path) -> list:
    """The list in pix3d.json. StageError naming the file when it is unreadable, not JSON or not
    a list (per-entry problems are left to `parse_entry`)."""
    try:
        data = json.loads(path.read_bytes())
    except json.JSONDecodeError as err:
        raise StageError(f"{path}: not valid JSON: {err.msg} at line {err.lineno}") from None
    except UnicodeDecodeError as err:
        raise StageError(f"{path}: not UTF-8 text: {err.reason}") from None
    if not isinstance(data, list):
        raise StageError(f"{path}: expected a list of annotations, found {type(data).__name__}")
    return data


def _flag(raw: dict, name: str) -> bool:
    # JSON booleans in the release; the README spells them "true"/"false", so accept both.
    value = raw.get(name)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise EntryError("annotation", f"{name} is {quote(value)}, expected true or false")


def _relative_path(raw: dict, name: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not value:
        raise EntryError("annotation", f"{name} is {quote(value)}, expected a path")
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts:
        raise EntryError("annotation", f"{name} path {quote(value)} leaves the release folder")
    return path.as_posix()


def _numbers(raw: dict, name: str, count: int) -> list[float]:
    value = raw.get(name)
    ok = isinstance(value, list) and len(value) == count
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok:
        raise EntryError("annotation", f"{name} is {quote(value)}, expected {count} finite numbers")
    return [float(v) for v in value]


def parse_entry(index: int, raw: object) -> Entry:
    """Check one pix3d.json entry's fields (Pix3D's README) and flags; raises EntryError with
    kind 'annotation' (malformed), 'truncated' or 'occluded' (Pix3D's flags, either set)."""
    if not isinstance(raw, dict):
        raise EntryError("annotation", f"entry is {type(raw).__name__}, expected an object")
    category = raw.get("category")
    if not isinstance(category, str) or not category:
        raise EntryError("annotation", f"category is {quote(category)}, expected a name")
    img, mask, model = (_relative_path(raw, name) for name in ("img", "mask", "model"))
    width, height = _numbers(raw, "img_size", 2)
    if width < 1 or height < 1 or not width.is_integer() or not height.is_integer():
        raise EntryError("annotation", f"img_size {quote(raw['img_size'])} is not two positive integers")
    x1, y1, x2, y2 = bbox = tuple(_numbers(raw, "bbox", 4))
    if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
        raise EntryError("annotation", f"bbox {quote(raw['bbox'])} is not a box inside the {width:.0f}x{height:.0f} image")
    truncated, occluded, slightly = (_flag(raw, name) for name in _FLAGS)
    if truncated or occluded:
        flags = " and ".join(name for name, on in (("truncated", truncated), ("occluded", occluded)) if on)
        raise EntryError("truncated" if truncated else "occluded", f"Pix3D flags the object {flags}")
    return Entry(index, img, category, mask, model, int(width), int(height), bbox, slightly)


# The photograph -----------------------------------------------------------------------------


def crop_window(bbox: Sequence[float]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom), inclusive pixel indices (may lie outside the image) of
    Pix2Vox's square crop around a box [x1, y1, x2, y2] (hzxie/Pix2Vox utils/data_transforms.py,
    CenterCrop given a bounding box): side s = the box's longer side, centre c = the box's centre,
    ends int(c - s/2) and int(c + s/2), int truncating towards zero as Python's does. Both ends
    are kept, so the window is usually s + 1 pixels wide, and may be one pixel less high than
    wide (or the reverse) where truncation rounds the two axes differently.

    Difference, on purpose: Pix2Vox divides the box by img_size in its loader and multiplies it
    back in the transform; that round trip can move an end by one pixel, so the box is used as
    given here."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    side = max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) * 0.5, (y1 + y2) * 0.5
    return int(cx - side * 0.5), int(cy - side * 0.5), int(cx + side * 0.5), int(cy + side * 0.5)


def _window(array: np.ndarray, window: tuple[int, int, int, int]) -> np.ndarray:
    """The window's pixels of `array` [H, W, ...]; zero where the window leaves the image."""
    left, top, right, bottom = window
    height, width = array.shape[:2]
    out = np.zeros((bottom - top + 1, right - left + 1, *array.shape[2:]), dtype=array.dtype)
    y0, y1 = max(top, 0), min(bottom, height - 1)
    x0, x1 = max(left, 0), min(right, width - 1)
    if y0 <= y1 and x0 <= x1:
        out[y0 - top : y1 - top + 1, x0 - left : x1 - left + 1] = array[y0 : y1 + 1, x0 : x1 + 1]
    return out


def cut_out(rgb: np.ndarray, mask: np.ndarray, bbox: Sequence[float], size: int = 127, background: int = 240) -> np.ndarray:
    """The network input for one photograph: uint8 [size, size, 3] RGB.

    rgb: uint8 [H, W, 3]; mask: uint8 [H, W], 255 on the object (Pix3D's masks are 0/255; other
    values blend as alpha); bbox: [x1, y1, x2, y2] in pixels. The window `crop_window(bbox)` is
    cut out, the mask composites it over the grey `background` (mask 0 -> background, rounded
    to the nearest integer), and the result is resized to size x size with Pillow's bilinear
    filter (skipped when the window already is size x size).

    Differences from Pix2Vox, on purpose: Pix2Vox keeps the photograph's own background, pads a
    window that leaves the image with its edge pixels and resizes with OpenCV's bilinear filter
    (no antialiasing); here the object stands alone on the background the family was trained
    with, outside the image is background (the same as edge padding wherever the mask is 0 at
    the border), and Pillow's filter antialiases when it shrinks."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or mask.shape != rgb.shape[:2]:
        raise ValueError(f"expected rgb [H, W, 3] and mask [H, W], got {rgb.shape} and {mask.shape}")
    window = crop_window(bbox)
    alpha = _window(mask, window).astype(np.float64)[..., None] / 255.0
    pixels = _window(rgb, window).astype(np.float64)
    composite = np.rint(pixels * alpha + float(background) * (1.0 - alpha)).astype(np.uint8)
    image = Image.fromarray(composite, mode="RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image)


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of a uint8 [H, W, 3] image."""
    out = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(out, format="PNG")
    return out.getvalue()


def _decode(path: Path, mode: str, kind: str, size: tuple[int, int]) -> np.ndarray:
    if not path.is_file():
        raise EntryError(kind, f"{kind} file missing: {path.name}")
    try:
        with Image.open(path) as image:
            image.load()
            pixels = np.asarray(image.convert(mode))
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as err:
        raise EntryError(kind, f"{kind} unreadable: {path.name}: {one_line(err)[:120]}") from None
    found = (pixels.shape[1], pixels.shape[0])
    if found != size:
        raise EntryError(kind, f"{kind} {path.name} is {found[0]}x{found[1]}, img_size says {size[0]}x{size[1]}")
    return pixels


def read_photo(root: Path, entry: Entry) -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8 [H, W, 3], mask uint8 [H, W]) decoded by Pillow (grey, palette and CMYK images
    become RGB, an alpha channel is dropped: the mask decides; EXIF orientation is not applied,
    as Pix2Vox's cv2.imread(IMREAD_UNCHANGED) does not). EntryError 'image' or 'mask' when a
    file is missing, undecodable or not img_size."""
    size = (entry.width, entry.height)
    rgb = _decode(root / entry.img, "RGB", "image", size)
    return rgb, _decode(root / entry.mask, "L", "mask", size)


# The model ----------------------------------------------------------------------------------


def canonical_cube(vertices: np.ndarray) -> tuple[np.ndarray, float]:
    """(corner float64 (3,), side) of the model's bounding cube: side = the largest extent of the
    vertices' axis-aligned box, centred on the box (binvox -cb, ShapeNetVox32's cube)."""
    lo, side = mesh_to_voxel_transform(vertices)
    extent = np.asarray(vertices, dtype=np.float64).reshape(-1, 3).max(axis=0) - lo
    return lo + (extent - side) / 2.0, side


def voxelize_model(path: Path, resolution: int = 32, backend: str = "cpu") -> np.ndarray:
    """bool [R, R, R] indexed [z, y, x]: the model's occupancy in the canonical frame
    (`stages.pix3d_tables.FRAME`: model coordinates, x -> i, y -> j, z -> k, over
    `canonical_cube`). EntryError 'model' when the file is missing, unreadable or unusable."""
    if not path.is_file():
        raise EntryError("model", f"model file missing: {path.name}")
    try:
        mesh = load_mesh(path)
    except MeshError as err:
        raise EntryError("model", f"model unreadable: {path.name}: {one_line(err.reason)[:120]}") from None
    problem = validate_mesh(mesh)
    if problem is not None:
        raise EntryError("model", f"model unusable: {path.name}: {problem}")
    corner, side = canonical_cube(mesh.vertices)
    soup = cube_to_voxel_space(triangles(mesh), corner, side, resolution)
    return voxelize_triangles(soup, resolution, backend=backend)


# Rows ---------------------------------------------------------------------------------------


def quarantine_row(index: int, raw: object, err: EntryError) -> dict:
    """A PIX3D_QUARANTINE row for entry `index` (its fields as text where they are strings)."""
    fields = raw if isinstance(raw, dict) else {}
    text = {k: fields.get(k) if isinstance(fields.get(k), str) else "" for k in ("img", "category", "model")}
    return {"index": index, **text, "kind": err.kind, "reason": one_line(err)}


def photo_row(root: Path, entry: Entry, grid: np.ndarray, size: int, background: int) -> dict:
    """A PIX3D row; EntryError when the photograph or its mask cannot be used."""
    rgb, mask = read_photo(root, entry)
    class_name = CATEGORY_TO_CLASS[entry.category]
    x1, y1, x2, y2 = entry.bbox
    return {
        "image_id": entry.image_id, "category": entry.category, "synset": NAME_TO_SYNSET[class_name],
        "class_name": class_name, "img": entry.img, "model": entry.model,
        "slightly_occluded": entry.slightly_occluded, "width": entry.width, "height": entry.height,
        "bbox_x1": x1, "bbox_y1": y1, "bbox_x2": x2, "bbox_y2": y2, "size": size, "background": background,
        "image": encode_png(cut_out(rgb, mask, entry.bbox, size, background)), "frame": FRAME,
        "resolution": int(grid.shape[0]), "encoding": ENCODING, "voxels": encode_planes(grid[None]),
        "occupied": int(grid.sum()),
    }


def import_models(
    groups: list[tuple[str, list[Entry]]], root: Path, size: int, background: int, resolution: int, backend: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(PIX3D rows, PIX3D_QUARANTINE rows) for a partition of (model path, its entries)."""
    good, bad = [], []
    for model, entries in groups:
        try:
            grid = voxelize_model(root / model, resolution, backend)
        except EntryError as err:
            bad.extend(quarantine_row(e.index, asdict(e), err) for e in entries)
            continue
        for entry in entries:
            try:
                good.append(photo_row(root, entry, grid, size, background))
            except EntryError as err:
                bad.append(quarantine_row(entry.index, asdict(entry), err))
    return _frame(good, PIX3D.columns), _frame(bad, PIX3D_QUARANTINE.columns)


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    ints = [c for c in ("index", "width", "height", "size", "background", "resolution", "occupied") if c in columns]
    return frame.astype({c: "int64" for c in ints} | ({"slightly_occluded": bool} if "slightly_occluded" in columns else {}))


@dataclass
class Sorted:
    """The entries of pix3d.json sorted into work (by model path), quarantine and skipped."""

    groups: dict[str, list[Entry]]
    quarantined: list[dict]
    skipped: Counter


def sort_entries(annotations: list) -> Sorted:
    """Parse every entry: entries of a category without a ShapeNet class are counted by
    category (whatever else is wrong with them), the others grouped by model or quarantined (a
    repeated image_id: every entry after the first)."""
    groups: dict[str, list[Entry]] = {}
    quarantined, skipped, seen = [], Counter(), {}
    for index, raw in enumerate(annotations):
        category = raw.get("category") if isinstance(raw, dict) else None
        if isinstance(category, str) and category and category not in CATEGORY_TO_CLASS:
            skipped[category] += 1
            continue
        try:
            entry = parse_entry(index, raw)
            if entry.image_id in seen:
                raise EntryError("annotation", f"image {entry.img} repeats entry {seen[entry.image_id]}")
            seen[entry.image_id] = index
        except EntryError as err:
            quarantined.append(quarantine_row(index, raw, err))
            continue
        groups.setdefault(entry.model, []).append(entry)
    return Sorted(groups, quarantined, skipped)


# CLI --------------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.import_pix3d", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="Pix3D release folder (holds pix3d.json)")
    parser.add_argument("--out", type=Path, required=True, help="folder for pix3d.parquet and quarantine.parquet")
    parser.add_argument("--resolution", type=int, default=32, help="ground-truth grid side (default 32)")
    parser.add_argument("--size", type=int, default=127, help="input image side in pixels (default 127)")
    parser.add_argument("--background", type=int, default=240, help="background grey level (default 240)")
    parser.add_argument("--backend", default="cpu", choices=["auto", "cpu", "cuda"], help="voxelizer (default cpu)")
    parser.add_argument("--partition-size", type=int, default=8, help="models per Dask partition (default 8)")
    add_dask_arguments(parser)
    args = parser.parse_args(argv)
    for name in ("resolution", "size", "partition_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if not 0 <= args.background <= 255:
        parser.error("--background must be in 0..255")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    options = dask_options(args)
    annotations = read_annotations(args.root / ANNOTATIONS)
    work = sort_entries(annotations)
    groups = sorted(work.groups.items())
    task = partial(import_models, root=args.root, size=args.size, background=args.background,
                   resolution=args.resolution, backend=args.backend)
    bad = [pd.DataFrame(work.quarantined, columns=PIX3D_QUARANTINE.columns)]
    classes: Counter = Counter()
    with ShardWriter(args.out / "pix3d.parquet", PIX3D) as writer:
        for good, rejected in map_partitions(task, chunk(groups, args.partition_size), options, "import_pix3d"):
            writer.write(good)
            classes.update(good["category"])
            bad.append(rejected)
    quarantine = pd.concat(bad, ignore_index=True).astype({"index": "int64"}).sort_values("index", ignore_index=True)
    write_shard(quarantine, args.out / "quarantine.parquet", PIX3D_QUARANTINE)
    print(
        f"import_pix3d: {writer.rows} images ({_counts(classes)}), {len(quarantine)} quarantined "
        f"({_counts(Counter(quarantine['kind']))}), {sum(work.skipped.values())} skipped, no ShapeNet class "
        f"({_counts(work.skipped)}), of {len(annotations)} entries -> {args.out}",
        file=sys.stderr,
    )
    return 0


def _counts(counter: Counter) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counter.items())) or "none"


if __name__ == "__main__":
    run(main)
