"""Rigid and affine placement of triangle meshes, and gluing parts into one mesh.

A ``Mesh`` is ``(vertices float64 [N, 3], faces int64 [M, 3])``. Every function returns a new
mesh and keeps normals pointing outwards: a transform that mirrors (negative determinant) also
reverses the winding.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

Mesh = tuple[np.ndarray, np.ndarray]

_AXES = {
    "x": (1.0, 0.0, 0.0), "-x": (-1.0, 0.0, 0.0),
    "y": (0.0, 1.0, 0.0), "-y": (0.0, -1.0, 0.0),
    "z": (0.0, 0.0, 1.0), "-z": (0.0, 0.0, -1.0),
}


def as_mesh(vertices, faces) -> Mesh:
    """Coerce to the canonical dtypes and shapes."""
    return (np.asarray(vertices, dtype=np.float64).reshape(-1, 3),
            np.asarray(faces, dtype=np.int64).reshape(-1, 3))


def direction(axis) -> np.ndarray:
    """Unit vector for an axis letter ("x", "-z", ...) or any non-zero 3-vector."""
    d = np.asarray(_AXES[axis] if isinstance(axis, str) else axis, dtype=np.float64)
    n = np.linalg.norm(d)
    if not n > 0:
        raise ValueError(f"axis must be non-zero, got {axis!r}")
    return d / n


def rotation(axis, angle: float) -> np.ndarray:
    """3x3 right-handed rotation by ``angle`` radians about ``axis`` ("x", "y", "z" or a vector)."""
    k = direction(axis)
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * kx + (1.0 - np.cos(angle)) * (kx @ kx)


def rotation_from_y(axis) -> np.ndarray:
    """The rotation that takes +y to ``axis`` (the shortest one)."""
    d = direction(axis)
    y = np.array([0.0, 1.0, 0.0])
    c = float(d @ y)
    if c > 1.0 - 1e-12:
        return np.eye(3)
    if c < -1.0 + 1e-12:
        # Half turn about x keeps x fixed, which the symmetric classes rely on.
        return rotation("x", np.pi)
    return rotation(np.cross(y, d), np.arccos(np.clip(c, -1.0, 1.0)))


def flip(mesh: Mesh) -> Mesh:
    """Reverse the winding of every face."""
    v, f = mesh
    return v.copy(), f[:, ::-1].copy()


def apply_matrix(mesh: Mesh, matrix: np.ndarray) -> Mesh:
    """Apply a 3x3 linear map or a 4x4 affine transform to column vectors (``x' = M @ x``)."""
    v, f = mesh
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape == (4, 4):
        out = v @ m[:3, :3].T + m[:3, 3]
        det = np.linalg.det(m[:3, :3])
    elif m.shape == (3, 3):
        out = v @ m.T
        det = np.linalg.det(m)
    else:
        raise ValueError(f"expected a 3x3 or 4x4 matrix, got shape {m.shape}")
    # A mirroring transform turns outward normals inward unless the winding is reversed too.
    return (out, f[:, ::-1].copy()) if det < 0 else (out, f.copy())


def transform(mesh: Mesh, rotation: np.ndarray | None = None, translation=None, scale=None) -> Mesh:
    """Scale (per axis), then rotate (3x3), then translate."""
    v, f = mesh
    out = v.copy()
    det = 1.0
    if scale is not None:
        s = np.broadcast_to(np.asarray(scale, dtype=np.float64), (3,))
        out = out * s
        det = float(np.prod(s))
    if rotation is not None:
        out = out @ np.asarray(rotation, dtype=np.float64).T
    if translation is not None:
        out = out + np.asarray(translation, dtype=np.float64)
    return (out, f[:, ::-1].copy()) if det < 0 else (out, f.copy())


def translate(mesh: Mesh, offset) -> Mesh:
    return transform(mesh, translation=offset)


def mirror(mesh: Mesh, axis: int = 0) -> Mesh:
    """Reflect through the plane ``coordinate[axis] = 0`` (keeping normals outward)."""
    s = np.ones(3)
    s[axis] = -1.0
    return transform(mesh, scale=s)


def concatenate(parts: Iterable[Mesh]) -> Mesh:
    """One mesh holding all parts, untouched (no welding, no union)."""
    vs, fs, offset = [], [], 0
    for v, f in parts:
        vs.append(v)
        fs.append(f + offset)
        offset += len(v)
    if not vs:
        return as_mesh(np.zeros((0, 3)), np.zeros((0, 3)))
    return as_mesh(np.concatenate(vs), np.concatenate(fs))


def signed_volume(mesh: Mesh) -> float:
    """Volume enclosed by a closed mesh; negative when it is wound inside out."""
    v, f = mesh
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)
