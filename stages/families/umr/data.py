"""UMR's examples from the CUB tables (`stages.cub_tables.CUB_IMAGES`): the crop rules of
`stages.cub_crop` (UMR data/base.py), SCOPS part maps carried into the crop, and the pixels
drawn per part for the vertex Chamfer term.

Per example (arrays as float32 tensors):

    image      [3, S, S] in [0, 1]        S = network input size (white outside the photo)
    mask       [R, R] in [0, 1] (soft)    R = render size (the losses compare renders there)
    parts      [5, R, R] SCOPS probabilities (background, head, neck, back, belly), outside the
               part map's frame background 1; zeros when the table has no part maps
    points     [4, M, 2] M pixels (image coordinates [-1, 1], y down, pixel centres) of head,
               belly, neck and back (the order of umr_losses.VERTEX_PART_WEIGHTS)
    keypoints  [15, 3] x, y in [-1, 1] (cub_crop rule 5) and visible; mirrored with KP_PERM
    side       longer side of the tight bbox in pixels of the photo (PCK's unit)
    crop_side  side of the square crop window in photo pixels

Everything random (bbox jitter, mirror, part pixels) comes from numpy's default_rng((seed,
epoch, index)), so the examples of a resumed run equal those of an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ...cub_crop import crop_example, crop_window, cut, mirror_example, resize_bilinear
from ...cub_tables import CUB_IMAGES, NUM_PARTS, decode_bbox, decode_image, decode_keypoints, decode_mask, decode_part_map
from ...errors import StageError
from ...tables import read_table

PART_ORDER = (1, 4, 2, 3)  # head, belly, neck, back: the vertex Chamfer's part order
PART_STORE = 64  # part maps are kept at this side (area-averaged) in memory


@dataclass(frozen=True)
class CubRecord:
    """One decoded table row: image uint8 [H, W, 3], mask uint8 [H, W], bbox [4], keypoints
    [15, 3] (photo pixels), part map float32 [P, P, 5] in the deterministic crop frame or None."""

    index: int
    image_id: int
    rel_path: str
    image: np.ndarray
    mask: np.ndarray
    bbox: np.ndarray
    keypoints: np.ndarray
    parts: np.ndarray | None


def read_records(path, limit: int | None = None) -> list[CubRecord]:
    """The rows of a CUB table, decoded (part maps area-averaged to PART_STORE px). Raises
    StageError when the table has no rows."""
    table = read_table(path, CUB_IMAGES)
    if limit is not None:
        table = table.iloc[:limit]
    if len(table) == 0:
        raise StageError(f"{path}: no images in the CUB table")
    records = []
    for row in table.to_dict("records"):
        parts = decode_part_map(row)
        if parts is not None and parts.shape[0] > PART_STORE:
            t = torch.from_numpy(parts).permute(2, 0, 1)[None]
            parts = F.adaptive_avg_pool2d(t, PART_STORE)[0].permute(1, 2, 0).numpy()
        records.append(CubRecord(int(row["index"]), int(row["image_id"]), str(row["rel_path"]), decode_image(row),
                                 decode_mask(row), decode_bbox(row), decode_keypoints(row), parts))
    return records


def parts_in_window(parts: np.ndarray, frame: np.ndarray, window: np.ndarray, size: int) -> np.ndarray:
    """Resample a part map [P, P, 5] covering the square photo window `frame` (the deterministic
    crop SCOPS ran on) into window `window` at size x size (bilinear, pixel centres); photo
    points outside `frame` are background. Returns float32 [5, size, size]."""
    p = parts.shape[0]
    f0, fs = frame[:2].astype(np.float64), float(frame[2] - frame[0] + 1)
    w0, ws = window[:2].astype(np.float64), float(window[2] - window[0] + 1)
    centres = (np.arange(size) + 0.5) * ws / size - 0.5  # photo pixel coordinates of output centres
    # photo coordinate -> part-map pixel coordinate -> grid_sample's [-1, 1] (align_corners=False)
    gx = ((w0[0] + centres - f0[0] + 0.5) * p / fs) * 2 / p - 1
    gy = ((w0[1] + centres - f0[1] + 0.5) * p / fs) * 2 / p - 1
    grid = torch.from_numpy(np.stack(np.meshgrid(gx, gy), axis=-1)).float()[None]
    src = torch.from_numpy(np.concatenate([parts, np.ones(parts.shape[:2] + (1,), np.float32)], -1)).permute(2, 0, 1)[None]
    out = F.grid_sample(src.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    inside = out[-1:]
    res = out[:-1]
    res[0] = res[0] + (1.0 - inside[0])  # outside the SCOPS frame: background
    return res.numpy().astype(np.float32)


def part_pixels(parts: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """[4, count, 2] pixel centres (image coordinates, y down) drawn uniformly with replacement
    from the pixels whose most probable label is head, belly, neck, back (PART_ORDER); a part
    with no such pixel gives its most probable pixel `count` times."""
    size = parts.shape[-1]
    labels = parts.argmax(0)
    out = np.empty((len(PART_ORDER), count, 2), np.float32)
    for i, part in enumerate(PART_ORDER):
        rows, cols = np.nonzero(labels == part)
        if len(rows) == 0:
            r, c = np.unravel_index(int(parts[part].argmax()), labels.shape)
            rows, cols = np.array([r]), np.array([c])
        pick = rng.integers(0, len(rows), count)
        out[i, :, 0] = (2 * cols[pick] + 1 - size) / size
        out[i, :, 1] = (2 * rows[pick] + 1 - size) / size
    return out


def make_example(record: CubRecord, image_size: int, render_size: int, *, jitter: float = 0.0, mirror: bool = False,
                 rng: np.random.Generator | None = None, part_points: int = 1) -> dict:
    """One example (module docstring) of `record`: cropped with `jitter` (needs rng), mirrored
    when `mirror`."""
    crop = crop_example(record.image / 255.0, record.mask.astype(np.float64), record.bbox, record.keypoints,
                        size=image_size, jitter=jitter, rng=rng)
    window = crop.window
    mask = resize_bilinear(cut(record.mask.astype(np.float64), window, 0.0), render_size)
    if record.parts is not None:
        parts = parts_in_window(record.parts, crop_window(record.bbox), window, render_size)
    else:
        parts = np.zeros((NUM_PARTS, render_size, render_size), np.float32)
    if mirror:
        crop = mirror_example(crop)
        mask = mask[:, ::-1]
        parts = parts[:, :, ::-1]
    points = part_pixels(parts, part_points, rng if rng is not None else np.random.default_rng(0))
    x1, y1, x2, y2 = record.bbox
    return {
        "image": torch.from_numpy(np.ascontiguousarray(crop.image.transpose(2, 0, 1))).float(),
        "mask": torch.from_numpy(np.ascontiguousarray(mask)).float(),
        "parts": torch.from_numpy(np.ascontiguousarray(parts)).float(),
        "points": torch.from_numpy(points),
        "keypoints": torch.from_numpy(crop.normalized_keypoints()).float(),
        "side": float(max(x2 - x1 + 1, y2 - y1 + 1)),
        "crop_side": float(window[2] - window[0] + 1),
        "index": record.index,
    }


class CubExamples(torch.utils.data.Dataset):
    """The examples of a CUB table. train: jitter and random mirror from (seed, epoch, index);
    otherwise the deterministic crop, mirrored only when `mirror_seed` is given (the original's
    random test-time mirror, drawn from (mirror_seed, index))."""

    def __init__(self, records: list[CubRecord], image_size: int, render_size: int, *, train: bool, seed: int = 0,
                 jitter: float = 0.0, mirror: bool = False, part_points: int = 1, mirror_seed: int | None = None):
        self.records = records
        self.image_size, self.render_size = image_size, render_size
        self.train, self.seed, self.jitter, self.mirror = train, seed, jitter, mirror
        self.part_points, self.mirror_seed = part_points, mirror_seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        if self.train:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            flip = self.mirror and bool(rng.random() < 0.5)
            example = make_example(self.records[i], self.image_size, self.render_size, jitter=self.jitter,
                                   mirror=flip, rng=rng, part_points=self.part_points)
        else:
            rng = np.random.default_rng((self.mirror_seed or 0, i))
            flip = self.mirror_seed is not None and bool(rng.random() < 0.5)
            example = make_example(self.records[i], self.image_size, self.render_size, mirror=flip, rng=rng,
                                   part_points=self.part_points)
        example["position"] = i
        example["mirrored"] = flip
        return example


def collate(examples: list[dict]) -> dict:
    """Stack a list of examples into a batch (tensors stacked, numbers as tensors)."""
    out = {}
    for key in examples[0]:
        values = [e[key] for e in examples]
        out[key] = torch.stack(values) if torch.is_tensor(values[0]) else torch.tensor(values)
    return out
