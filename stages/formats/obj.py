"""Wavefront OBJ: a writer for triangle meshes, and a tolerant reader for what real files contain."""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from typing import IO

import numpy as np

from stages.atomic import write_text
from stages.errors import MAX_QUOTE, quote
from stages.formats.mesh import MeshError, TriangleMesh
from stages.formats.polygons import PolygonError, PolygonMesh, triangulate
from stages.formats.text import decode, read_bytes


def write_obj(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray, header: str = "") -> None:
    """Write a triangle mesh as OBJ (1-based indices), atomically."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    buf = io.StringIO()
    for line in header.splitlines():
        buf.write(f"# {line}\n")
    np.savetxt(buf, vertices, fmt="v %.6f %.6f %.6f")
    np.savetxt(buf, faces + 1, fmt="f %d %d %d")
    write_text(path, buf.getvalue())


# Reading ------------------------------------------------------------------------------------
#
# Two parsers give the same polygons. `_parse_by_line` is the reference: it walks logical lines
# and knows line numbers, so every error message comes from it. `_parse_vectorised` does the work
# for the files that parse cleanly (nearly all of them) with a few whole-text regex scans and
# numpy, and gives up (returns None) at the first sign of trouble, handing the text to the
# reference. Faces of fewer than three corners have no surface and are left out by both.
#
# Polygons are cut into triangles afterwards, once, by stages.formats.polygons (ear clipping in
# the polygon's plane; a fan from the first corner covers the notch of a concave polygon).

_COMMENT = re.compile(r"#[^\n]*")
# Comments go first, so a comment that ends in a Windows path ("# C:\models\") cannot swallow
# the line after it.
_CONTINUATION = re.compile(r"\\[^\S\n]*\n")
# Line starts are matched as "\n" + keyword, a literal prefix that the regex engine searches for
# quickly; indentation is removed first so that this finds every line. The lookahead `\s` is the
# whitespace str.split() splits on, so the two parsers agree on where a keyword ends.
_INDENT = re.compile(r"\n[^\S\n]+")
_VERTEX_LINE = re.compile(r"\nv(?=\s)([^\n]*)")
_FACE_LINE = re.compile(r"\nf(?=\s)([^\n]*)")
# The "/vt/vn" tail of a face corner, up to the whitespace that ends the corner, so what is left
# of each corner is exactly the field the reference parser reads. A corner that starts with "/"
# has no vertex field and vanishes whole, which the corner count check catches.
_CORNER_TAIL = re.compile(r"/\S*")


def read_obj(path_or_file: str | os.PathLike | IO[str] | IO[bytes]) -> TriangleMesh:
    """Read an OBJ file (a path, or an open text or binary file) as a triangle mesh.

    Raises MeshError (its reason starting "line N:" where a line is to blame) when the file cannot
    be read, its numbers or indices are malformed, or a polygon fits no triangulation (see
    stages.formats.polygons); a mesh that parses but cannot be used (no faces, NaN vertices, ...)
    is returned for `validate_mesh`.
    """
    if hasattr(path_or_file, "read"):
        source = str(getattr(path_or_file, "name", "<file>"))
        try:
            data = path_or_file.read()
        except UnicodeDecodeError as err:
            # A text stream decodes with the caller's encoding; the bytes are out of our reach.
            raise MeshError(f"cannot decode text stream: {err.reason}", source) from err
        except OSError as err:
            raise MeshError(f"cannot read file: {err.strerror or err}", source) from err
    else:
        source = os.fspath(path_or_file)
        data = read_bytes(path_or_file)
    if isinstance(data, bytes):
        data = decode(data)
    return parse_obj(data, source)


def parse_obj(text: str, source: str | None = None) -> TriangleMesh:
    """Parse OBJ text as a triangle mesh; `source` names it in error messages (see read_obj)."""
    text = _normalise_text(text)
    polygons, lines = _parse_vectorised(text), None
    if polygons is None:
        polygons, lines = _parse_by_line(text, source)
    try:
        return triangulate(polygons)
    except PolygonError as err:
        if lines is None:
            _, lines = _parse_by_line(text, source)
        raise MeshError(f"line {lines[err.polygon]}: {err.reason}", source) from None


def _normalise_text(text: str) -> str:
    """The text both parsers expect: newline line ends, a final newline, no byte-order mark."""
    # A byte-order mark (or its latin-1 reading) is not whitespace to str.split(): it would
    # hide the first keyword.
    text = text.removeprefix("\ufeff").removeprefix("\xef\xbb\xbf")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        # Both parsers then see a continuation on the last line the same way.
        text += "\n"
    return text


def _parse_vectorised(text: str) -> PolygonMesh | None:
    """The whole-text parser; None when the text needs the reference parser."""
    if "#" in text:
        text = _COMMENT.sub("", text)
    if "\\" in text:
        text = _CONTINUATION.sub(" ", text)
    text = "\n" + text
    if _INDENT.search(text):
        text = _INDENT.sub("\n", text)
    try:
        vertices = _vertex_block(_VERTEX_LINE.findall(text))
        if vertices is None:
            return None
        polygons = _face_block(_FACE_LINE.findall(text), len(vertices), text)
    except (ValueError, OverflowError):  # a malformed or huge number: the reference says which
        return None
    if polygons is None:
        return None
    corners, counts = polygons
    return PolygonMesh(vertices, corners, counts)


def _tokens_per_line(lines: list[str]) -> np.ndarray:
    return np.fromiter(map(len, map(str.split, lines)), dtype=np.int64, count=len(lines))


def _vertex_block(lines: list[str]) -> np.ndarray | None:
    if not lines:
        return np.empty((0, 3))
    counts = _tokens_per_line(lines)
    if counts.min() < 3:
        return None
    tokens = "\n".join(lines).split()
    # float() rather than numpy's string casting: it must accept exactly what the reference does.
    values = np.fromiter(map(float, tokens), dtype=np.float64, count=len(tokens))
    if (counts == counts[0]).all():
        return values.reshape(len(lines), counts[0])[:, :3]
    starts = np.cumsum(counts) - counts
    return values[starts[:, None] + np.arange(3)]


def _face_block(lines: list[str], num_vertices: int, text: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(corners int64 [K], counts int64 [P]) of the polygons of three or more corners, or None."""
    none = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
    if not lines:
        return none
    counts = _tokens_per_line(lines)
    joined = "\n".join(lines)
    if "/" in joined:
        joined = _CORNER_TAIL.sub("", joined)
    # numpy's integer parser is five times faster than int() and accepts less, except that it
    # reads a lone sign as 0 and saturates huge numbers; index 0 and the range check below send
    # those to the reference parser, and a corner that vanished or split changes the count.
    index = np.fromstring(joined, dtype=np.int64, sep=" ")
    if len(index) != counts.sum() or (index == 0).any():
        return None
    if len(index) == 0:
        return none
    if (index < 0).any():
        # A negative index counts back from the vertices defined before its own line.
        vertex_at = [m.start() for m in _VERTEX_LINE.finditer(text)]
        face_at = [m.start() for m in _FACE_LINE.finditer(text)]
        defined_before = np.searchsorted(vertex_at, face_at)
        resolved = np.where(index < 0, np.repeat(defined_before, counts) + index, index - 1)
    else:
        resolved = index - 1
    if resolved.min() < 0 or resolved.max() >= num_vertices:
        return None
    keep = counts >= 3
    if not keep.all():
        resolved, counts = resolved[np.repeat(keep, counts)], counts[keep]
    return resolved, counts


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(number of the first physical line, content) with comments cut and continuations joined."""
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.split("\n"), start=1):
        body = raw.split("#", 1)[0]
        stripped = body.rstrip()
        if stripped.endswith("\\"):
            if not pending:
                start = number
            pending.append(stripped[:-1])
            continue
        if pending:
            pending.append(body)
            yield start, " ".join(pending)
            pending = []
        else:
            yield number, body
    if pending:
        yield start, " ".join(pending)


def _parse_by_line(text: str, source: str | None) -> tuple[PolygonMesh, list[int]]:
    """The reference parser: one logical line at a time, raising MeshError with line numbers.

    Returns the polygons and the line number of each."""
    vertices: list[tuple[float, float, float]] = []
    corner_list: list[int] = []
    counts: list[int] = []
    lines: list[int] = []
    # Positive indices may point forward (vertices listed after the faces); checked at the end.
    forward: list[tuple[int, int]] = []
    for number, line in _logical_lines(text):
        parts = line.split()
        if not parts:
            continue
        keyword = parts[0]
        if keyword == "v":
            if len(parts) < 4:
                raise MeshError(f"line {number}: vertex has {len(parts) - 1} coordinates, needs 3", source)
            try:
                values = [float(p) for p in parts[1:]]
            except ValueError:
                bad = next(p for p in parts[1:] if not _is_float(p))
                raise MeshError(f"line {number}: malformed number {quote(bad)} in vertex", source) from None
            vertices.append((values[0], values[1], values[2]))
        elif keyword == "f":
            corners = []
            for corner in parts[1:]:
                try:
                    index = int(corner.split("/", 1)[0])
                except ValueError:
                    raise MeshError(f"line {number}: malformed face index {quote(corner)}", source) from None
                if index == 0:
                    raise MeshError(f"line {number}: face index 0 (OBJ indices start at 1)", source)
                if index < 0:
                    if -index > len(vertices):
                        raise MeshError(
                            f"line {number}: face index {_bounded(index)} out of range "
                            f"({len(vertices)} vertices before it)",
                            source,
                        )
                    corners.append(len(vertices) + index)
                else:
                    if index > len(vertices):
                        forward.append((number, index))
                    corners.append(index - 1)
            if len(corners) >= 3:
                corner_list.extend(corners)
                counts.append(len(corners))
                lines.append(number)
        # Everything else (vt, vn, vp, g, o, s, usemtl, mtllib, l, p, curves) has no bearing on
        # the triangle mesh.
    for number, index in forward:
        if index > len(vertices):
            raise MeshError(
                f"line {number}: face index {_bounded(index)} out of range ({len(vertices)} vertices)", source
            )
    return PolygonMesh(np.array(vertices, dtype=np.float64), corner_list, counts), lines


def _bounded(index: int) -> str:
    """A parsed index as text, cut like a quoted fragment (a 4,000-digit index is still one)."""
    text = str(index)
    return text if len(text) <= MAX_QUOTE else text[:MAX_QUOTE] + "..."


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
