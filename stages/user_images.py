"""A user's image file as a model input: decoded to RGB, centre-cropped to a square, resized."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import StageError


def load_image(path: str | Path, size: int, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """uint8 [size, size, 3]: the centre square of the image, resized bilinearly; transparent
    pixels are composited over `background`. StageError naming the file when it is missing or
    not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA", "P"):
                img = img.convert("RGBA")
                back = Image.new("RGBA", img.size, (*background, 255))
                img = Image.alpha_composite(back, img)
            img = img.convert("RGB")
    except FileNotFoundError:
        raise StageError(f"{path}: no such image") from None
    except (UnidentifiedImageError, OSError) as err:
        raise StageError(f"{path}: not a readable image ({err})") from None
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
    return np.array(img)
