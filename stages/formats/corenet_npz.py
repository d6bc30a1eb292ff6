"""Reader for the scene files CoReNet released (one `.npz` per scene).

Fields (from CoReNet's data documentation): scene_filename (bytes), mesh_labels (str[k], the
ShapeNet synset of each object), mesh_filenames (str[k], the ShapeNet model id), 
mesh_visible_fractions (float[k]), mesh_object_to_world_transforms (float[k, 4, 4]),
view_transform (float[4, 4], world -> reconstruction space), camera_transform (float[4, 4],
reconstruction -> image space), opengl_image and pbrt_image (encoded images, WebP in the
release, stored as 0-d object or bytes arrays).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

FIELDS = (
    "scene_filename",
    "mesh_labels",
    "mesh_filenames",
    "mesh_visible_fractions",
    "mesh_object_to_world_transforms",
    "view_transform",
    "camera_transform",
    "opengl_image",
    "pbrt_image",
)


class CorenetSceneError(ValueError):
    """A CoReNet scene file that cannot be imported; the message names the file."""


@dataclass(frozen=True)
class CorenetScene:
    scene_filename: str
    mesh_labels: list[str]
    mesh_filenames: list[str]
    mesh_visible_fractions: np.ndarray  # float32 [k]
    mesh_object_to_world_transforms: np.ndarray  # float64 [k, 4, 4]
    view_transform: np.ndarray  # float64 [4, 4]
    camera_transform: np.ndarray  # float64 [4, 4]
    opengl_image: bytes
    pbrt_image: bytes


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def _bytes(value, name: str, path: Path) -> bytes:
    array = np.asarray(value)
    item = array.item() if array.shape == () else value
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, np.ndarray) and item.dtype == np.uint8:
        return item.tobytes()
    raise CorenetSceneError(f"{path}: field {name} is not encoded image bytes ({type(item).__name__})")


class _Fields:
    """Field access that unpickles only fields stored as object arrays.

    Images in CoReNet's release may be stored as 0-d object arrays, which NumPy loads only
    with pickling enabled; every other field is read with pickling disabled, and a file that is
    not a zip archive is rejected before NumPy could try to unpickle it whole.
    """

    def __init__(self, path: Path):
        self.path = path
        self.safe = np.load(path, allow_pickle=False)
        self.files = self.safe.files

    def __getitem__(self, name: str):
        try:
            return self.safe[name]
        except ValueError:
            with np.load(self.path, allow_pickle=True) as trusted:
                return trusted[name]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.safe.close()


def read_corenet_scene(path: str | Path) -> CorenetScene:
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise CorenetSceneError(f"{path}: unreadable npz: not a zip archive")
    try:
        npz = _Fields(path)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise CorenetSceneError(f"{path}: unreadable npz: {err}") from None
    with npz:
        missing = [f for f in FIELDS if f not in npz.files]
        if missing:
            raise CorenetSceneError(f"{path}: missing fields {', '.join(missing)}")
        labels = [_text(v) for v in np.atleast_1d(npz["mesh_labels"])]
        filenames = [_text(v) for v in np.atleast_1d(npz["mesh_filenames"])]
        fractions = np.asarray(npz["mesh_visible_fractions"], dtype=np.float32).reshape(-1)
        o2w = np.asarray(npz["mesh_object_to_world_transforms"], dtype=np.float64)
        view = np.asarray(npz["view_transform"], dtype=np.float64)
        camera = np.asarray(npz["camera_transform"], dtype=np.float64)
        k = len(labels)
        if k == 0 or len(filenames) != k or len(fractions) != k or o2w.shape != (k, 4, 4):
            raise CorenetSceneError(
                f"{path}: inconsistent object fields: {k} labels, {len(filenames)} filenames, "
                f"{len(fractions)} visible fractions, transforms of shape {o2w.shape}"
            )
        if view.shape != (4, 4) or camera.shape != (4, 4):
            raise CorenetSceneError(f"{path}: view/camera transforms must be 4x4")
        for name, m in (("view_transform", view), ("camera_transform", camera)):
            if not np.all(np.isfinite(m)) or abs(np.linalg.det(m)) < 1e-12:
                raise CorenetSceneError(f"{path}: {name} is not an invertible finite matrix")
        return CorenetScene(
            scene_filename=_text(np.asarray(npz["scene_filename"]).item()),
            mesh_labels=labels,
            mesh_filenames=filenames,
            mesh_visible_fractions=fractions,
            mesh_object_to_world_transforms=o2w,
            view_transform=view,
            camera_transform=camera,
            opengl_image=_bytes(npz["opengl_image"], "opengl_image", path),
            pbrt_image=_bytes(npz["pbrt_image"], "pbrt_image", path),
        )


def image_to_png(encoded: bytes, source: str) -> tuple[bytes, int, int]:
    """Re-encode an image (WebP in CoReNet's release) as RGB PNG: (png bytes, width, height)."""
    try:
        with Image.open(io.BytesIO(encoded)) as image:
            rgb = image.convert("RGB")
    except (OSError, ValueError) as err:
        raise CorenetSceneError(f"{source}: undecodable image: {err}") from None
    out = io.BytesIO()
    rgb.save(out, format="PNG")
    return out.getvalue(), rgb.width, rgb.height
