"""Reading pickled NumPy object arrays without running arbitrary code.

A `.npy` member holding an object array stores a pickle of the whole ndarray; `np.load(...,
allow_pickle=True)` unpickles it with the standard unpickler, which calls any function the file
names (a crafted file can run `os.system`). `load_object_array` admits only what such an array
legitimately needs: NumPy's array reconstruction (`_reconstruct`, `ndarray`, `dtype`,
`_frombuffer`) and scalars (`scalar`), with elements that are bytes, str, NumPy scalars or
arrays. Anything else raises `UnsafePickleError` before it is called.
"""

from __future__ import annotations

import importlib
import pickle
import warnings
from typing import BinaryIO

import numpy as np

from .errors import StageError

# (module, name) pairs a pickled NumPy object array may reference; "numpy.core" is NumPy 1's
# name of "numpy._core".
ALLOWED_GLOBALS = frozenset(
    (module, name)
    for core in ("numpy.core", "numpy._core")
    for module, name in (
        (f"{core}.multiarray", "_reconstruct"),
        (f"{core}.multiarray", "scalar"),
        (f"{core}.numeric", "_frombuffer"),
    )
) | {("numpy", "ndarray"), ("numpy", "dtype")}
ALLOWED_ELEMENTS = (bytes, str, np.generic, np.ndarray)


class UnsafePickleError(StageError):
    """A pickle that references something outside ALLOWED_GLOBALS or holds other objects."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(f"pickle references {module}.{name}, which is not allowed")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core alias under NumPy 2
            return getattr(importlib.import_module(module), name)

    def persistent_load(self, pid):
        raise UnsafePickleError("pickle uses persistent ids, which are not allowed")


def _check_elements(array: np.ndarray, depth: int = 0) -> None:
    if not array.dtype.hasobject:
        return
    if depth > 4:
        raise UnsafePickleError("object arrays nested more than 4 deep")
    for item in array.flat:
        if not isinstance(item, ALLOWED_ELEMENTS):
            raise UnsafePickleError(f"object array holds a {type(item).__name__}, not bytes, str or NumPy data")
        if isinstance(item, np.ndarray):
            _check_elements(item, depth + 1)


def load_object_array(stream: BinaryIO) -> np.ndarray:
    """Unpickle one ndarray from `stream` (the data part of a `.npy` object array).

    Returns the array; raises UnsafePickleError for a disallowed global, persistent id, a result
    that is not an ndarray or an element that is not bytes/str/NumPy data, and
    pickle.UnpicklingError (or EOFError, ValueError, TypeError) for a corrupt stream.
    """
    result = _NumpyOnlyUnpickler(stream).load()
    if not isinstance(result, np.ndarray):
        raise UnsafePickleError(f"pickle holds a {type(result).__name__}, not a NumPy array")
    _check_elements(result)
    return result
