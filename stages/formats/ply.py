"""Polygon File Format (PLY, Stanford): reader for ASCII and binary (either byte order) files.

The header declares elements (rows of properties) in the order their data follows:

    ply
    format ascii 1.0 | binary_little_endian 1.0 | binary_big_endian 1.0
    element vertex NV
    property float x                      (and y, z; other properties are read and ignored)
    element face NF
    property list uchar int vertex_indices   (or vertex_index)
    end_header

Faces may mix triangles, quads and larger polygons (their lists differ in length, which is
why this reader walks rows where lengths vary); polygons are cut into triangles by
stages.formats.polygons. Elements other than vertex and face are read past and ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from stages.errors import quote
from stages.formats.mesh import MeshError, TriangleMesh
from stages.formats.polygons import PolygonError, PolygonMesh, triangulate
from stages.formats.text import read_bytes

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_FORMATS = {"ascii": None, "binary_little_endian": "<", "binary_big_endian": ">"}
_INDEX_NAMES = ("vertex_indices", "vertex_index")


@dataclass(frozen=True)
class _Property:
    name: str
    dtype: str  # the value's type, or the list items' type
    count_dtype: str | None = None  # the list length's type; None for a single value


@dataclass(frozen=True)
class _Element:
    name: str
    rows: int
    properties: tuple[_Property, ...]


class _Truncated(Exception):
    pass


def read_ply(path: str | os.PathLike) -> TriangleMesh:
    """Read a PLY file as a triangle mesh (vertices from x, y, z; faces from vertex_indices).

    Raises MeshError for an unreadable file, a malformed header, data that ends early or holds
    malformed numbers, face indices outside 0..NV-1, and polygons that fit no triangulation.
    """
    source = os.fspath(path)
    raw = read_bytes(path)
    elements, endian, start = _header(raw, source)
    columns: dict[str, dict] = {}
    for element in elements:
        try:
            if endian is None:
                values, start = _ascii_element(raw, start, element, source)
            else:
                values, start = _binary_element(raw, start, element, endian)
        except _Truncated:
            raise MeshError(f"data ends inside element {quote(element.name)} ({element.rows} rows declared)", source) from None
        columns[element.name] = values
    return _mesh(elements, columns, source)


def _header(raw: bytes, source: str) -> tuple[list[_Element], str | None, int]:
    """(elements, byte order or None for ASCII, offset of the data)."""
    if not raw.startswith(b"ply"):
        raise MeshError(f"not a PLY file (starts with {quote(raw[:16])})", source)
    end = raw.find(b"end_header")
    newline = raw.find(b"\n", end)
    if end < 0 or newline < 0:
        raise MeshError("no 'end_header' line", source)
    fmt, elements = None, []
    for number, line in enumerate(raw[:end].decode("ascii", errors="replace").splitlines()[1:], start=2):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        try:
            if words[0] == "format":
                fmt = _FORMATS[words[1]]
                if words[2] != "1.0":
                    raise KeyError(words[2])
                fmt = fmt or "ascii"
            elif words[0] == "element":
                elements.append(_Element(words[1], int(words[2]), ()))
                if elements[-1].rows < 0:
                    raise ValueError
            elif words[0] == "property" and elements:
                if words[1] == "list":
                    prop = _Property(words[4], _TYPES[words[3]], _TYPES[words[2]])
                else:
                    prop = _Property(words[2], _TYPES[words[1]])
                last = elements[-1]
                elements[-1] = _Element(last.name, last.rows, (*last.properties, prop))
            else:
                raise ValueError
        except (IndexError, KeyError, ValueError):
            raise MeshError(f"header line {number}: cannot read {quote(line)}", source) from None
    if fmt is None:
        raise MeshError("header has no 'format' line", source)
    return elements, (None if fmt == "ascii" else fmt), newline + 1


def _ascii_element(raw: bytes, start: int, element: _Element, source: str) -> tuple[dict, int]:
    """Columns of one element of an ASCII file, and the offset just past its rows.

    ASCII rows end with a newline, one row per line."""
    values: dict[str, list] = {p.name: [] for p in element.properties}
    position = start
    for row in range(element.rows):
        newline = raw.find(b"\n", position)
        if newline < 0:
            newline = len(raw)
        if position >= len(raw):
            raise _Truncated
        tokens = raw[position:newline].split()
        position = newline + 1
        if not tokens:  # a blank line between rows
            if position >= len(raw):
                raise _Truncated
            continue
        k = 0
        try:
            for prop in element.properties:
                if prop.count_dtype is None:
                    values[prop.name].append(float(tokens[k]))
                    k += 1
                else:
                    n = int(tokens[k])
                    values[prop.name].append([int(t) if prop.dtype[0] in "iu" else float(t) for t in tokens[k + 1 : k + 1 + n]])
                    if len(values[prop.name][-1]) != n:
                        raise IndexError
                    k += 1 + n
        except (IndexError, ValueError):
            raise MeshError(
                f"element {quote(element.name)} row {row}: cannot read {quote(b' '.join(tokens).decode('latin-1'))}",
                source,
            ) from None
    return values, position


def _binary_element(raw: bytes, start: int, element: _Element, endian: str) -> tuple[dict, int]:
    """Columns of one element of a binary file, and the offset just past its rows."""
    rows = element.rows
    lengths = []  # the list lengths of the first row, assumed for all rows (the fast path)
    position = start
    fields = []
    for prop in element.properties:
        if prop.count_dtype is None:
            fields.append((prop.name, endian + prop.dtype))
            continue
        count_type = np.dtype(endian + prop.count_dtype)
        offset = start + np.dtype(fields).itemsize if fields else start
        if rows == 0:
            n = 0
        elif offset + count_type.itemsize > len(raw):
            raise _Truncated
        else:
            n = int(np.frombuffer(raw, count_type, 1, offset)[0])
        lengths.append(n)
        fields.append((prop.name + "\0count", count_type))
        fields.append((prop.name, endian + prop.dtype, (n,)))
    dtype = np.dtype(fields)
    if len(raw) - position >= rows * dtype.itemsize:
        table = np.frombuffer(raw, dtype, rows, position)
        if all((table[p.name + "\0count"] == n).all() for p, n in zip(_lists(element), lengths)):
            values = {p.name: table[p.name] for p in element.properties}
            return values, position + rows * dtype.itemsize
    if not lengths:
        raise _Truncated
    return _binary_rows(raw, start, element, endian)


def _lists(element: _Element) -> list[_Property]:
    return [p for p in element.properties if p.count_dtype is not None]


def _binary_rows(raw: bytes, position: int, element: _Element, endian: str) -> tuple[dict, int]:
    """The slow path: lists whose lengths vary from row to row, read row by row."""
    values: dict[str, list] = {p.name: [] for p in element.properties}
    for _ in range(element.rows):
        for prop in element.properties:
            n = 1
            if prop.count_dtype is not None:
                count_type = np.dtype(endian + prop.count_dtype)
                if position + count_type.itemsize > len(raw):
                    raise _Truncated
                n = int(np.frombuffer(raw, count_type, 1, position)[0])
                position += count_type.itemsize
            item = np.dtype(endian + prop.dtype)
            if n < 0 or position + n * item.itemsize > len(raw):
                raise _Truncated
            read = np.frombuffer(raw, item, n, position)
            position += n * item.itemsize
            values[prop.name].append(read if prop.count_dtype is not None else read[0])
    return values, position


def _mesh(elements: list[_Element], columns: dict[str, dict], source: str) -> TriangleMesh:
    vertex = next((e for e in elements if e.name == "vertex"), None)
    if vertex is None:
        raise MeshError("no 'vertex' element", source)
    missing = [axis for axis in "xyz" if axis not in {p.name for p in vertex.properties if p.count_dtype is None}]
    if missing:
        raise MeshError(f"'vertex' element has no {', '.join(missing)} property", source)
    vertices = np.stack([np.asarray(columns["vertex"][axis], dtype=np.float64).reshape(-1) for axis in "xyz"], axis=1)
    face = next((e for e in elements if e.name == "face"), None)
    if face is None or face.rows == 0:
        return TriangleMesh(vertices, np.empty((0, 3), dtype=np.int64))
    lists = _lists(face)
    named = [p for p in lists if p.name in _INDEX_NAMES]
    if not named and len(lists) != 1:
        raise MeshError("'face' element has no vertex_indices list", source)
    polygons = columns["face"][(named or lists)[0].name]
    if isinstance(polygons, np.ndarray):  # every face has the same number of corners
        counts = np.full(len(polygons), polygons.shape[1] if polygons.ndim == 2 else 0)
        corners = polygons.reshape(-1)
    else:
        counts = np.array([len(p) for p in polygons], dtype=np.int64)
        corners = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in polygons]) if polygons else np.empty(0)
    face_of = np.repeat(np.arange(len(counts)), counts)
    if corners.dtype.kind == "f" and not (np.mod(corners, 1) == 0).all():
        raise MeshError(f"face {face_of[np.argmax(np.mod(corners, 1) != 0)]}: non-integer vertex index", source)
    corners = corners.astype(np.int64)
    outside = (corners < 0) | (corners >= len(vertices))
    if outside.any():
        first = int(np.argmax(outside))
        raise MeshError(
            f"face {face_of[first]}: vertex index {corners[first]} out of range ({len(vertices)} vertices)", source
        )
    keep = counts >= 3  # a point or an edge has no surface
    rows = np.flatnonzero(keep)
    try:
        return triangulate(PolygonMesh(vertices, corners[np.repeat(keep, counts)], counts[keep]))
    except PolygonError as err:
        raise MeshError(f"face {rows[err.polygon]}: {err.reason}", source) from None
