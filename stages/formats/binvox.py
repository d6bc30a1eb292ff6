"""binvox voxel files (https://www.patrickmin.com/binvox/binvox.html): reader and writer.

Layout: an ASCII header

    #binvox 1
    dim DX DY DZ
    translate TX TY TZ      (optional, default 0 0 0)
    scale S                 (optional, default 1)
    data

then run-length pairs of bytes (value, count), count 1..255, over the voxels in x-major order
with y fastest: index = x * (DZ * DY) + z * DY + y, i.e. the flat data reshaped to (DX, DZ, DY)
and transposed (0, 2, 1) is the grid in x, y, z. Grids here are bool [X, Y, Z].

binvox writes cubes; for a non-cubic grid this module reads and writes `dim` as (DX, DY, DZ)
(the format page's "depth, width, height" with index = x*wxh + z*width + y). Readers that
reshape to the header's numbers in file order (binvox-rw-py) would take the last two as
(DZ, DY); the difference only shows for non-cubic grids, which binvox itself never writes.

A voxel (x, y, z) has its centre at translate + scale * ((x, y, z) + 0.5) / (DX, DY, DZ).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.atomic import atomic_write
from stages.errors import StageError, quote


class BinvoxError(StageError):
    """A binvox file that cannot be read; the message names the file and the problem."""


@dataclass(frozen=True, eq=False)
class Binvox:
    """grid: bool [X, Y, Z]; translate: float64 (3,); scale: the cube's side."""

    grid: np.ndarray
    translate: np.ndarray
    scale: float


def _fail(path, message: str) -> BinvoxError:
    return BinvoxError(f"{path}: not a valid binvox file: {message}")


def _header_lines(raw: bytes, path):
    """Yield (line, offset just past its newline); the caller stops at the 'data' line."""
    pos = 0
    while True:
        end = raw.find(b"\n", pos)
        if end < 0:
            # The header must end with a newline after "data": the data starts past it.
            raise _fail(path, "header ends before a 'data' line")
        yield raw[pos:end], end + 1
        pos = end + 1


def _numbers(text: str, values: list[str], kind, n: int, path):
    try:
        if len(values) != n:
            raise ValueError
        return [kind(v) for v in values]
    except ValueError:
        raise _fail(path, f"malformed header line {quote(text)}") from None


def read_binvox(path: str | os.PathLike) -> Binvox:
    """Read a binvox file. Comment lines (#...) and blank lines may sit between header lines,
    lines may carry extra spaces, tabs or CRLF endings; translate and scale are optional.

    Raises BinvoxError (a ValueError) naming the file for a file that cannot be read or is not
    valid binvox."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise BinvoxError(f"{path}: cannot read file: {err.strerror or type(err).__name__}") from err
    magic = False
    dims = None
    translate = np.zeros(3)
    scale = 1.0
    for line, data_start in _header_lines(raw, path):
        text = line.decode("ascii", errors="replace").strip()
        if not magic:
            if not text:
                continue
            parts = text.split()
            if parts[0] != "#binvox" or len(parts) != 2 or parts[1] not in ("1", "2"):
                raise _fail(path, f"bad magic line {quote(text)} (expected '#binvox 1')")
            magic = True
            continue
        if not text or text.startswith("#"):
            continue
        key, *values = text.split()
        key = key.lower()
        if key == "dim":
            dims = tuple(_numbers(text, values, int, 3, path))
            if min(dims) <= 0:
                raise _fail(path, f"non-positive dimensions {dims}")
        elif key == "translate":
            translate = np.array(_numbers(text, values, float, 3, path))
        elif key == "scale":
            (scale,) = _numbers(text, values, float, 1, path)
        elif key == "data" and not values:
            break
        else:
            raise _fail(path, f"unexpected header line {quote(text)}")
    if dims is None:
        raise _fail(path, "no 'dim' line before 'data'")
    if not (np.isfinite(translate).all() and np.isfinite(scale)):
        raise _fail(path, "non-finite translate or scale")
    grid = _decode(np.frombuffer(raw, dtype=np.uint8, offset=data_start), dims, path)
    return Binvox(grid=grid, translate=translate, scale=float(scale))


_WHITESPACE = np.frombuffer(b" \t\r\n", dtype=np.uint8)


def _decode(data: np.ndarray, dims: tuple[int, int, int], path) -> np.ndarray:
    dx, dy, dz = dims
    total = dx * dy * dz
    pairs = len(data) // 2
    counts = data[1 : 2 * pairs : 2].astype(np.int64)
    ends = np.cumsum(counts)
    filled = int(ends[-1]) if pairs else 0
    if filled < total:
        raise _fail(path, f"truncated data: the runs cover {filled} of {total} voxels")
    done = int(np.searchsorted(ends, total)) + 1  # pairs up to the one that completes the grid
    if int(ends[done - 1]) > total or counts[done:].any():
        raise _fail(path, f"a run overflows the grid of {total} voxels")
    rest = data[2 * done :]
    # Zero-length runs add nothing; a final newline is tolerated.
    if len(rest) % 2 and not np.isin(rest[-1], _WHITESPACE):
        raise _fail(path, "a stray byte after the data")
    values = data[0 : 2 * done : 2] != 0
    flat = np.repeat(values, counts[:done])
    return np.ascontiguousarray(flat.reshape(dx, dz, dy).transpose(0, 2, 1))


def _encode(grid_xyz: np.ndarray) -> bytes:
    flat = np.ascontiguousarray(grid_xyz.transpose(0, 2, 1)).reshape(-1).astype(np.uint8)
    starts = np.concatenate(([0], np.flatnonzero(flat[1:] != flat[:-1]) + 1))
    lengths = np.diff(np.concatenate((starts, [len(flat)])))
    # Runs longer than 255 are split into pieces of 255 and a remainder.
    pieces = (lengths + 254) // 255
    values = np.repeat(flat[starts], pieces)
    counts = np.full(int(pieces.sum()), 255, dtype=np.int64)
    last = np.cumsum(pieces) - 1
    counts[last] = lengths - 255 * (pieces - 1)
    out = np.empty(2 * len(counts), dtype=np.uint8)
    out[0::2] = values
    out[1::2] = counts
    return out.tobytes()


def write_binvox(path: str | os.PathLike, grid_xyz, translate=(0.0, 0.0, 0.0), scale: float = 1.0) -> None:
    """Write bool grid [X, Y, Z] as binvox (atomically: a temporary file, then a rename)."""
    grid = np.asarray(grid_xyz, dtype=np.bool_)
    if grid.ndim != 3 or min(grid.shape) <= 0:
        raise ValueError(f"binvox grid must be 3-D with positive dimensions, got shape {grid.shape}")
    t = np.asarray(translate, dtype=np.float64).reshape(3)
    s = float(scale)
    if not (np.isfinite(t).all() and np.isfinite(s)):
        raise ValueError("binvox translate and scale must be finite")
    # repr() round-trips a float64 exactly.
    header = (
        "#binvox 1\n"
        f"dim {grid.shape[0]} {grid.shape[1]} {grid.shape[2]}\n"
        f"translate {' '.join(repr(float(v)) for v in t)}\n"
        f"scale {repr(s)}\n"
        "data\n"
    ).encode("ascii")
    data = _encode(grid)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(data)

    atomic_write(path, write)
