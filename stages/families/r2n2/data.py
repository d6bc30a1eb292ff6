"""3D-R2N2 training and test examples from the view table (`stages.r2n2_views`).

An example is one model: a few of its 24 views, preprocessed as the released 3D-R2N2 does
(lib/data_augmentation.py's preprocess_img, lib/config.py), and its 32^3 occupancy:

* training: each view over its own random background colour, uniform in [225, 255] per channel
  (TRAIN.NO_BG_COLOR_RANGE), a random 127x127 crop of the 137x137 image, a horizontal flip with
  probability 1/2 (the voxels are not flipped, as in the original), values scaled to [0, 1];
* test: background 240 (TEST.NO_BG_COLOR_RANGE), the centre crop, scaled to [0, 1].

Differences, on purpose: the background is alpha-composited (the original paints it only where
alpha is 0 and keeps partly transparent edge pixels as they are; the two agree on renders with
binary alpha, like ours); the crop offset takes all 11 positions 0..10 (the original draws
0..9).

Views per batch: `ViewBatchSampler` gives every batch one view count n (1..max_views, drawn per
batch in training, fixed for evaluation); training views are n distinct random views in random
order (the original drew them with replacement), test views are the first n. Everything random
derives from a seed through torch.Generator and numpy seed sequences keyed by the model index,
so a batch does not depend on which DataLoader worker builds it.

Memory: the split's images stay PNG bytes in one Arrow buffer (not Python objects, so forked
DataLoader workers share its pages), and voxels stay packed; both are decoded per example.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandera.pandas as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, Sampler

from stages.r2n2_views import R2N2_VIEWS
from stages.tables import SchemaViolation
from stages.voxel_codec import decode_planes

Item = tuple[int, tuple[int, ...], int]  # (model index, view indices, augmentation seed)
_TABLE_COLUMNS = [c for c in R2N2_VIEWS.columns if c != "images"]


@dataclass(frozen=True)
class Preprocessing:
    """crop: side taken from each view (training: a random position, test: the centre);
    train_background: inclusive range of each background channel in training; test_background:
    the test background grey; flip: random horizontal flips in training.

    style "pix2vox" (the PaddlePaddle port's hzxie/Pix2Vox transforms) adds: size: the side the
    crop is resized to (bilinear; None keeps `crop`); color_jitter, lighting_std, permute_rgb
    (see `pix2vox_train_views`); mean, std: the output is (x - mean) / std, x in [0, 1]."""

    crop: int = 127
    train_background: tuple[int, int] = (225, 255)
    test_background: int = 240
    flip: bool = True
    style: str = "r2n2"
    size: int | None = None
    color_jitter: tuple[float, float, float] = (0.0, 0.0, 0.0)
    lighting_std: float = 0.0
    permute_rgb: bool = False
    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def of(cls, options, input_size: int) -> "Preprocessing":
        """The preprocessing of a model's train options (R2N2TrainOptions); `input_size` is the
        network's view side. The r2n2 augmentation gives exactly `Preprocessing()`."""
        if options.augmentation == "r2n2":
            if options.crop != input_size or (options.mean, options.std) != (0.0, 1.0):
                return cls(crop=options.crop, mean=options.mean, std=options.std)
            return cls()
        return cls(crop=options.crop, style="pix2vox", size=input_size, color_jitter=options.color_jitter,
                   lighting_std=options.lighting_std, permute_rgb=options.permute_rgb,
                   mean=options.mean, std=options.std)


# PCA of ImageNet's RGB pixel covariance (AlexNet's lighting noise), as hzxie/Pix2Vox's
# RandomNoise states it: eigenvalues and the eigenvectors as rows of R, G, B components.
LIGHTING_EIGVALS = np.array([0.2175, 0.0188, 0.0045])
LIGHTING_EIGVECS = np.array([[-0.5675, 0.7192, 0.4009], [-0.5808, -0.0045, -0.8140], [-0.5836, -0.6948, 0.4203]])
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114])  # R, G, B (Pix2Vox's ColorJitter grey, ITU-R 601)


def composite(rgba: np.ndarray, background) -> np.ndarray:
    """uint8 RGBA [H, W, 4] over a background colour (3 values, 0..255) -> float32 RGB [H, W, 3]
    in 0..255 (alpha blending)."""
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    return rgba[..., :3].astype(np.float32) * alpha + np.asarray(background, np.float32) * (1.0 - alpha)


def centre_resize(rgb: np.ndarray, crop: int, size: int) -> np.ndarray:
    """The centre crop x crop of float RGB [S, S, 3] (offset (S - crop) // 2, Pix2Vox's CenterCrop
    and its RandomCrop without a bounding box), resized to size x size with bilinear
    interpolation (cv2.resize's default in Pix2Vox; PIL's here) -> float32 [size, size, 3]."""
    side = rgb.shape[0]
    if rgb.shape[1] != side or side < crop:
        raise ValueError(f"view of {rgb.shape[1]}x{side} pixels, need a square >= {crop}")
    top = (side - crop) // 2
    rgb = rgb[top : top + crop, top : top + crop]
    if crop == size:
        return np.ascontiguousarray(rgb, dtype=np.float32)
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(rgb[..., c], dtype=np.float32), mode="F")
                           .resize((size, size), Image.BILINEAR)) for c in range(3)]
    return np.stack(channels, axis=-1).astype(np.float32)


def color_jitter(images: np.ndarray, factors: Sequence[float], order: Sequence[int]) -> np.ndarray:
    """Pix2Vox's ColorJitter on float RGB [..., H, W, 3] in [0, 1]: for each attribute in `order`
    (0 brightness, 1 contrast, 2 saturation) blend f * x + (1 - f) * y with y = 0 (brightness),
    the image's mean grey (contrast) or the pixel's grey (saturation); no clipping."""
    out = images.astype(np.float64)
    for attribute in order:
        f = float(factors[attribute])
        grey = out @ GREY_WEIGHTS
        if attribute == 0:
            out = f * out
        elif attribute == 1:
            out = f * out + (1 - f) * grey.mean(axis=(-2, -1), keepdims=True)[..., None]
        else:
            out = f * out + (1 - f) * grey[..., None]
    return out


def lighting_offset(coefficients: np.ndarray) -> np.ndarray:
    """Pix2Vox's RandomNoise: the RGB offset sum_j eigvec[i, j] * alpha_j * eigval_j [3]."""
    return LIGHTING_EIGVECS @ (np.asarray(coefficients, np.float64) * LIGHTING_EIGVALS)


def pix2vox_train_views(rgbas: Sequence[np.ndarray], rng: np.random.Generator, config: Preprocessing) -> np.ndarray:
    """The port's training transforms (hzxie/Pix2Vox utils/data_transforms.py, composed as its
    core/train.py): one draw per example, shared by its views, of the background colour (each
    channel uniform in train_background), the jitter factors and their order, the lighting
    coefficients (N(0, lighting_std)) and the channel permutation; one flip draw per view.
    Steps: background, centre crop + resize (no bounding box on ShapeNet renders, so Pix2Vox's
    RandomCrop crops the centre), /255, jitter, lighting, (x - mean) / std, flip, permute.
    uint8 RGBA [S, S, 4] each -> float32 [V, 3, size, size]."""
    c = config
    size = c.size or c.crop
    low, high = c.train_background
    background = rng.integers(low, high + 1, size=3)
    factors = 1.0 + rng.uniform(-1.0, 1.0, size=3) * np.asarray(c.color_jitter)
    order = rng.permutation(3)
    lighting = lighting_offset(rng.normal(0.0, 1.0, size=3) * c.lighting_std)
    permutation = rng.permutation(3) if c.permute_rgb else np.arange(3)
    flips = rng.random(len(rgbas)) < 0.5
    images = np.stack([centre_resize(composite(v, background), c.crop, size) for v in rgbas]) / 255.0
    images = color_jitter(images, factors, order) + lighting
    images = (images - c.mean) / c.std
    if c.flip:
        images[flips] = images[flips][:, :, ::-1]
    images = images[..., permutation]
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32)


def preprocess_view(rgba: np.ndarray, train: bool, rng: np.random.Generator, config: Preprocessing = Preprocessing()) -> np.ndarray:
    """uint8 RGBA [S, S, 4] -> float32 [3, crop, crop] in [0, 1] (the r2n2 style)."""
    size = rgba.shape[0]
    if rgba.shape[1] != size or size < config.crop:
        raise ValueError(f"view of {rgba.shape[1]}x{size} pixels, need a square >= {config.crop}")
    if train:
        low, high = config.train_background
        background = rng.integers(low, high + 1, size=3).astype(np.float32)
        top, left = rng.integers(0, size - config.crop + 1, size=2)
        flip = config.flip and rng.random() < 0.5
    else:
        background = np.full(3, config.test_background, np.float32)
        top = left = (size - config.crop) // 2
        flip = False
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    rgb = rgba[..., :3].astype(np.float32) * alpha + background * (1.0 - alpha)
    rgb = rgb[top : top + config.crop, left : left + config.crop]
    if flip:
        rgb = rgb[:, ::-1]
    return np.ascontiguousarray(rgb.transpose(2, 0, 1) / 255.0, dtype=np.float32)


def preprocess_views(rgbas: Sequence[np.ndarray], train: bool, rng: np.random.Generator,
                     config: Preprocessing = Preprocessing()) -> np.ndarray:
    """An example's views, uint8 RGBA [S, S, 4] each -> float32 [V, 3, out, out]: the r2n2 style
    view by view (`preprocess_view`), the pix2vox style as `pix2vox_train_views` in training and
    background test_background + centre crop + resize + normalisation at test."""
    if config.style == "r2n2":
        return np.stack([normalize(preprocess_view(v, train, rng, config), config) for v in rgbas])
    if train:
        return pix2vox_train_views(rgbas, rng, config)
    size = config.size or config.crop
    grey = (config.test_background,) * 3
    images = np.stack([centre_resize(composite(v, grey), config.crop, size) for v in rgbas]) / 255.0
    return np.ascontiguousarray(((images - config.mean) / config.std).transpose(0, 3, 1, 2), dtype=np.float32)


def normalize(view: np.ndarray, config: Preprocessing) -> np.ndarray:
    """(x - mean) / std; the identity (the same array) for mean 0, std 1."""
    if (config.mean, config.std) == (0.0, 1.0):
        return view
    return ((view - config.mean) / config.std).astype(np.float32)


def preprocess_photo(rgb: np.ndarray, config: Preprocessing, size: int) -> np.ndarray:
    """A test photograph already cut out and framed (the Pix3D table's image, uint8 RGB
    [S, S, 3]) -> float32 [3, size, size]: bilinear resize when S != size, /255, normalised."""
    image = rgb.astype(np.float32)
    if image.shape[0] != size or image.shape[1] != size:
        image = centre_resize(image, min(image.shape[:2]), size)
    image = (image / 255.0 - config.mean) / config.std
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)


def display_views(views, config: Preprocessing) -> np.ndarray:
    """Network inputs [V, 3, H, W] back to [0, 1] for pictures (undoes the normalisation)."""
    views = views.numpy() if hasattr(views, "numpy") else np.asarray(views)
    return np.clip(views * config.std + config.mean, 0.0, 1.0)


def _read_split(path: Path, split: str):
    """The split's rows: validated plain columns (pandas) and the images column (Arrow)."""
    try:
        table = pq.read_table(path, columns=R2N2_VIEWS.columns)
    except (OSError, ValueError) as err:
        raise SchemaViolation(f"r2n2_views table ({path}): unreadable: {err}") from None
    table = table.filter(pc.equal(table.column("split"), split))
    frame = table.select(_TABLE_COLUMNS).to_pandas()
    schema = pa.DataFrameSchema({c: R2N2_VIEWS.checks.columns[c] for c in _TABLE_COLUMNS}, strict=True)
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as err:
        raise SchemaViolation(f"r2n2_views table ({path}): {err.failure_cases.iloc[0].to_dict()}") from None
    return frame.reset_index(drop=True), table.column("images").combine_chunks()


class R2N2Views(Dataset):
    """Map-style dataset over one split of the view table.

    `dataset[(i, views, seed)]` -> {"views": float32 [V, 3, 127, 127] in [0, 1] (the requested
    view indices, in that order), "voxels": int64 [32, 32, 32] (0/1, indexed [z, y, x]),
    "synset", "class_name", "model_id": str, "view_indices": int64 [V]}. A plain int i means
    (i, the first `default_views` views, seed 0). `seed` only matters in training mode.
    """

    def __init__(
        self,
        table: str | Path,
        split: str,
        train: bool,
        preprocessing: Preprocessing = Preprocessing(),
        default_views: int = 5,
    ):
        self.train = train
        self.preprocessing = preprocessing
        self.default_views = default_views
        self.rows, self._images = _read_split(Path(table), split)
        self.synsets: list[str] = self.rows["synset"].tolist()
        self.class_names: list[str] = self.rows["class_name"].tolist()
        self.model_ids: list[str] = self.rows["model_id"].tolist()
        # Views every model has (24 in the released data); an empty split keeps the layout's 24.
        self.total_views = int(self.rows["num_views"].min()) if len(self.rows) else 24

    def __len__(self) -> int:
        return len(self.rows)

    def voxels(self, index: int) -> torch.Tensor:
        row = self.rows.iloc[index]
        grid = decode_planes(row["voxels"], 1, int(row["resolution"]))[0]
        return torch.from_numpy(grid.astype(np.int64))

    def view_png(self, index: int, view: int) -> bytes:
        return self._images[index].values[view].as_py()

    def __getitem__(self, item: int | Item) -> dict:
        if isinstance(item, (tuple, list)):
            index, views, seed = int(item[0]), tuple(int(v) for v in item[1]), int(item[2])
        else:
            index, views, seed = int(item), tuple(range(self.default_views)), 0
        if not 0 <= index < len(self):
            raise IndexError(f"model index {index} out of range 0..{len(self) - 1}")
        available = int(self.rows.at[index, "num_views"])
        if not views or min(views) < 0 or max(views) >= available:
            raise IndexError(f"views {views} of a model with {available}")
        # Keyed by the model index too, so that every model of a batch draws its own crops.
        rng = np.random.default_rng([seed, index])
        rgbas = []
        for view in views:
            with Image.open(io.BytesIO(self.view_png(index, view))) as image:
                rgbas.append(np.asarray(image.convert("RGBA")))
        return {
            "views": torch.from_numpy(preprocess_views(rgbas, self.train, rng, self.preprocessing)),
            "voxels": self.voxels(index),
            "synset": self.synsets[index],
            "class_name": self.class_names[index],
            "model_id": self.model_ids[index],
            "view_indices": torch.tensor(views, dtype=torch.int64),
        }


class ViewBatchSampler(Sampler[list[Item]]):
    """Turns batches of model indices (e.g. a BatchSampler over a DistributedSampler) into
    batches of items that share one view count.

    Training: n ~ U{1..max_views} per batch, then n distinct random views per model in random
    order and an augmentation seed. Evaluation (`num_views` set): n = num_views, the first n
    views. The draws depend on (seed, epoch) only, so every DDP rank uses the same n at the same
    step (equal work per rank) while its own model indices keep its examples distinct.
    """

    def __init__(
        self,
        index_batches: Iterable[list[int]],
        total_views: int,
        max_views: int = 5,
        train: bool = True,
        num_views: int | None = None,
        seed: int = 0,
    ):
        if num_views is not None and not 1 <= num_views <= total_views:
            raise ValueError(f"num_views must be in 1..{total_views}, got {num_views}")
        if not 1 <= max_views <= total_views:
            raise ValueError(f"max_views must be in 1..{total_views}, got {max_views}")
        self.index_batches = index_batches
        self.total_views = total_views
        self.max_views = max_views
        self.train = train
        self.num_views = num_views
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        inner = getattr(self.index_batches, "sampler", None)
        if hasattr(inner, "set_epoch"):
            inner.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.index_batches)

    def __iter__(self) -> Iterator[list[Item]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        for batch in self.index_batches:
            n = self.num_views or int(torch.randint(1, self.max_views + 1, (1,), generator=generator))
            items = []
            for index in batch:
                if self.train:
                    views = tuple(torch.randperm(self.total_views, generator=generator)[:n].tolist())
                    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
                else:
                    views, seed = tuple(range(n)), 0
                items.append((int(index), views, seed))
            yield items


class _Strided(Sampler[int]):
    """Rank r of R takes indices r, r + R, ...: every example exactly once over all ranks (a
    DistributedSampler would pad with repeats, which would bias evaluation)."""

    def __init__(self, length: int, num_replicas: int, rank: int):
        self.indices = list(range(rank, length, num_replicas))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


def collate_views(items: Sequence[dict]) -> dict:
    """Stack examples that share a view count: views [B, V, 3, H, W], voxels [B, D, H, W],
    view_indices [B, V]; string fields become lists."""
    counts = {len(item["view_indices"]) for item in items}
    if len(counts) != 1:
        raise ValueError(f"a batch must share one view count, got {sorted(counts)}")
    batch = {key: torch.stack([item[key] for item in items]) for key in ("views", "voxels", "view_indices")}
    for key in ("synset", "class_name", "model_id"):
        batch[key] = [item[key] for item in items]
    return batch


def make_loader(
    dataset: R2N2Views,
    batch_size: int,
    max_views: int = 5,
    num_views: int | None = None,
    seed: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader of collated batches for this rank. Training datasets (dataset.train) are
    shuffled per epoch (DistributedSampler, incomplete last batch dropped) with random view
    counts; otherwise every example once, in order, with `num_views` (default max_views) first
    views. Call `loader.batch_sampler.set_epoch(epoch)` before each training epoch."""
    if dataset.train:
        indices = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        batches = BatchSampler(indices, batch_size, drop_last=True)
    else:
        batches = BatchSampler(_Strided(len(dataset), num_replicas, rank), batch_size, drop_last=False)
        num_views = num_views or max_views
    sampler = ViewBatchSampler(batches, dataset.total_views, max_views, dataset.train, num_views, seed)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_views, num_workers=num_workers)
