"""Object File Format (OFF, as Geomview, Princeton's shape benchmark and ModelNet write it): reader.

    [ST][C][N]OFF [counts]     the keyword is optional, the counts may follow it on its line
    NV NF [NE]
    x y z [normal, colour, texture: ignored]        NV lines
    n i_1 ... i_n [colour: ignored]                  NF lines, 0-based indices

Comments run from "#" to the end of the line; blank lines are skipped. Polygons are cut into
triangles by stages.formats.polygons. The 4-D and n-D variants and binary OFF are refused.
"""

from __future__ import annotations

import os
import re

import numpy as np

from stages.errors import quote
from stages.formats.mesh import MeshError, TriangleMesh
from stages.formats.polygons import PolygonError, PolygonMesh, triangulate
from stages.formats.text import decode, read_bytes

_KEYWORD = re.compile(r"(?:ST)?C?N?(4?)(n?)OFF")


def read_off(path: str | os.PathLike) -> TriangleMesh:
    """Read an OFF file as a triangle mesh.

    Raises MeshError (reason "line N: ..." where a line is to blame) for an unreadable file, a
    missing or malformed count line, a file that ends before its counts are met, malformed
    numbers, face indices outside 0..NV-1, and polygons that fit no triangulation.
    """
    source = os.fspath(path)
    lines = _content_lines(decode(read_bytes(path)))
    vertex_count, face_count, rest = _counts(lines, source)
    if len(rest) < vertex_count:
        raise MeshError(f"file ends after {len(rest)} of {vertex_count} vertices", source)
    vertices = np.empty((vertex_count, 3))
    for k, (number, tokens) in enumerate(rest[:vertex_count]):
        vertices[k] = _floats(tokens, number, source)
    faces = rest[vertex_count:]
    if len(faces) < face_count:
        raise MeshError(f"file ends after {len(faces)} of {face_count} faces", source)
    corners, counts, face_lines = [], [], []
    for number, tokens in faces[:face_count]:
        size = _integer(tokens[0], number, "corner count", source)
        if len(tokens) < size + 1:
            raise MeshError(f"line {number}: face of {size} corners lists {len(tokens) - 1} indices", source)
        indices = [_integer(t, number, "face index", source) for t in tokens[1 : size + 1]]
        bad = [i for i in indices if not 0 <= i < vertex_count]
        if bad:
            raise MeshError(
                f"line {number}: face index {quote(bad[0])} out of range ({vertex_count} vertices)", source
            )
        if size >= 3:  # a point or an edge has no surface
            corners.extend(indices)
            counts.append(size)
            face_lines.append(number)
    try:
        return triangulate(PolygonMesh(vertices, corners, counts))
    except PolygonError as err:
        raise MeshError(f"line {face_lines[err.polygon]}: {err.reason}", source) from None


def _content_lines(text: str) -> list[tuple[int, list[str]]]:
    """(line number, tokens) of every line with content once comments are cut."""
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split("#", 1)[0].split()
        if tokens:
            lines.append((number, tokens))
    return lines


def _counts(lines: list[tuple[int, list[str]]], source: str) -> tuple[int, int, list]:
    """(NV, NF, the lines after the count line)."""
    if not lines:
        raise MeshError("empty file (no OFF header or counts)", source)
    number, tokens = lines[0]
    rest = lines[1:]
    keyword = _KEYWORD.fullmatch(tokens[0])
    if keyword:
        if keyword.group(1) or keyword.group(2):
            raise MeshError(f"line {number}: {quote(tokens[0])} (4-D or n-D OFF) is not supported", source)
        tokens = tokens[1:]
        if tokens and tokens[0].upper() == "BINARY":
            raise MeshError(f"line {number}: binary OFF is not supported", source)
        if not tokens:
            if not rest:
                raise MeshError("no vertex and face counts after the OFF header", source)
            (number, tokens), rest = rest[0], rest[1:]
    elif tokens[0].isalpha():
        raise MeshError(f"line {number}: not an OFF header: {quote(tokens[0])}", source)
    if len(tokens) < 2:
        raise MeshError(f"line {number}: the count line needs vertex and face counts, has {len(tokens)} numbers", source)
    vertex_count = _integer(tokens[0], number, "vertex count", source)
    face_count = _integer(tokens[1], number, "face count", source)
    if vertex_count < 0 or face_count < 0:
        raise MeshError(f"line {number}: negative count ({vertex_count} vertices, {face_count} faces)", source)
    return vertex_count, face_count, rest


def _integer(token: str, number: int, what: str, source: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise MeshError(f"line {number}: malformed {what} {quote(token)}", source) from None


def _floats(tokens: list[str], number: int, source: str) -> list[float]:
    if len(tokens) < 3:
        raise MeshError(f"line {number}: vertex has {len(tokens)} coordinates, needs 3", source)
    try:
        return [float(t) for t in tokens[:3]]
    except ValueError:
        bad = next(t for t in tokens[:3] if not _is_float(t))
        raise MeshError(f"line {number}: malformed number {quote(bad)} in vertex", source) from None


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
