"""Z-buffer triangle rasterisation on the CPU, with near-plane clipping.

Pixel-space conventions follow `stages.camera`: pixel (c, r) covers [c, c+1] x [r, r+1] and is
sampled at its centre (c + 0.5, r + 0.5); z is NDC depth in [-1, 1], smaller is nearer.

Coverage is watertight: a pixel centre on an edge shared by two triangles belongs to exactly one
of them (top-left rule), whatever the winding of either triangle, because

* each triangle is first brought to one screen-space orientation (no back-face culling, since
  ShapeNet meshes are not consistently oriented), so a shared edge is walked in opposite
  directions by its two triangles and the top-left rule gives it to exactly one of them;
* an edge function is always evaluated from the lexicographically smaller endpoint and negated
  if needed, so the two triangles compute bit-identical magnitudes with opposite signs and
  floating-point rounding cannot make both (or neither) claim a pixel centre.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _intersect_near(clip, dist, inside, outside):
    # Always interpolate from the inside endpoint so the neighbour triangle sharing this edge
    # creates a bit-identical vertex (keeps the clipped boundary watertight).
    t = dist[inside] / (dist[inside] - dist[outside])
    return clip[inside] + t * (clip[outside] - clip[inside])


@njit(cache=True, nogil=True)
def _clip_near(clip, faces):
    n = clip.shape[0]
    m = faces.shape[0]
    dist = clip[:, 2] + clip[:, 3]  # >= 0 on the visible side of the near plane (z_ndc >= -1)
    out_faces = np.empty((2 * m, 3), np.int64)
    out_src = np.empty(2 * m, np.int64)
    extra = np.empty((2 * m, 4), np.float64)
    nf = 0
    nv = 0
    for f in range(m):
        idx = (faces[f, 0], faces[f, 1], faces[f, 2])
        ins = (dist[idx[0]] >= 0.0, dist[idx[1]] >= 0.0, dist[idx[2]] >= 0.0)
        count = int(ins[0]) + int(ins[1]) + int(ins[2])
        if count == 3:
            out_faces[nf, 0], out_faces[nf, 1], out_faces[nf, 2] = idx
            out_src[nf] = f
            nf += 1
        elif count == 1:
            k = 0 if ins[0] else (1 if ins[1] else 2)
            i, o1, o2 = idx[k], idx[(k + 1) % 3], idx[(k + 2) % 3]
            extra[nv] = _intersect_near(clip, dist, i, o1)
            extra[nv + 1] = _intersect_near(clip, dist, i, o2)
            out_faces[nf, 0], out_faces[nf, 1], out_faces[nf, 2] = i, n + nv, n + nv + 1
            out_src[nf] = f
            nf += 1
            nv += 2
        elif count == 2:
            k = 0 if not ins[0] else (1 if not ins[1] else 2)
            o, i1, i2 = idx[k], idx[(k + 1) % 3], idx[(k + 2) % 3]
            extra[nv] = _intersect_near(clip, dist, i1, o)
            extra[nv + 1] = _intersect_near(clip, dist, i2, o)
            q1, q2 = n + nv, n + nv + 1
            # Clipped polygon (q1, i1, i2, q2) keeps the source winding.
            out_faces[nf, 0], out_faces[nf, 1], out_faces[nf, 2] = q1, i1, i2
            out_faces[nf + 1, 0], out_faces[nf + 1, 1], out_faces[nf + 1, 2] = q1, i2, q2
            out_src[nf] = f
            out_src[nf + 1] = f
            nf += 2
            nv += 2
    pixel = np.full((n + nv, 3), np.nan)
    for v in range(n):
        # Vertices behind the near plane are referenced by no output face; leaving them NaN
        # avoids dividing by w <= 0.
        if dist[v] >= 0.0:
            pixel[v] = clip[v, :3] / clip[v, 3]
    for v in range(nv):
        pixel[n + v] = extra[v, :3] / extra[v, 3]
    return pixel, out_faces[:nf].copy(), out_src[:nf].copy()


def project_and_clip(
    vertices: np.ndarray, faces: np.ndarray, world_to_clip: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project a mesh and clip it against the near plane in homogeneous space.

    `world_to_clip` maps a world point to homogeneous coordinates whose perspective divide gives
    (pixel x, pixel y, NDC z), e.g. `image_to_pixel(w, h) @ camera_transform @ view_transform`.
    A triangle partly behind the near plane (NDC z < -1, which includes everything with w <= 0)
    becomes one or two triangles covering only its visible part; one entirely behind is dropped.

    Returns (pixel_vertices [K, 3] float64, faces [L, 3] int64, source_face_ids [L] int64);
    vertices not used by any returned face may be NaN.
    """
    vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    faces = np.ascontiguousarray(np.asarray(faces, dtype=np.int64).reshape(-1, 3))
    m = np.asarray(world_to_clip, dtype=np.float64)
    clip = np.ascontiguousarray(vertices @ m[:, :3].T + m[:, 3])
    return _clip_near(clip, faces)


@njit(cache=True, nogil=True)
def _edge_setup(ax, ay, bx, by):
    if ax > bx or (ax == bx and ay > by):
        return bx, by, ax - bx, ay - by, -1.0
    return ax, ay, bx - ax, by - ay, 1.0


@njit(cache=True, nogil=True)
def _owns_zero(dx, dy, sign):
    # Top-left rule for triangles with positive area in y-down pixel coordinates: top edges run
    # in +x, left edges in -y. Exactly one of d and -d passes, which is all watertightness needs.
    dx *= sign
    dy *= sign
    return dy < 0.0 or (dy == 0.0 and dx > 0.0)


@njit(cache=True, nogil=True)
def _rasterize(pv, faces, width, height):
    depth = np.full((height, width), np.inf)
    face_id = np.full((height, width), -1, np.int32)
    bary = np.zeros((height, width, 3))
    for f in range(faces.shape[0]):
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        x0, y0 = pv[i0, 0], pv[i0, 1]
        x1, y1 = pv[i1, 0], pv[i1, 1]
        x2, y2 = pv[i2, 0], pv[i2, 1]
        area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
        if not np.isfinite(area) or area == 0.0:
            continue
        swapped = area < 0.0
        if swapped:
            i1, i2 = i2, i1
            x1, y1, x2, y2 = x2, y2, x1, y1
        z0, z1, z2 = pv[i0, 2], pv[i1, 2], pv[i2, 2]
        c_lo = max(0, int(np.ceil(min(x0, x1, x2) - 0.5)))
        c_hi = min(width - 1, int(np.floor(max(x0, x1, x2) - 0.5)))
        r_lo = max(0, int(np.ceil(min(y0, y1, y2) - 0.5)))
        r_hi = min(height - 1, int(np.floor(max(y0, y1, y2) - 0.5)))
        if c_lo > c_hi or r_lo > r_hi:
            continue
        # Edge k is opposite vertex k, so its value is proportional to barycentric k.
        ox0, oy0, dx0, dy0, s0 = _edge_setup(x1, y1, x2, y2)
        ox1, oy1, dx1, dy1, s1 = _edge_setup(x2, y2, x0, y0)
        ox2, oy2, dx2, dy2, s2 = _edge_setup(x0, y0, x1, y1)
        own0 = _owns_zero(dx0, dy0, s0)
        own1 = _owns_zero(dx1, dy1, s1)
        own2 = _owns_zero(dx2, dy2, s2)
        for r in range(r_lo, r_hi + 1):
            py = r + 0.5
            for c in range(c_lo, c_hi + 1):
                px = c + 0.5
                e0 = s0 * (dx0 * (py - oy0) - dy0 * (px - ox0))
                if e0 < 0.0 or (e0 == 0.0 and not own0):
                    continue
                e1 = s1 * (dx1 * (py - oy1) - dy1 * (px - ox1))
                if e1 < 0.0 or (e1 == 0.0 and not own1):
                    continue
                e2 = s2 * (dx2 * (py - oy2) - dy2 * (px - ox2))
                if e2 < 0.0 or (e2 == 0.0 and not own2):
                    continue
                total = e0 + e1 + e2
                b0, b1, b2 = e0 / total, e1 / total, e2 / total
                # NDC z is affine in screen space, so screen-space weights interpolate it exactly.
                z = b0 * z0 + b1 * z1 + b2 * z2
                if z < depth[r, c] and z <= 1.0:
                    depth[r, c] = z
                    face_id[r, c] = f
                    bary[r, c, 0] = b0
                    if swapped:
                        bary[r, c, 1], bary[r, c, 2] = b2, b1
                    else:
                        bary[r, c, 1], bary[r, c, 2] = b1, b2
    return depth, face_id, bary


def rasterize(
    pixel_vertices: np.ndarray, faces: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rasterise triangles with a z-buffer, sampling at pixel centres.

    pixel_vertices: [N, 3] (x, y in pixels, z = NDC depth, smaller is nearer); faces: [M, 3].
    Both windings are drawn; fragments beyond the far plane (z > 1) are dropped; on equal depth
    the earlier face wins. Returns depth [H, W] float64 (+inf where empty), face_id [H, W] int32
    (index into `faces`, -1 where empty) and bary [H, W, 3] float64: screen-space barycentric
    weights of the face's three vertices in `faces` order (affine in pixel coordinates, so they
    interpolate NDC z exactly but are not perspective-correct for world attributes).
    """
    pv = np.ascontiguousarray(np.asarray(pixel_vertices, dtype=np.float64).reshape(-1, 3))
    f = np.ascontiguousarray(np.asarray(faces, dtype=np.int64).reshape(-1, 3))
    if f.size and (f.min() < 0 or f.max() >= len(pv)):
        raise ValueError("face index out of range")
    return _rasterize(pv, f, int(width), int(height))
