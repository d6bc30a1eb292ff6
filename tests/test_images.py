"""stages.images.read_rgb: image files as users have them -> the 8-bit RGB a model takes, or one
line saying why not. Every file is written here with Pillow (or, for the bomb, by hand)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from stages.errors import StageError
from stages.images import MAX_PIXELS, MIN_SIDE, ImageError, read_rgb


def refusal(path, **kwargs) -> str:
    with pytest.raises(ImageError) as info:
        read_rgb(path, **kwargs)
    message = str(info.value)
    assert isinstance(info.value, StageError) and "\n" not in message and message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def test_rgb_and_greyscale_pass_through(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    out = read_rgb(tmp_path / "rgb.png")
    assert out.dtype == np.uint8 and out.shape == (40, 50, 3)
    np.testing.assert_array_equal(out, rgb)
    Image.fromarray(rgb[:, :, 1]).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "grey.png"), np.repeat(rgb[:, :, 1:2], 3, axis=2))
    bits = np.zeros((32, 32), bool)
    bits[3, 4] = True
    Image.fromarray(bits).save(tmp_path / "bits.png")
    assert Image.open(tmp_path / "bits.png").mode == "1"
    out = read_rgb(tmp_path / "bits.png")
    assert out.sum() == 3 * 255 and (out[3, 4] == 255).all()


def test_16_bit_greyscale_is_scaled_not_clamped(tmp_path):
    values = np.full((32, 32), 65535, dtype=np.uint16)
    values[0, :6] = [0, 257, 1000, 32767, 32768, 65534]
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    out = read_rgb(tmp_path / "deep.png")
    # 65535 / 255 = 257 exactly, so the nearest 8-bit level is round(v / 257) (never a tie).
    np.testing.assert_array_equal(out[0, :6, 0], [0, 1, 4, 127, 128, 255])
    np.testing.assert_array_equal(out[0, :6, 0], np.round(values[0, :6] / 257))
    assert (out[1:] == 255).all() and (out[..., 0] == out[..., 2]).all()


def test_float_greyscale_is_read_with_white_at_one(tmp_path):
    values = np.ones((32, 32), np.float32)
    values[0, :4] = [0.0, 0.2, 0.6, 1.0000001]
    Image.fromarray(values).save(tmp_path / "float.tif")
    assert Image.open(tmp_path / "float.tif").mode == "F"
    np.testing.assert_array_equal(read_rgb(tmp_path / "float.tif")[0, :4, 1], [0, 51, 153, 255])


def test_float_greyscale_outside_zero_one_is_refused(tmp_path):
    Image.fromarray(np.linspace(0, 255, 32 * 32, dtype=np.float32).reshape(32, 32)).save(tmp_path / "f255.tif")
    assert refusal(tmp_path / "f255.tif") == (
        "float pixels span 0..255; float images are read with white = 1.0, so values must lie in [0, 1] "
        "(divide 0..255 data by 255)"
    )
    nan = np.zeros((32, 32), np.float32)
    nan[5, 5] = np.nan
    Image.fromarray(nan).save(tmp_path / "nan.tif")
    assert refusal(tmp_path / "nan.tif") == "float pixels include NaN or infinity"


def test_32_bit_integer_greyscale_is_refused(tmp_path):
    Image.fromarray(np.full((32, 32), 70000, np.int32)).save(tmp_path / "int.tif")
    assert refusal(tmp_path / "int.tif") == "32-bit integer pixels have no known white level; save the image as 8- or 16-bit"


def test_palette_with_and_without_transparency(tmp_path):
    image = Image.new("P", (32, 32), 0)
    image.putpalette([255, 255, 255, 10, 20, 30, 200, 0, 0] + [0] * (256 * 3 - 9))
    image.putpixel((3, 2), 1)
    image.putpixel((4, 2), 2)
    image.save(tmp_path / "palette.png")
    out = read_rgb(tmp_path / "palette.png")
    assert out[2, 3].tolist() == [10, 20, 30] and out[2, 4].tolist() == [200, 0, 0] and out[0, 0].tolist() == [255] * 3
    image.save(tmp_path / "clear.png", transparency=2)  # palette entry 2 is see-through
    out = read_rgb(tmp_path / "clear.png", background=(1, 2, 3))
    assert out[2, 4].tolist() == [1, 2, 3] and out[2, 3].tolist() == [10, 20, 30]


def test_alpha_is_composited_on_the_background(tmp_path):
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[0, 0] = [200, 100, 0, 128]
    rgba[0, 1] = [10, 20, 30, 255]
    rgba[0, 2] = [10, 20, 30, 0]
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    background = (0, 0, 255)
    out = read_rgb(tmp_path / "alpha.png", background)
    # Straight alpha: colour * a / 255 + background * (255 - a) / 255, to the nearest level.
    expected = [round(c * 128 / 255 + b * 127 / 255) for c, b in zip([200, 100, 0], background)]
    assert out[0, 0].tolist() == expected == [100, 50, 127]
    assert out[0, 1].tolist() == [10, 20, 30] and out[0, 2].tolist() == [0, 0, 255]
    grey_alpha = np.zeros((32, 32, 2), np.uint8)
    grey_alpha[..., 0], grey_alpha[..., 1] = 100, 255
    grey_alpha[5, 5, 1] = 0
    Image.fromarray(grey_alpha, mode="LA").save(tmp_path / "la.png")
    out = read_rgb(tmp_path / "la.png", (7, 8, 9))
    assert out[5, 5].tolist() == [7, 8, 9] and out[0, 0].tolist() == [100] * 3


def test_cmyk_becomes_rgb(tmp_path):
    image = Image.new("CMYK", (32, 32), (0, 0, 0, 0))
    image.putpixel((1, 0), (255, 0, 0, 0))
    image.putpixel((2, 0), (0, 0, 0, 255))
    image.putpixel((3, 0), (0, 255, 255, 0))
    image.save(tmp_path / "print.tif")
    out = read_rgb(tmp_path / "print.tif")
    assert out[0, :4].tolist() == [[255, 255, 255], [0, 255, 255], [0, 0, 0], [255, 0, 0]]


def test_exif_orientation_of_a_phone_photo_is_applied(tmp_path):
    stored = np.full((32, 48, 3), 255, np.uint8)  # 48 wide, 32 high as stored
    stored[:8, :8] = [255, 0, 0]  # red in the stored top-left corner
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to show"
    image.save(tmp_path / "phone.png", exif=exif)
    out = read_rgb(tmp_path / "phone.png")
    assert out.shape == (48, 32, 3)
    np.testing.assert_array_equal(out, np.rot90(stored, k=-1))
    assert (out[:8, -8:] == [255, 0, 0]).all()  # shown at the top-right


def test_too_large_is_refused_from_the_header(tmp_path):
    Image.new("L", (64, 64)).save(tmp_path / "big.png")
    assert refusal(tmp_path / "big.png", max_pixels=1000) == "image is 64 x 64 = 4096 pixels, over the limit of 1000"
    # A decompression bomb: a tiny PNG whose header claims 60,000 x 60,000 pixels.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 0, 0, 0, 0))
    (tmp_path / "bomb.png").write_bytes(bomb + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    reason = refusal(tmp_path / "bomb.png")
    assert reason.startswith("image has over ") and reason.endswith(f"pixels (limit {MAX_PIXELS}): refused before decoding")
    Image.new("L", (9000, 8000)).save(tmp_path / "large.png")  # 72 Mpx: over the default limit
    assert refusal(tmp_path / "large.png") == f"image is 9000 x 8000 = 72000000 pixels, over the limit of {MAX_PIXELS}"


def test_tiny_is_refused_saying_which_minimum(tmp_path):
    Image.new("RGB", (40, 16)).save(tmp_path / "icon.png")
    assert refusal(tmp_path / "icon.png") == f"image is 40 x 16 pixels, under the minimum of {MIN_SIDE} pixels a side"
    assert read_rgb(tmp_path / "icon.png", min_side=16).shape == (16, 40, 3)


def test_unreadable_truncated_and_missing_files(tmp_path):
    noise = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    assert refusal(tmp_path / "cut.png").startswith("truncated or corrupt image data (")
    Image.fromarray(noise).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    assert refusal(tmp_path / "cut.jpg").startswith("truncated or corrupt image data (")
    (tmp_path / "notes.png").write_text("not an image\n")
    assert refusal(tmp_path / "notes.png") == "not an image file (no image format recognised)"
    assert refusal(tmp_path / "absent.png") == "cannot read file: No such file or directory"
    assert refusal(tmp_path) == "cannot read file: Is a directory"
