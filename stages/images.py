"""A user's image file, whatever its encoding, as the 8-bit RGB a model was trained on.

`read_rgb` decodes any image Pillow reads into uint8 [H, W, 3] sRGB-coded values, or refuses
it with an `ImageError` naming the file and the reason in one line:

- greyscale becomes grey RGB; 16-bit greyscale (PNG, TIFF) is scaled 0..65535 -> 0..255 with
  rounding (Pillow's own conversion clamps at 255, which turns a 16-bit image white);
- 32-bit float greyscale (TIFF mode 'F') is read with white = 1.0, the convention of float
  images: values must lie in [0, 1] (a file holding 0..255 floats is refused, saying so, rather
  than guessed at: a dark 0..255 image would be indistinguishable from a 0..1 one);
- 32-bit integer greyscale has no known white level and is refused (unless it is a PNG, which
  cannot hold more than 16 bits: then it is 16-bit);
- palette images, CMYK, YCbCr and the rest go through Pillow's conversion to RGB (CMYK without
  a colour profile: Pillow's plain inversion);
- transparency (an alpha channel, premultiplied or not, or a palette or colour-key
  transparency) is composited over `background`, e.g. the background a model family rendered
  its training images on;
- the EXIF orientation of phone photos is applied (the array is the picture as it is shown);
- the first frame of an animation or multi-page file is read;
- images over `max_pixels` are refused from their header, before decoding (no decompression
  bomb), as are images with a side under `min_side` pixels; truncated or corrupt data, files
  that are no image, and files that cannot be opened are refused too.

A float input in [0, 1] is `read_rgb(...) / 255.0`.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib

import numpy as np

from stages.errors import MAX_QUOTE, StageError, one_line

# A 64-megapixel limit: above every phone camera's default output, far above what any model here
# takes in (the largest input is 256 px), and under Pillow's own decompression-bomb warning.
MAX_PIXELS = 64 * 2**20
# The smallest side accepted, in pixels: 3D-R2N2 takes 127 px and CoReNet 128-256 px inputs; an
# image under 32 px would be upsampled over four times, and is more likely an icon or a mistake.
MIN_SIDE = 32
# Rounding in float images saved by other tools: 1.0000001 is still white.
_FLOAT_SLACK = 1e-6

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


class ImageError(StageError):
    """An image file that cannot be used as a model input; `str(err)` names the file."""


def read_rgb(
    path: str | os.PathLike,
    background: tuple[int, int, int] = (255, 255, 255),
    *,
    min_side: int = MIN_SIDE,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """The image at `path` as uint8 [H, W, 3] RGB, H x W as displayed (EXIF orientation applied).

    background: the RGB (0..255 each) that transparent pixels are composited over.
    min_side, max_pixels: the smallest side (pixels) and the largest width x height accepted.
    Raises ImageError (one line naming the file) for a file that cannot be opened, is no image,
    is truncated or corrupt, is too small or too large, or whose pixels have no defined 8-bit
    reading (see the module docstring).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    background = tuple(int(c) for c in background)
    if len(background) != 3 or not all(0 <= c <= 255 for c in background):
        raise ValueError(f"background must be three values in 0..255, got {background!r}")
    name = os.fspath(path)

    def refuse(reason: str) -> ImageError:
        return ImageError(f"{name}: {reason}")

    with warnings.catch_warnings():
        # The size is checked below, against max_pixels, before anything is decoded.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except Image.DecompressionBombError:
            raise refuse(
                f"image has over {2 * Image.MAX_IMAGE_PIXELS} pixels (limit {max_pixels}): "
                "refused before decoding"
            ) from None
        except UnidentifiedImageError:
            raise refuse("not an image file (no image format recognised)") from None
        except OSError as err:
            raise refuse(f"cannot read file: {err.strerror or _bounded(err)}") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise refuse(f"image is {width} x {height} = {width * height} pixels, over the limit of {max_pixels}")
        if min(width, height) < min_side:
            raise refuse(f"image is {width} x {height} pixels, under the minimum of {min_side} pixels a side")
        try:
            image.load()
            shown = ImageOps.exif_transpose(image)
        except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as err:
            raise refuse(f"truncated or corrupt image data ({_bounded(err)})") from None
        return _to_rgb(shown, image.format, background, refuse)


def _to_rgb(image, file_format: str | None, background: tuple[int, int, int], refuse) -> np.ndarray:
    mode = image.mode
    if mode in _SIXTEEN_BIT or (mode == "I" and file_format == "PNG"):
        return _grey(_scale_16_bit(np.asarray(image)))
    if mode == "I":
        raise refuse("32-bit integer pixels have no known white level; save the image as 8- or 16-bit")
    if mode == "F":
        return _grey(_scale_float(np.asarray(image, dtype=np.float64), refuse))
    if mode == "1":
        image = image.convert("L")
        mode = "L"
    if mode == "L" and "transparency" not in image.info:
        return _grey(np.asarray(image))
    if "A" in mode or mode.endswith("a") or "transparency" in image.info:
        return _composite(np.asarray(image.convert("RGBA")), background)
    try:
        return np.ascontiguousarray(np.asarray(image.convert("RGB")))
    except ValueError:
        raise refuse(f"colour mode {mode!r} has no conversion to RGB") from None


def _grey(values: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(values.astype(np.uint8)[:, :, None], 3, axis=2))


def _scale_16_bit(values: np.ndarray) -> np.ndarray:
    """0..65535 -> 0..255, rounded to nearest (65535 -> 255, 32767 -> 127, 32768 -> 128)."""
    return (values.astype(np.int64) * 255 + 32767) // 65535


def _scale_float(values: np.ndarray, refuse) -> np.ndarray:
    """[0, 1] -> 0..255, rounded to nearest; anything else is refused."""
    if not np.isfinite(values).all():
        raise refuse("float pixels include NaN or infinity")
    low, high = float(values.min()), float(values.max())
    if low < -_FLOAT_SLACK or high > 1 + _FLOAT_SLACK:
        raise refuse(
            f"float pixels span {low:.6g}..{high:.6g}; float images are read with white = 1.0, "
            "so values must lie in [0, 1] (divide 0..255 data by 255)"
        )
    return np.rint(np.clip(values, 0.0, 1.0) * 255.0)


def _composite(rgba: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """uint8 [H, W, 3]: straight-alpha RGBA over an opaque background, rounded to nearest."""
    colour = rgba[:, :, :3].astype(np.int64)
    alpha = rgba[:, :, 3:].astype(np.int64)
    back = np.asarray(background, dtype=np.int64)
    return ((colour * alpha + back * (255 - alpha) + 127) // 255).astype(np.uint8)


def _bounded(err: BaseException) -> str:
    text = one_line(f"{type(err).__name__}: {err}")
    return text if len(text) <= 2 * MAX_QUOTE else text[: 2 * MAX_QUOTE] + "..."
