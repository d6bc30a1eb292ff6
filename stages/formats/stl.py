"""STL (stereolithography) files, binary and ASCII: reader.

Binary: an 80-byte header, a little-endian uint32 triangle count T, then T records of 50 bytes
(normal, three corners as float32 x, y, z, a 2-byte attribute). ASCII: `solid name`, facets of
`facet normal ... outer loop vertex x y z (x3) endloop endfacet`, `endsolid`. Both store three
private corners per triangle; corners with identical coordinates are shared (numbered in order of
first use), which gives the connectivity of the same mesh stored as OBJ and changes no geometry.
A file cut short or with a wrong count is refused (a parser that stops early would drop
triangles without a word).
"""

from __future__ import annotations

import os
import re

import numpy as np

from stages.errors import quote
from stages.formats.mesh import MeshError, TriangleMesh
from stages.formats.text import read_bytes

_RECORD = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])
_HEADER = 84
_VERTEX = re.compile(rb"\bvertex\s+(\S+)\s+(\S+)\s+(\S+)")


def read_stl(path: str | os.PathLike) -> TriangleMesh:
    """Read a binary or ASCII STL file as a triangle mesh.

    Raises MeshError for an unreadable file, a binary file whose size disagrees with its
    triangle count, and an ASCII file that is cut short or has malformed facets or numbers.
    """
    source = os.fspath(path)
    data = read_bytes(path)
    if len(data) >= _HEADER:
        count = int(np.frombuffer(data, "<u4", 1, 80)[0])
        if len(data) == _HEADER + _RECORD.itemsize * count:
            corners = np.frombuffer(data, _RECORD, count, _HEADER)["corners"].astype(np.float64)
            return _shared(corners.reshape(-1, 3))
    if data.lstrip()[:5].lower() == b"solid":
        return _shared(_ascii_corners(data, source))
    if len(data) < _HEADER:
        raise MeshError(f"not an STL file ({len(data)} bytes, no 'solid' header)", source)
    raise MeshError(
        f"binary STL declares {count} triangles ({_HEADER + _RECORD.itemsize * count} bytes) "
        f"but has {len(data)} bytes",
        source,
    )


def _ascii_corners(data: bytes, source: str) -> np.ndarray:
    """float64 [3T, 3]: the corners of every facet of an ASCII STL file."""
    words = data.lower().split()
    if b"endsolid" not in words:
        raise MeshError("ASCII STL ends without 'endsolid' (cut short?)", source)
    facets = words.count(b"facet")
    loops = words.count(b"endloop")
    matches = _VERTEX.findall(data.lower())
    if facets != loops or len(matches) != 3 * facets:
        raise MeshError(
            f"ASCII STL has {facets} facets, {loops} closed loops and {len(matches)} vertices "
            "(needs three vertices per facet)",
            source,
        )
    try:
        return np.array([[float(x) for x in m] for m in matches], dtype=np.float64).reshape(-1, 3)
    except ValueError:
        bad = next(x for m in matches for x in m if not _is_float(x))
        raise MeshError(f"malformed number {quote(bad.decode('latin-1'))} in vertex", source) from None


def _is_float(token: bytes) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _shared(corners: np.ndarray) -> TriangleMesh:
    """The mesh of a triangle soup (corners float64 [3T, 3]) with identical corners shared."""
    if len(corners) == 0:
        return TriangleMesh(corners, np.empty((0, 3), dtype=np.int64))
    _, first, inverse = np.unique(corners, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return TriangleMesh(corners[first[order]], rank[inverse.reshape(-1)].reshape(-1, 3))
