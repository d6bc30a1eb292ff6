"""Encoding of ground-truth voxel grids for the voxels table ('packbits-zlib-v1').

A scene's ground truth keeps one bool occupancy plane per object, shape [num_objects, D, H, W],
so that objects that touch the same voxel both keep it and the semantic label can be chosen
later. The planes are flattened in C order, bit-packed with numpy.packbits (big-endian bit
order: the first voxel is the most significant bit of the first byte), then zlib-compressed.
A 128^3 single-object grid is 256 KiB packed and typically a few KiB compressed.
"""

from __future__ import annotations

import zlib

import numpy as np

ENCODING = "packbits-zlib-v1"


def encode_planes(planes: np.ndarray) -> bytes:
    planes = np.asarray(planes, dtype=bool)
    if planes.ndim != 4:
        raise ValueError(f"expected [num_objects, D, H, W] planes, got shape {planes.shape}")
    return zlib.compress(np.packbits(planes, axis=None).tobytes(), level=6)


def decode_planes(buffer: bytes, num_objects: int, resolution: int) -> np.ndarray:
    shape = (num_objects, resolution, resolution, resolution)
    count = int(np.prod(shape))
    bits = np.frombuffer(zlib.decompress(buffer), dtype=np.uint8)
    if bits.size != (count + 7) // 8:
        raise ValueError(
            f"voxel grid holds {bits.size} bytes, expected {(count + 7) // 8} for shape {shape}"
        )
    return np.unpackbits(bits, count=count).astype(bool).reshape(shape)


def labels_from_planes(planes: np.ndarray) -> np.ndarray:
    """Combine per-object planes into one label grid: 0 is void, i + 1 is object i.

    Where two objects share a voxel, the object listed first keeps it (a fixed, documented rule;
    scenes are laid out without intersections, so only boundary voxels are shared).
    """
    planes = np.asarray(planes, dtype=bool)
    labels = np.zeros(planes.shape[1:], dtype=np.uint8)
    for index in range(planes.shape[0] - 1, -1, -1):
        labels[planes[index]] = index + 1
    return labels
