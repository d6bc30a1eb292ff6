"""CMR's and UMR's crop of a CUB example: padded square box, white fill, bilinear resize, mirror.

The rules, in order (NVlabs/UMR data/base.py ``forward_img`` and akanazawa/cmr utils/image.py):

1. the tight 0-based bbox (x1, y1, x2, y2) grows by ``padding`` x its width (x) or height (y) on
   each side, plus, in training only, a jitter of ``(1 - 2u) * jitter`` x width/height per side,
   u ~ U[0, 1) drawn for x1, y1, x2, y2 in that order (``peturb_bbox``);
2. the box is rounded to integers and grown along its shorter side to a square (``square_bbox``);
   Python 3's ``round`` rounds halves to even, as ``np.rint`` does here;
3. the square is cut from the image (pixels outside the image become 1.0, white) and from the
   mask (outside -> 0) (``crop``);
4. both are resized bilinearly to ``size`` x ``size``; the original uses cv2.resize with
   INTER_LINEAR, here torch's ``interpolate(mode="bilinear", align_corners=False,
   antialias=False)``, which samples the same half-pixel-centred grid, so the mask becomes soft;
5. keypoints (0-based pixel x, y, visible) move with the crop: ``(k - box_origin) * size / side``
   (UMR's rule, which scales pixel indices rather than pixel centres), then go to [-1, 1] as
   ``2 * k / size - 1``; invisible keypoints are all zero;
6. mirroring flips the image left-right, maps x to ``size - 1 - x`` in pixels and swaps left and
   right keypoints with ``KP_PERM``; the SfM camera's rotation becomes ``F R F`` with
   F = diag(-1, 1, 1) and its x translation ``size - 1 - tx``.

The SfM camera (scale, translation (2,), rotation 3x3; image = scale * (R S)[:2] + t in pixels)
follows the crop as in base.py: translation minus the box origin, both times the resize factor,
then scale * (1/W + 1/H) and translation to [-1, 1] like keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from stages.synthetic.birds import KP_PERM

PADDING_FRACTION = 0.05  # UMR data/base.py flag padding_frac
JITTER_FRACTION = 0.05  # UMR data/base.py flag jitter_frac, training split only
IMAGE_SIZE = 256  # UMR data/base.py flag img_size
_MIRROR = np.diag([-1.0, 1.0, 1.0])


def padded_box(bbox, padding: float = PADDING_FRACTION, jitter: float = 0.0,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """Pad (and jitter) a tight 0-based inclusive bbox [x1, y1, x2, y2] in pixels (rule 1).

    Returns float64 [4]; may reach outside the image. `jitter` > 0 needs `rng`.
    Raises ValueError when jitter is asked for without an rng.
    """
    x1, y1, x2, y2 = np.asarray(bbox, dtype=np.float64)
    width, height = x2 - x1 + 1.0, y2 - y1 + 1.0
    u = np.zeros(4)
    if jitter:
        if rng is None:
            raise ValueError("jitter needs an rng")
        u = 1.0 - 2.0 * rng.random(4)
    return np.array([
        x1 - padding * width - u[0] * jitter * width,
        y1 - padding * height - u[1] * jitter * height,
        x2 + padding * width + u[2] * jitter * width,
        y2 + padding * height + u[3] * jitter * height,
    ])


def square_box(box) -> np.ndarray:
    """The integer square box around `box` (rule 2): int64 [x1, y1, x2, y2], inclusive, with
    x2 - x1 == y2 - y1."""
    x1, y1, x2, y2 = np.rint(np.asarray(box, dtype=np.float64)).astype(np.int64)
    width, height = x2 - x1 + 1, y2 - y1 + 1
    side = max(width, height)
    x1 -= int(np.rint((side - width) / 2.0))
    y1 -= int(np.rint((side - height) / 2.0))
    return np.array([x1, y1, x1 + side - 1, y1 + side - 1], dtype=np.int64)


def crop_window(bbox, padding: float = PADDING_FRACTION, jitter: float = 0.0,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """Rules 1 and 2: the square crop window of a tight 0-based bbox, int64 [x1, y1, x2, y2]."""
    return square_box(padded_box(bbox, padding, jitter, rng))


def cut(array: np.ndarray, window, fill: float) -> np.ndarray:
    """Rule 3: the window (int [x1, y1, x2, y2], inclusive) of an [H, W] or [H, W, C] array as
    float64, `fill` where the window leaves the array."""
    x1, y1, x2, y2 = (int(c) for c in window)
    array = np.asarray(array)
    out = np.full((y2 - y1 + 1, x2 - x1 + 1) + array.shape[2:], float(fill))
    h, w = array.shape[:2]
    sx0, sx1 = max(0, x1), min(w, x2 + 1)
    sy0, sy1 = max(0, y1), min(h, y2 + 1)
    if sx0 < sx1 and sy0 < sy1:
        out[sy0 - y1:sy1 - y1, sx0 - x1:sx1 - x1] = array[sy0:sy1, sx0:sx1]
    return out


def resize_bilinear(array: np.ndarray, size: int) -> np.ndarray:
    """Rule 4: resize an [H, W] or [H, W, C] array to [size, size(, C)] (float64), bilinear with
    half-pixel centres and no antialiasing (cv2.INTER_LINEAR's grid), via torch."""
    a = np.asarray(array, dtype=np.float64)
    t = torch.from_numpy(a if a.ndim == 3 else a[:, :, None]).permute(2, 0, 1)[None]
    out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False,
                        antialias=False)[0].permute(1, 2, 0).numpy()
    return out if a.ndim == 3 else out[:, :, 0]


@dataclass(frozen=True)
class SfmCamera:
    """CMR's SfM camera: image (x, y) = scale * (rotation @ S)[:2] + translation, in pixels (or
    in [-1, 1] once normalised)."""

    scale: float
    translation: np.ndarray  # [2]
    rotation: np.ndarray  # [3, 3]


@dataclass(frozen=True)
class CubCrop:
    """One cropped example. image float64 [S, S, 3] in [0, 1]; mask float64 [S, S] in [0, 1]
    (soft); keypoints float64 [15, 3]: (x, y) 0-based pixels of the crop, visible flag (0 or 1),
    zero rows where invisible; part_map float64 [P, P, K] or None (not resized: SCOPS maps are
    already in the deterministic crop frame); sfm in crop pixels or None; window: the crop
    window int64 [4] in the source image."""

    image: np.ndarray
    mask: np.ndarray
    keypoints: np.ndarray
    window: np.ndarray
    part_map: np.ndarray | None = None
    sfm: SfmCamera | None = None

    @property
    def size(self) -> int:
        return int(self.image.shape[1])

    def normalized_keypoints(self) -> np.ndarray:
        """Rule 5: keypoints in [-1, 1] (x, y) with the visible flag; invisible rows all zero."""
        kp = self.keypoints
        vis = kp[:, 2:3] > 0
        out = np.concatenate([2.0 * kp[:, :2] / self.size - 1.0, kp[:, 2:3]], axis=1)
        return out * vis

    def normalized_sfm(self) -> SfmCamera | None:
        """The SfM camera in [-1, 1] image coordinates (UMR base.py normalize_kp)."""
        if self.sfm is None:
            return None
        s = float(self.size)
        return SfmCamera(self.sfm.scale * (2.0 / s), 2.0 * self.sfm.translation / s - 1.0,
                         self.sfm.rotation)


def crop_example(image: np.ndarray, mask: np.ndarray, bbox, keypoints: np.ndarray, *,
                 size: int = IMAGE_SIZE, jitter: float = 0.0,
                 rng: np.random.Generator | None = None, part_map: np.ndarray | None = None,
                 sfm: SfmCamera | None = None) -> CubCrop:
    """Crop one example by rules 1-5.

    image: [H, W, 3] floats in [0, 1] (or [H, W], repeated to 3 channels as base.py does);
    mask: [H, W]; bbox: tight 0-based inclusive [x1, y1, x2, y2] pixels; keypoints [15, 3]
    0-based pixels + visible flag; jitter: JITTER_FRACTION for training, 0 otherwise (needs rng).
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    window = crop_window(bbox, PADDING_FRACTION, jitter, rng)
    side = int(window[2] - window[0] + 1)
    factor = size / side
    kp = np.array(keypoints, dtype=np.float64)
    vis = kp[:, 2] > 0
    kp[vis, :2] = (kp[vis, :2] - window[:2]) * factor
    kp[~vis] = 0.0
    cam = None
    if sfm is not None:
        cam = SfmCamera(float(sfm.scale) * factor,
                        (np.asarray(sfm.translation, dtype=np.float64) - window[:2]) * factor,
                        np.asarray(sfm.rotation, dtype=np.float64))
    return CubCrop(
        image=resize_bilinear(cut(image, window, 1.0), size),
        mask=resize_bilinear(cut(mask, window, 0.0), size),
        keypoints=kp,
        window=window,
        part_map=None if part_map is None else np.asarray(part_map, dtype=np.float64),
        sfm=cam,
    )


def mirror_example(example: CubCrop) -> CubCrop:
    """Rule 6: the left-right mirror of a crop (keypoints swapped with KP_PERM)."""
    s = example.size
    kp = example.keypoints.copy()
    vis = kp[:, 2] > 0
    kp[vis, 0] = s - 1 - kp[vis, 0]
    kp = kp[KP_PERM]
    cam = example.sfm
    if cam is not None:
        t = np.array(cam.translation, dtype=np.float64)
        t[0] = s - 1 - t[0]
        cam = SfmCamera(cam.scale, t, _MIRROR @ cam.rotation @ _MIRROR)
    part = None if example.part_map is None else example.part_map[:, ::-1].copy()
    return replace(example, image=example.image[:, ::-1].copy(),
                   mask=example.mask[:, ::-1].copy(), keypoints=kp, part_map=part, sfm=cam)
