"""Reader for the scene files CoReNet released (one `.npz` per scene).

Fields (from CoReNet's data documentation): scene_filename (bytes), mesh_labels (str[k], the
ShapeNet synset of each object), mesh_filenames (str[k], the ShapeNet model id), 
mesh_visible_fractions (float[k]), mesh_object_to_world_transforms (float[k, 4, 4]),
view_transform (float[4, 4], world -> reconstruction space), camera_transform (float[4, 4],
reconstruction -> image space), opengl_image and pbrt_image (encoded images, WebP in the
release, stored as 0-d object or bytes arrays). Rule source: google-research/corenet,
doc/data_format_and_coordinate_systems.md and src/corenet/data/scene.py.

Object arrays are unpickled only through stages.restricted_pickle (bytes, str, NumPy data);
encoded images are taken from the arrays' buffers, never through NumPy conversions that drop
trailing NUL bytes.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from stages.errors import StageError, one_line
from stages.restricted_pickle import UnsafePickleError, load_object_array

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


class CorenetSceneError(StageError):
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


def _scalar_text(array: np.ndarray) -> str:
    """A 0-d text field, decoded from its full buffer (see `_bytes`)."""
    if array.shape == () and array.dtype.kind == "S":
        return array.tobytes().decode("utf-8")
    return _text(array.item() if array.shape == () else array)


def _bytes(array: np.ndarray, name: str, path: Path) -> bytes:
    """An encoded image field as its exact bytes.

    Never through `.item()` or indexing of a bytes ("S") array: NumPy strips trailing NUL bytes
    there, and lossy WebP files often end in 0x00. A 0-d "S" array's buffer is exactly the
    stored byte string; an object array holds a bytes object; a uint8 array is the bytes.
    """
    if array.dtype.kind == "S" and array.shape == ():
        return array.tobytes()
    if array.dtype.kind == "O" and array.shape == () and isinstance(array.item(), (bytes, bytearray)):
        return bytes(array.item())
    if array.dtype == np.uint8 and array.ndim == 1:
        return array.tobytes()
    raise CorenetSceneError(f"{path}: field {name} is not encoded image bytes (dtype {array.dtype}, shape {array.shape})")


def _read_member(archive: zipfile.ZipFile, name: str, path: Path) -> np.ndarray:
    """One `.npy` member; object arrays through the restricted unpickler, nothing else pickled."""
    try:
        stream = io.BytesIO(archive.read(f"{name}.npy"))
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"npy format version {version[0]}.{version[1]} is not supported")
        if not dtype.hasobject:
            stream.seek(0)
            return np.lib.format.read_array(stream, allow_pickle=False)
        array = load_object_array(stream)
    except UnsafePickleError as err:
        raise CorenetSceneError(f"{path}: field {name}: refused pickled object: {err}") from None
    except (OSError, ValueError, TypeError, EOFError, KeyError, zipfile.BadZipFile, pickle.UnpicklingError) as err:
        raise CorenetSceneError(f"{path}: field {name}: unreadable ({type(err).__name__}: {one_line(err)[:120]})") from None
    if array.shape != tuple(shape):
        raise CorenetSceneError(f"{path}: field {name}: pickled array of shape {array.shape}, header says {tuple(shape)}")
    return array


def read_npz_fields(path: str | Path, names: tuple[str, ...] = FIELDS) -> dict[str, np.ndarray]:
    """The named arrays of an `.npz` file (a zip of `.npy` members), read without NumPy's
    unrestricted unpickling. Raises CorenetSceneError (naming the file) for a file that is not a
    zip archive, a missing field, an unreadable member or a refused pickle."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            present = {n.removesuffix(".npy") for n in archive.namelist()}
            missing = [f for f in names if f not in present]
            if missing:
                raise CorenetSceneError(f"{path}: missing fields {', '.join(missing)}")
            return {name: _read_member(archive, name, path) for name in names}
    except (zipfile.BadZipFile, OSError) as err:
        raise CorenetSceneError(f"{path}: unreadable npz: {one_line(err)[:120]}") from None


def read_corenet_scene(path: str | Path) -> CorenetScene:
    """One released scene file (fields: see the module docstring). Raises CorenetSceneError
    naming the file for anything unreadable, refused or inconsistent."""
    path = Path(path)
    npz = read_npz_fields(path)
    labels = [_text(v) for v in np.atleast_1d(npz["mesh_labels"])]
    filenames = [_text(v) for v in np.atleast_1d(npz["mesh_filenames"])]
    try:
        fractions = np.asarray(npz["mesh_visible_fractions"], dtype=np.float32).reshape(-1)
        o2w = np.asarray(npz["mesh_object_to_world_transforms"], dtype=np.float64)
        view = np.asarray(npz["view_transform"], dtype=np.float64)
        camera = np.asarray(npz["camera_transform"], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise CorenetSceneError(f"{path}: non-numeric transform or fraction fields ({one_line(err)[:80]})") from None
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
    try:
        scene_filename = _scalar_text(npz["scene_filename"])
    except UnicodeDecodeError:
        raise CorenetSceneError(f"{path}: scene_filename is not UTF-8 text") from None
    return CorenetScene(
        scene_filename=scene_filename,
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
