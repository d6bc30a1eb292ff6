"""Bytes of a text mesh file as text: what the OBJ and OFF readers share."""

from __future__ import annotations

import os
from pathlib import Path

from stages.formats.mesh import MeshError


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes; MeshError("cannot read file: ...", path) when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise MeshError(f"cannot read file: {err.strerror or type(err).__name__}", os.fspath(path)) from err


def decode(data: bytes) -> str:
    """UTF-8, or latin-1 where that fails: exporters write names in the local code page, and
    latin-1 maps every byte, while the numbers and keywords are ASCII either way."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")
