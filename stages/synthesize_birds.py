"""Stage `synthesize_birds`: an embedded CUB-200-2011 stand-in of rendered synthetic birds.

    python -m stages.synthesize_birds --out DIR --train N --val N --test N --size PX --seed S

writes, in the layouts of the real data (see ``stages.formats.cub``):

    DIR/CUB_200_2011/images/001.Synthetic_bird/Synthetic_Bird_NNNN.jpg   the photographs
    DIR/CUB_200_2011/{images,classes,image_class_labels,train_test_split}.txt
    DIR/cachedir/data/{train,val,test}_cub_cleaned.mat                  CMR's `images`
    DIR/cachedir/sfm/anno_{train,val,test}.mat                          sfm_anno, S, conv_tri
    DIR/scops/001.Synthetic_bird/Synthetic_Bird_NNNN.npy                part maps (SCOPS naming)

Each image shows one bird of ``stages.synthetic.birds`` (random proportions and colours) under an
orthographic camera (azimuth uniform in [0, 360) degrees, elevation in [-30, 60] degrees) over a
procedural background (sky, foliage, ground or water gradient with noise, often a branch), with
its longer side `--size` pixels. Ground truth comes from the same rasterisation
(``stages.rendering.rasterize``): mask = a bird face at the pixel centre; bbox = the mask's tight
box; a keypoint is visible when it lies in the image, its surface normal does not face away
from the camera, and the z-buffer next to it shows no surface clearly in front of it
(``keypoint_visibility``). Invisible keypoints are
stored as 0 0 0, as in CUB. The SfM entry is the true camera expressed for S, the keypoints of
the mean bird (centred, scaled to a largest pairwise distance of 2 as cub_sfm.m does), so it is
exact for a bird of mean proportions. Part maps are the face labels rendered in the
deterministic crop frame (``stages.cub_crop.crop_window`` without jitter) at 256 px with 2x2
supersampling, as per-pixel class fractions.

Image ids run 1..N over train, then val, then test; an image depends only on (seed, split,
index), so the same seed gives the same files. The tree is written in a temporary sibling of DIR
and renamed into place at the end.
"""

from __future__ import annotations

import argparse
import colorsys
import io
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy.spatial import Delaunay
from tqdm import tqdm

from stages.atomic import temporary_name
from stages.cli import run
from stages.cub_crop import crop_window
from stages.errors import StageError
from stages.formats import cub as cub_format
from stages.rendering import rasterize
from stages.synthetic.birds import (
    MATERIALS, PART_NAMES, Bird, BirdParams, build_bird, sample_bird_params, vertex_normals,
)
from stages.tables import SPLITS

CLASS_FOLDER = "001.Synthetic_bird"
CLASS_ID = 1
PART_MAP_SIZE = 256  # SCOPS's input size (evaluate_cub.py INPUT_SIZE)
SUPERSAMPLING = 2
DEPTH_RANGE = 4.0  # NDC z = camera depth / DEPTH_RANGE (a bird spans well under +-2 lengths)
VISIBILITY_TOLERANCE = 0.04  # body lengths
GRAZING_TOLERANCE = 0.15  # body lengths, added at grazing angles (see keypoint_visibility)
ELEVATION_DEG = (-30.0, 60.0)
JPEG_QUALITY = 90
_SPLIT_CODE = {s: i for i, s in enumerate(SPLITS)}


# ------------------------------------------------------------------------------ camera

@dataclass(frozen=True)
class OrthoCamera:
    """Orthographic camera: pixel (u, v) = scale * (rotation @ X)[:2] + translation, depth =
    (rotation @ X)[2] (body lengths, larger is farther). u, v are continuous pixel coordinates
    (pixel (c, r) covers [c, c+1] x [r, r+1]); the 1-based CUB coordinate of u is u + 0.5."""

    rotation: np.ndarray
    scale: float
    translation: np.ndarray

    def project(self, points: np.ndarray) -> np.ndarray:
        """[N, 3] bird-frame points -> [N, 3] (u, v, depth)."""
        cam = np.asarray(points, dtype=np.float64) @ self.rotation.T
        return np.column_stack([self.scale * cam[:, :2] + self.translation, cam[:, 2]])

    def scaled(self, factor: float, origin=(0.0, 0.0)) -> "OrthoCamera":
        """The camera of the image cut at continuous `origin` and resized by `factor`."""
        return OrthoCamera(self.rotation, self.scale * factor,
                           (self.translation - np.asarray(origin, dtype=np.float64)) * factor)


def view_rotation(azimuth: float, elevation: float) -> np.ndarray:
    """Bird frame -> camera frame (x right, y down, z away from the viewer) for a camera at
    `azimuth` about +y (0: in front of the bird, on +z) and `elevation` above the horizon,
    radians. Proper rotation (det +1)."""
    towards_camera = np.array([np.cos(elevation) * np.sin(azimuth), np.sin(elevation),
                               np.cos(elevation) * np.cos(azimuth)])
    z = -towards_camera
    down = np.array([0.0, -1.0, 0.0])
    y = down - (down @ z) * z
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    return np.stack([x, y, z])


def _raster(bird: Bird, camera: OrthoCamera, width: int, height: int):
    pv = camera.project(bird.vertices)
    pv[:, 2] /= DEPTH_RANGE
    depth, face_id, bary = rasterize(pv, bird.faces, width, height)
    return depth * DEPTH_RANGE, face_id, bary


# ------------------------------------------------------------------------------ looks

def _hsv(h, s, v) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))))


def sample_palette(rng: np.random.Generator) -> np.ndarray:
    """RGB in [0, 1] per material (MATERIALS order): float64 [8, 3]."""
    hue = rng.uniform()
    back = _hsv(hue, rng.uniform(0.15, 0.9), rng.uniform(0.2, 0.85))
    pale = _hsv(hue + rng.uniform(-0.1, 0.1), rng.uniform(0.0, 0.35), rng.uniform(0.7, 1.0))
    belly = back + rng.uniform(0.3, 0.95) * (pale - back)
    head = back if rng.uniform() < 0.5 else _hsv(rng.uniform(), rng.uniform(0.2, 1.0),
                                                  rng.uniform(0.1, 0.9))
    beaks = [(0.13, 0.85, 0.9), (0.07, 0.8, 0.85), (0.0, 0.0, 0.15), (0.0, 0.0, 0.45)]
    beak = _hsv(*beaks[rng.integers(len(beaks))])
    eye = np.array([0.03, 0.03, 0.03])
    wing = np.clip(back * rng.uniform(0.55, 1.05) + rng.normal(0, 0.04, 3), 0, 1)
    tail = np.clip(wing * rng.uniform(0.75, 1.05), 0, 1)
    legs = [(0.0, 0.0, 0.35), (0.02, 0.35, 0.7), (0.08, 0.75, 0.8), (0.0, 0.0, 0.1)]
    leg = _hsv(*legs[rng.integers(len(legs))])
    colours = {"back": back, "belly": belly, "head": head, "beak": beak, "eye": eye,
               "wing": wing, "tail": tail, "leg": leg}
    return np.stack([colours[m] for m in MATERIALS])


def _noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Smooth value noise in [-1, 1], float64 [H, W]: a random grid resized with Pillow's
    bicubic filter."""
    grid = rng.uniform(-1.0, 1.0, (cells, cells)).astype(np.float32)
    image = Image.fromarray(grid, mode="F").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float64)


_SCENES = {  # (top colour HSV, bottom colour HSV) of each background kind
    "sky": ((0.58, 0.45, 0.95), (0.55, 0.15, 0.98)),
    "foliage": ((0.27, 0.6, 0.45), (0.22, 0.7, 0.3)),
    "ground": ((0.1, 0.35, 0.6), (0.08, 0.5, 0.4)),
    "water": ((0.55, 0.5, 0.6), (0.5, 0.6, 0.4)),
}


def background(rng: np.random.Generator, width: int, height: int,
               perch: np.ndarray | None = None) -> np.ndarray:
    """A procedural backdrop, float64 [H, W, 3] in [0, 1]: a vertical gradient of a random scene
    kind with two octaves of colour noise, and with probability 0.6 a branch through `perch`
    ((u, v) pixels, e.g. under the feet)."""
    kind = list(_SCENES)[rng.integers(len(_SCENES))]
    top, bottom = (_hsv(h + rng.uniform(-0.05, 0.05), s * rng.uniform(0.7, 1.3),
                        v * rng.uniform(0.75, 1.1)) for h, s, v in _SCENES[kind])
    t = np.linspace(0.0, 1.0, height)[:, None, None]
    image = top * (1 - t) + bottom * t + np.zeros((1, width, 1))
    for cells, amplitude in ((4, 0.12), (max(4, width // 12), 0.05)):
        image += amplitude * np.stack([_noise(rng, width, height, cells) for _ in range(3)], -1)
    image = np.clip(image, 0.0, 1.0)
    if perch is not None and rng.uniform() < 0.6:
        angle = rng.uniform(-0.45, 0.45)
        reach = 2.0 * max(width, height)
        d = np.array([np.cos(angle), np.sin(angle)]) * reach
        thickness = max(2, int(rng.uniform(0.02, 0.06) * min(width, height)))
        centre = np.asarray(perch) + np.array([0.0, 0.5 * thickness])
        canvas = Image.fromarray((image * 255).astype(np.uint8))
        colour = _hsv(rng.uniform(0.05, 0.12), rng.uniform(0.3, 0.6), rng.uniform(0.2, 0.5))
        ImageDraw.Draw(canvas).line([tuple(centre - d), tuple(centre + d)],
                                    fill=tuple(int(c * 255) for c in colour), width=thickness)
        image = np.asarray(canvas, dtype=np.float64) / 255.0
    return image


def shade(bird: Bird, camera: OrthoCamera, palette: np.ndarray, backdrop: np.ndarray,
          rng: np.random.Generator) -> np.ndarray:
    """Composite the bird over `backdrop` ([H, W, 3]) with smooth Lambert shading (interpolated
    vertex normals, a random key light from the camera's side, ambient) and per-vertex colour
    speckle; float64 [H, W, 3]."""
    height, width = backdrop.shape[:2]
    _, face_id, bary = _raster(bird, camera, width, height)
    rows, cols = np.nonzero(face_id >= 0)
    faces = bird.faces[face_id[rows, cols]]
    w = bary[rows, cols][:, :, None]
    normals = (vertex_normals(bird.vertices, bird.faces) @ camera.rotation.T)[faces]
    normal = (w * normals).sum(axis=1)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    light = np.array([rng.uniform(-0.7, 0.7), rng.uniform(-0.9, -0.1), -1.0])
    light /= np.linalg.norm(light)
    colours = palette[np.repeat(bird.face_material, 3)].reshape(-1, 3, 3)
    speckle = 1.0 + rng.normal(0.0, 0.06, (len(bird.vertices), 1))
    albedo = (w * colours[face_id[rows, cols]] * speckle[faces]).sum(axis=1)
    ambient = rng.uniform(0.3, 0.45)
    lambert = np.clip(np.einsum("ij,j->i", normal, light), 0.0, None)
    # Normals may face away where thin parts are seen from behind; light them from both sides.
    lambert = np.maximum(lambert, 0.4 * np.clip(-np.einsum("ij,j->i", normal, light), 0, None))
    image = backdrop.copy()
    image[rows, cols] = np.clip(albedo * (ambient + (1.0 - ambient) * lambert)[:, None], 0, 1)
    return image


# ------------------------------------------------------------------------------ examples

@dataclass
class BirdExample:
    """One rendered bird with its CUB-style ground truth.

    image uint8 [H, W, 3]; mask uint8 [H, W] (0/1); bbox int64 [4] 1-based inclusive
    (x1, y1, x2, y2); parts float64 [3, 15] (1-based x, y, visible; zeros where invisible);
    part_map float32 [256, 256, 5] (PART_NAMES fractions in the crop frame); camera: the
    OrthoCamera of the image; params: the bird's proportions; landmarks_uvd float64 [15, 3]
    (u, v, depth) of every landmark, visible or not.
    """

    image: np.ndarray
    mask: np.ndarray
    bbox: np.ndarray
    parts: np.ndarray
    part_map: np.ndarray
    camera: OrthoCamera
    params: BirdParams
    landmarks_uvd: np.ndarray


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of image `index` of `split` under `seed`."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _SPLIT_CODE[split], int(index)]))


def _image_size(rng: np.random.Generator, size: int) -> tuple[int, int]:
    short = max(16, int(round(size * rng.uniform(0.66, 1.0))))
    return (size, short) if rng.uniform() < 0.7 else (short, size)


def _place_camera(rng, bird: Bird, width: int, height: int) -> OrthoCamera:
    rotation = view_rotation(rng.uniform(0.0, 2 * np.pi), np.radians(rng.uniform(*ELEVATION_DEG)))
    uv = OrthoCamera(rotation, 1.0, np.zeros(2)).project(bird.vertices)[:, :2]
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    scale = rng.uniform(0.5, 0.85) * min(width, height) / float((hi - lo).max())
    margin = 2.0
    span = np.array([width, height]) - 2 * margin - scale * (hi - lo)
    translation = margin - scale * lo + rng.uniform(0.0, 1.0, 2) * np.maximum(span, 0.0)
    return OrthoCamera(rotation, scale, translation)


def keypoint_visibility(landmarks_uvd: np.ndarray, facing: np.ndarray, depth: np.ndarray,
                        face_id: np.ndarray, tolerance: float = VISIBILITY_TOLERANCE) -> np.ndarray:
    """bool [K]: which landmarks the camera sees.

    landmarks_uvd [K, 3] (u, v pixels, depth); facing [K]: cosine between the landmark's
    outward normal and the direction towards the camera; depth, face_id [H, W]: the z-buffer.
    A landmark is visible when it lies in the image, does not face away (facing > -0.1), and the
    bird covers a pixel of the 3x3 block around its pixel where the z-buffer is no nearer than
    its depth minus a tolerance. The tolerance grows from `tolerance` (facing the camera) by
    GRAZING_TOLERANCE at grazing angles, where the surface one pixel inside a silhouette is
    nearer than the silhouette point itself (the crown seen from the side, the tail's tip).
    """
    height, width = face_id.shape
    visible = np.zeros(len(landmarks_uvd), dtype=bool)
    for k, (u, v, d) in enumerate(landmarks_uvd):
        c, r = int(np.floor(u)), int(np.floor(v))
        if not (0 <= c < width and 0 <= r < height) or facing[k] <= -0.1:
            continue
        rows = slice(max(r - 1, 0), r + 2)
        cols = slice(max(c - 1, 0), c + 2)
        allowed = tolerance + GRAZING_TOLERANCE * (1.0 - max(float(facing[k]), 0.0))
        covered = face_id[rows, cols] >= 0
        visible[k] = bool(np.any(covered & (depth[rows, cols] >= d - allowed)))
    return visible


def landmark_facing(bird: Bird, camera: OrthoCamera) -> np.ndarray:
    """float64 [15]: cosine between each landmark's normal and the direction to the camera."""
    return -(bird.landmark_normals @ camera.rotation.T)[:, 2]


def render_part_map(bird: Bird, camera: OrthoCamera, window: np.ndarray,
                    size: int = PART_MAP_SIZE) -> np.ndarray:
    """Face labels in the crop `window` (int [x1, y1, x2, y2] 0-based, inclusive) resized to
    `size`: float32 [size, size, 5], fractions of 2x2 subsamples per PART_NAMES class."""
    side = float(window[2] - window[0] + 1)
    ss = SUPERSAMPLING
    cam = camera.scaled(size * ss / side, origin=window[:2])
    _, face_id, _ = _raster(bird, cam, size * ss, size * ss)
    labels = np.where(face_id >= 0, bird.face_part[np.maximum(face_id, 0)], 0)
    one_hot = np.eye(len(PART_NAMES), dtype=np.float32)[labels]
    return one_hot.reshape(size, ss, size, ss, -1).mean(axis=(1, 3))


def render_example(seed: int, split: str, index: int, size: int) -> BirdExample:
    """Render image `index` of `split` (see the module docstring); longer side `size` px."""
    rng = example_rng(seed, split, index)
    params = sample_bird_params(rng)
    bird = build_bird(params)
    palette = sample_palette(rng)
    width, height = _image_size(rng, size)
    camera = _place_camera(rng, bird, width, height)

    depth, face_id, _ = _raster(bird, camera, width, height)
    mask = (face_id >= 0).astype(np.uint8)
    rows, cols = np.nonzero(mask)
    bbox = np.array([cols.min() + 1, rows.min() + 1, cols.max() + 1, rows.max() + 1])
    uvd = camera.project(bird.landmarks)
    visible = keypoint_visibility(uvd, landmark_facing(bird, camera), depth, face_id)
    parts = np.zeros((3, len(uvd)))
    parts[:2, visible] = uvd[visible, :2].T + 0.5  # continuous -> 1-based pixel coordinates
    parts[2, visible] = 1.0

    ss = SUPERSAMPLING
    feet = camera.project(bird.landmarks[[7, 11]])[:, :2].mean(axis=0) * ss
    backdrop = background(rng, width * ss, height * ss, perch=feet)
    fine = shade(bird, camera.scaled(ss), palette, backdrop, rng)
    image = fine.reshape(height, ss, width, ss, 3).mean(axis=(1, 3))
    image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)

    window = crop_window(bbox - 1.0)
    part_map = render_part_map(bird, camera, window)
    return BirdExample(image, mask, bbox, parts, part_map, camera, params, uvd)


# ------------------------------------------------------------------------------ mean shape

def mean_shape() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(S float64 [3, 15], centre float64 [3], factor): the mean bird's landmarks L give
    S = factor * (L - centre).T, centred and scaled to a largest pairwise distance of 2
    (cub_sfm.m: S_scale = 2 / max(pdist(S')))."""
    landmarks = build_bird(BirdParams()).landmarks
    centre = landmarks.mean(axis=0)
    diffs = landmarks[:, None] - landmarks[None]
    factor = 2.0 / np.linalg.norm(diffs, axis=2).max()
    return (factor * (landmarks - centre)).T, centre, factor


def convex_triangles(shape: np.ndarray) -> np.ndarray:
    """cub_sfm.m's conv_tri: the 4 faces of every Delaunay tetrahedron of S's points, 1-based,
    float64 [4T, 3]."""
    tets = Delaunay(np.asarray(shape).T).simplices
    tri = np.concatenate([tets[:, [0, 1, 2]], tets[:, [0, 1, 3]], tets[:, [0, 2, 3]],
                          tets[:, [3, 1, 2]]])
    return (tri + 1).astype(np.float64)


def sfm_entry(camera: OrthoCamera, centre: np.ndarray, factor: float) -> cub_format.SfmEntry:
    """The camera as CMR's sfm_anno: 1-based pixels = scale * (rot @ S)[:2] + trans."""
    shift = camera.scale * (camera.rotation @ centre)[:2]
    return cub_format.SfmEntry(camera.rotation.copy(), camera.scale / factor,
                               camera.translation + 0.5 + shift)


# ------------------------------------------------------------------------------ writer

def image_name(image_id: int) -> str:
    return f"Synthetic_Bird_{image_id:04d}.jpg"


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _write_tree(root: Path, counts: dict[str, int], size: int, seed: int, progress: bool) -> None:
    cub, cache, scops = root / "CUB_200_2011", root / "cachedir", root / "scops"
    (cub / "images" / CLASS_FOLDER).mkdir(parents=True)
    (scops / CLASS_FOLDER).mkdir(parents=True)
    shape, centre, factor = mean_shape()
    conv_tri = convex_triangles(shape)
    listing: list[tuple[int, str, bool]] = []
    image_id = 0
    bar = tqdm(total=sum(counts.values()), desc="synthesize_birds", unit="image",
               file=sys.stderr, disable=not progress)
    with bar:
        for split in SPLITS:
            annotations, cameras = [], []
            for index in range(counts[split]):
                image_id += 1
                ex = render_example(seed, split, index, size)
                rel_path = f"{CLASS_FOLDER}/{image_name(image_id)}"
                (cub / "images" / rel_path).write_bytes(_jpeg(ex.image))
                np.save(scops / CLASS_FOLDER / f"{Path(rel_path).stem}.npy", ex.part_map,
                        allow_pickle=False)
                height, width = ex.mask.shape
                annotations.append(cub_format.CubAnnotation(
                    image_id, rel_path, ex.bbox.astype(np.float64), ex.parts, ex.mask, width,
                    height, CLASS_ID, split == "train", split != "train"))
                cameras.append(sfm_entry(ex.camera, centre, factor))
                listing.append((image_id, rel_path, split == "train"))
                bar.update(1)
            cub_format.write_annotations(cub_format.annotation_path(cache, split), annotations)
            cub_format.write_sfm(cub_format.sfm_path(cache, split), cameras, shape, conv_tri)
    (cub / "classes.txt").write_text(f"{CLASS_ID} {CLASS_FOLDER}\n")
    (cub / "images.txt").write_text("".join(f"{i} {p}\n" for i, p, _ in listing))
    (cub / "image_class_labels.txt").write_text("".join(f"{i} {CLASS_ID}\n" for i, _, _ in listing))
    (cub / "train_test_split.txt").write_text("".join(f"{i} {int(t)}\n" for i, _, t in listing))


def synthesize_birds(out_dir: str | os.PathLike, counts: dict[str, int], size: int, seed: int,
                     *, progress: bool = True) -> Path:
    """Write the stand-in tree to `out_dir` (replacing it whole); returns `out_dir`.

    counts: images per split (train, val, test), each >= 0 with at least one in total; size:
    the longer image side in pixels (>= 32). Raises StageError for bad counts or size.
    """
    if any(counts.get(s, 0) < 0 for s in SPLITS) or sum(counts.get(s, 0) for s in SPLITS) < 1:
        raise StageError(f"image counts must be >= 0 with at least one image, got {counts}")
    if size < 32:
        raise StageError(f"--size must be at least 32 pixels, got {size}")
    counts = {s: int(counts.get(s, 0)) for s in SPLITS}
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(out)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write_tree(tmp, counts, size, seed, progress)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m stages.synthesize_birds",
        description="Render synthetic birds into the CUB-200-2011 layout with CMR's annotation "
                    "cache and SCOPS-style part maps (the embedded CUB stand-in).")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output root: DIR/CUB_200_2011, DIR/cachedir (data/, sfm/), DIR/scops")
    for split, default in (("train", 60), ("val", 20), ("test", 20)):
        p.add_argument(f"--{split}", type=int, default=default, metavar="N",
                       help=f"{split} images (default: %(default)s)")
    p.add_argument("--size", type=int, default=160, metavar="PX",
                   help="longer image side in pixels (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    counts = {"train": args.train, "val": args.val, "test": args.test}
    synthesize_birds(args.out, counts, args.size, args.seed, progress=not args.no_progress)
    print(f"synthesize_birds: wrote {sum(counts.values())} images "
          f"(train {args.train}, val {args.val}, test {args.test}) to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run(main)
