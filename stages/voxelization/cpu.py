"""CPU voxelizer (Numba): conservative triangle/box surface voxels, then the enclosed fill.

Voxel (i, j, k) is the closed box [i, i+1] x [j, j+1] x [k, k+1]; grids are (D, H, W) indexed
[k, j, i]. Everything is float64 and compiled without fastmath, so LLVM never fuses a multiply
and an add (which would change the rounding). The CUDA source in `cuda.py` evaluates the same
per-voxel test with the same operations in the same order, which is what makes the two backends
bit-identical: any change to a formula marked CANONICAL must be made in both files.

Separating-axis test. The three box-face axes are the triangle's AABB, clamped to the grid. For
each of the ten others (the triangle normal and x, y, z crossed with the three edges) the
triangle projects to [tmin, tmax] and the box to [c.(i,j,k) + neg(c), c.(i,j,k) + pos(c)]
(neg/pos: the sums of the negative/positive components of c), so they overlap iff
    lo <= c.(i,j,k) <= hi,   lo = tmin - pos,  hi = tmax - neg.
The triangle side is precomputed once per triangle. Voxels are visited along lines parallel to
d, the dominant axis of the triangle's normal (`dominant_axis`), and per voxel the CANONICAL
value is c.(i,j,k) summed line-first:
    d = x: q = cx*i + (cy*j + cz*k)
    d = y: q = cy*j + (cx*i + cz*k)
    d = z: q = cz*k + (cx*i + cy*j)
and the comparisons are inclusive, so touching counts. Degenerate triangles need no special
case: a zero axis projects everything to 0 and never separates, and the remaining axes are
exactly those of the segment or point the triangle collapsed to.

Which voxels get tested is free (the result does not depend on it): the loops skip whole lines
with the three axes that are constant along them, and narrow long lines to the voxels that may
pass (short ones are cheaper to test whole). The narrowing keeps a slack far above the rounding
of q, so it never drops a voxel that the per-voxel test would accept: the result is exactly
"the float test on every voxel of the clamped AABB", as the tests check by brute force.

Fill. Free voxels reachable from the six faces are flooded with word-parallel sweeps on a bit
grid: each sweep carries "outside" along whole lines, forward and back, along x, y, then z, and
rounds repeat until no free voxel next to the outside is left - the same fixpoint the GPU
computes. Most shapes need one or two rounds; a maze that needs more than MAX_SWEEP_ROUNDS falls
back to a scanline flood, linear in the grid size whatever the shape. Both give the unique
fixpoint, so the choice never shows.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NAXES = 10
# Lines at least this long are narrowed before their voxels are tested; shorter ones are
# tested whole (the test is a few ns without branches, the narrowing a chain of divisions).
PRUNE_MIN_LINE = 8
# Relative slack of the narrowing; see `_narrow`.
TOL_SCALE = 2.0**-40
# Rounds of sweeps before the fill gives up on them and runs the scanline flood instead.
MAX_SWEEP_ROUNDS = 8

_U1 = np.uint64(1)
_U0 = np.uint64(0)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(cache=True, nogil=True, inline="always")
def _axis_range(mn, mx, n):
    """Voxel indices 0..n-1 whose closed interval [i, i+1] meets [mn, mx]; empty when lo > hi."""
    if mx < 0.0 or mn > n:
        return 0, -1
    lo = np.ceil(mn) - 1.0
    if lo < 0.0:
        lo = 0.0
    hi = np.floor(mx)
    if hi > n - 1.0:
        hi = n - 1.0
    return int(lo), int(hi)


@njit(cache=True, nogil=True, inline="always")
def _min3(a, b, c):
    m = a if a < b else b
    return m if m < c else c


@njit(cache=True, nogil=True, inline="always")
def _max3(a, b, c):
    m = a if a > b else b
    return m if m > c else c


@njit(cache=True, nogil=True, inline="always")
def triangle_axes(t, cx, cy, cz, lo, hi):
    """The ten non-box separating axes of triangle t [3,3] and their bounds (CANONICAL)."""
    v0x = t[0, 0]
    v0y = t[0, 1]
    v0z = t[0, 2]
    v1x = t[1, 0]
    v1y = t[1, 1]
    v1z = t[1, 2]
    v2x = t[2, 0]
    v2y = t[2, 1]
    v2z = t[2, 2]
    e0x = v1x - v0x
    e0y = v1y - v0y
    e0z = v1z - v0z
    e1x = v2x - v1x
    e1y = v2y - v1y
    e1z = v2z - v1z
    e2x = v0x - v2x
    e2y = v0y - v2y
    e2z = v0z - v2z
    cx[0] = e0y * e1z - e0z * e1y
    cy[0] = e0z * e1x - e0x * e1z
    cz[0] = e0x * e1y - e0y * e1x
    # x cross e = (0, -ez, ey); y cross e = (ez, 0, -ex); z cross e = (-ey, ex, 0)
    cx[1] = 0.0
    cy[1] = -e0z
    cz[1] = e0y
    cx[2] = 0.0
    cy[2] = -e1z
    cz[2] = e1y
    cx[3] = 0.0
    cy[3] = -e2z
    cz[3] = e2y
    cx[4] = e0z
    cy[4] = 0.0
    cz[4] = -e0x
    cx[5] = e1z
    cy[5] = 0.0
    cz[5] = -e1x
    cx[6] = e2z
    cy[6] = 0.0
    cz[6] = -e2x
    cx[7] = -e0y
    cy[7] = e0x
    cz[7] = 0.0
    cx[8] = -e1y
    cy[8] = e1x
    cz[8] = 0.0
    cx[9] = -e2y
    cy[9] = e2x
    cz[9] = 0.0
    for a in range(NAXES):
        x = cx[a]
        y = cy[a]
        z = cz[a]
        p0 = (x * v0x + y * v0y) + z * v0z
        p1 = (x * v1x + y * v1y) + z * v1z
        p2 = (x * v2x + y * v2y) + z * v2z
        pos = ((x if x > 0.0 else 0.0) + (y if y > 0.0 else 0.0)) + (z if z > 0.0 else 0.0)
        neg = ((x if x < 0.0 else 0.0) + (y if y < 0.0 else 0.0)) + (z if z < 0.0 else 0.0)
        lo[a] = _min3(p0, p1, p2) - pos
        hi[a] = _max3(p0, p1, p2) - neg


@njit(cache=True, nogil=True, inline="always")
def triangle_aabb(t, D, H, W):
    """(ilo, ihi, jlo, jhi, klo, khi): voxels whose boxes meet the triangle's AABB, clamped."""
    ilo, ihi = _axis_range(_min3(t[0, 0], t[1, 0], t[2, 0]), _max3(t[0, 0], t[1, 0], t[2, 0]), W)
    jlo, jhi = _axis_range(_min3(t[0, 1], t[1, 1], t[2, 1]), _max3(t[0, 1], t[1, 1], t[2, 1]), H)
    klo, khi = _axis_range(_min3(t[0, 2], t[1, 2], t[2, 2]), _max3(t[0, 2], t[1, 2], t[2, 2]), D)
    return ilo, ihi, jlo, jhi, klo, khi


@njit(cache=True, nogil=True, inline="always")
def dominant_axis(nx, ny, nz):
    """Axis the lines run along: the normal's largest component (x for a zero normal)."""
    anx = abs(nx)
    any_ = abs(ny)
    anz = abs(nz)
    if anz > anx and anz > any_:
        return 2
    if any_ > anx:
        return 1
    return 0


@njit(cache=True, nogil=True)
def _narrow(c, r, lo, hi, n, flo, fhi):
    """Narrow [flo, fhi] to the m with lo <= c*m + r <= hi, keeping every m in 0..n that the
    float test passes.

    The rounding of q = fl(fl(c*m) + r), of the bounds' numerators and of the quotients adds up
    to a few ulps of |c|*n + |r| + |lo| + |hi|; tol is 2^13 times that, so blo <= m <= bhi for
    every accepted m (also when a quotient overflows: the exact bound is then out of range too).
    """
    tol = (((abs(c) * n + abs(r)) + abs(lo)) + abs(hi)) * TOL_SCALE
    if c > 0.0:
        blo = ((lo - tol) - r) / c
        bhi = ((hi + tol) - r) / c
    else:
        blo = ((hi + tol) - r) / c
        bhi = ((lo - tol) - r) / c
    clo = np.ceil(blo)
    chi = np.floor(bhi)
    # NaN bounds (0/0 cannot happen, inf-inf only for absurd inputs) fail every compare: no change.
    if clo > flo:
        flo = clo
    if chi < fhi:
        fhi = chi
    return flo, fhi


@njit(cache=True, nogil=True, inline="always")
def _passes(q, lo, hi):
    return (lo <= q) & (q <= hi)


@njit(cache=True, nogil=True)
def _triangle_lines(cd, cu, cw, lo, hi, S, H, WW, d, m0, m1, n, u0, u1, w0, w1):
    """Test one triangle's voxels line by line along axis d.

    cd, cu, cw: each axis' components along d and along the two other axes in x, y, z order
    (u, w). Per voxel the CANONICAL value is  q = cd*m + (cu*u + cw*w).
    Axes 1-3 are x cross the edges (no x component), 4-6 y cross, 7-9 z cross: the family of
    d is constant along the line and is tested once; the normal and the six others per voxel.
    """
    l0 = 1 + 3 * d
    if d == 0:
        v1, v2, v3, v4, v5, v6 = 4, 5, 6, 7, 8, 9
    elif d == 1:
        v1, v2, v3, v4, v5, v6 = 1, 2, 3, 7, 8, 9
    else:
        v1, v2, v3, v4, v5, v6 = 1, 2, 3, 4, 5, 6
    # Scalars rather than array reads: the loops below run per voxel.
    c0, c1, c2, c3, c4, c5, c6 = cd[0], cd[v1], cd[v2], cd[v3], cd[v4], cd[v5], cd[v6]
    a0, a1, a2, a3, a4, a5, a6 = lo[0], lo[v1], lo[v2], lo[v3], lo[v4], lo[v5], lo[v6]
    b0, b1, b2, b3, b4, b5, b6 = hi[0], hi[v1], hi[v2], hi[v3], hi[v4], hi[v5], hi[v6]
    u0_, u1_, u2_, u3_, u4_, u5_, u6_ = cu[0], cu[v1], cu[v2], cu[v3], cu[v4], cu[v5], cu[v6]
    w0_, w1_, w2_, w3_, w4_, w5_, w6_ = cw[0], cw[v1], cw[v2], cw[v3], cw[v4], cw[v5], cw[v6]
    pu1, pu2, pu3 = cu[l0], cu[l0 + 1], cu[l0 + 2]
    pw1, pw2, pw3 = cw[l0], cw[l0 + 1], cw[l0 + 2]
    pl1, pl2, pl3 = lo[l0], lo[l0 + 1], lo[l0 + 2]
    ph1, ph2, ph3 = hi[l0], hi[l0 + 1], hi[l0 + 2]
    long_line = m1 - m0 + 1 >= PRUNE_MIN_LINE
    fn = float(n)
    for w in range(w0, w1 + 1):
        fw = float(w)
        for u in range(u0, u1 + 1):
            fu = float(u)
            # One branch for the three line tests, rather than three unpredictable ones.
            if not (
                _passes(pu1 * fu + pw1 * fw, pl1, ph1)
                & _passes(pu2 * fu + pw2 * fw, pl2, ph2)
                & _passes(pu3 * fu + pw3 * fw, pl3, ph3)
            ):
                continue
            r0 = u0_ * fu + w0_ * fw
            r1 = u1_ * fu + w1_ * fw
            r2 = u2_ * fu + w2_ * fw
            r3 = u3_ * fu + w3_ * fw
            r4 = u4_ * fu + w4_ * fw
            r5 = u5_ * fu + w5_ * fw
            r6 = u6_ * fu + w6_ * fw
            flo = float(m0)
            fhi = float(m1)
            if long_line:
                # Zero coefficients cannot narrow (and would divide by zero).
                if c0 != 0.0:
                    flo, fhi = _narrow(c0, r0, a0, b0, fn, flo, fhi)
                if c1 != 0.0:
                    flo, fhi = _narrow(c1, r1, a1, b1, fn, flo, fhi)
                if c2 != 0.0:
                    flo, fhi = _narrow(c2, r2, a2, b2, fn, flo, fhi)
                if c3 != 0.0:
                    flo, fhi = _narrow(c3, r3, a3, b3, fn, flo, fhi)
                if c4 != 0.0:
                    flo, fhi = _narrow(c4, r4, a4, b4, fn, flo, fhi)
                if c5 != 0.0:
                    flo, fhi = _narrow(c5, r5, a5, b5, fn, flo, fhi)
                if c6 != 0.0:
                    flo, fhi = _narrow(c6, r6, a6, b6, fn, flo, fhi)
            if flo > fhi:
                continue
            for m in range(int(flo), int(fhi) + 1):
                fm = float(m)
                # Branch-free: the outcomes are unpredictable, and mispredictions cost more
                # than evaluating all seven axes.
                ok = (
                    _passes(c0 * fm + r0, a0, b0)
                    & _passes(c1 * fm + r1, a1, b1)
                    & _passes(c2 * fm + r2, a2, b2)
                    & _passes(c3 * fm + r3, a3, b3)
                    & _passes(c4 * fm + r4, a4, b4)
                    & _passes(c5 * fm + r5, a5, b5)
                    & _passes(c6 * fm + r6, a6, b6)
                )
                if d == 0:
                    i, j, k = m, u, w
                elif d == 1:
                    i, j, k = u, m, w
                else:
                    i, j, k = u, w, m
                S[(k * H + j) * WW + (i >> 6)] |= np.uint64(ok) << np.uint64(i & 63)


@njit(cache=True, nogil=True)
def _surface_bits(tris, S, D, H, W, WW):
    """Set bit i & 63 of S[(k*H + j)*WW + (i >> 6)] for every voxel a triangle overlaps."""
    cx = np.empty(NAXES)
    cy = np.empty(NAXES)
    cz = np.empty(NAXES)
    lo = np.empty(NAXES)
    hi = np.empty(NAXES)
    for t in range(tris.shape[0]):
        tri = tris[t]
        ilo, ihi, jlo, jhi, klo, khi = triangle_aabb(tri, D, H, W)
        if ilo > ihi or jlo > jhi or klo > khi:
            continue
        triangle_axes(tri, cx, cy, cz, lo, hi)
        d = dominant_axis(cx[0], cy[0], cz[0])
        if d == 0:
            _triangle_lines(cx, cy, cz, lo, hi, S, H, WW, 0, ilo, ihi, W, jlo, jhi, klo, khi)
        elif d == 1:
            _triangle_lines(cy, cx, cz, lo, hi, S, H, WW, 1, jlo, jhi, H, ilo, ihi, klo, khi)
        else:
            _triangle_lines(cz, cx, cy, lo, hi, S, H, WW, 2, klo, khi, D, ilo, ihi, jlo, jhi)


# ----------------------------------------------------------------------------------------------
# Fill on the bit grid: O (outside) grows inside F = ~S (free) until it is closed.


@njit(cache=True, nogil=True, inline="always")
def _last_mask(W, WW):
    r = W - 64 * (WW - 1)
    if r == 64:
        return _ALL
    return (_U1 << np.uint64(r)) - _U1


@njit(cache=True, nogil=True, inline="always")
def _fill_up(s, F):
    """Bits of F from each seed of s up to the top of its run (s within F)."""
    return (((F + s) ^ F) & F) | s


@njit(cache=True, nogil=True, inline="always")
def _fill_down(s, F):
    """Bits of F from each seed of s down to the bottom of its run (Kogge-Stone, 6 steps)."""
    g = s
    p = F
    g |= p & (g >> np.uint64(1))
    p &= p >> np.uint64(1)
    g |= p & (g >> np.uint64(2))
    p &= p >> np.uint64(2)
    g |= p & (g >> np.uint64(4))
    p &= p >> np.uint64(4)
    g |= p & (g >> np.uint64(8))
    p &= p >> np.uint64(8)
    g |= p & (g >> np.uint64(16))
    p &= p >> np.uint64(16)
    g |= p & (g >> np.uint64(32))
    return g


@njit(cache=True, nogil=True)
def _init_outside(S, O, D, H, W, WW):
    last = _last_mask(W, WW)
    edge_hi = _U1 << np.uint64((W - 1) & 63)
    for k in range(D):
        for j in range(H):
            row = (k * H + j) * WW
            face = k == 0 or k == D - 1 or j == 0 or j == H - 1
            for w in range(WW):
                F = ~S[row + w]
                if w == WW - 1:
                    F &= last
                if face:
                    O[row + w] = F
                else:
                    seed = _U0
                    if w == 0:
                        seed |= _U1
                    if w == WW - 1:
                        seed |= edge_hi
                    O[row + w] = F & seed


@njit(cache=True, nogil=True)
def _sweep_x(S, O, D, H, W, WW):
    last = _last_mask(W, WW)
    changed = False
    for r in range(D * H):
        row = r * WW
        carry = _U0
        for w in range(WW):
            F = ~S[row + w]
            if w == WW - 1:
                F &= last
            o = O[row + w]
            n = _fill_up(o | (carry & F), F)
            carry = n >> np.uint64(63)
            if n != o:
                O[row + w] = n
                changed = True
        carry = _U0
        for w in range(WW - 1, -1, -1):
            F = ~S[row + w]
            if w == WW - 1:
                F &= last
            o = O[row + w]
            n = _fill_down(o | ((carry << np.uint64(63)) & F), F)
            carry = n & _U1
            if n != o:
                O[row + w] = n
                changed = True
    return changed


@njit(cache=True, nogil=True)
def _sweep_lines(S, O, outer, outer_stride, count, stride, block):
    """Forward and backward sweeps along lines of `count` steps `stride` words apart; each step
    is a contiguous block of `block` words, swept word-parallel.

    No padding mask is needed here: the padding bits of O start at zero and a y or z step only
    copies a bit from the same position of the neighbour.
    """
    changed = False
    for b in range(outer):
        base = b * outer_stride
        for step in range(2):
            for s in range(1, count):
                t = s if step == 0 else count - 1 - s
                p = t - 1 if step == 0 else t + 1
                cur = base + t * stride
                prev = base + p * stride
                for w in range(block):
                    o = O[cur + w]
                    n = o | (O[prev + w] & ~S[cur + w])
                    if n != o:
                        O[cur + w] = n
                        changed = True
    return changed


@njit(cache=True, nogil=True)
def _closed(S, O, D, H, W, WW):
    """True when no free voxel outside O has a 6-neighbour in O: O is then the fixpoint. One
    read-only pass, a third of the cost of the round of sweeps it saves."""
    last = _last_mask(W, WW)
    HW = H * WW
    for k in range(D):
        for j in range(H):
            row = (k * H + j) * WW
            for w in range(WW):
                p = row + w
                F = ~S[p]
                if w == WW - 1:
                    F &= last
                todo = F & ~O[p]
                if todo == _U0:
                    continue
                o = O[p]
                near = (o << _U1) | (o >> _U1)
                if w > 0:
                    near |= O[p - 1] >> np.uint64(63)
                if w < WW - 1:
                    near |= O[p + 1] << np.uint64(63)
                if j > 0:
                    near |= O[p - WW]
                if j < H - 1:
                    near |= O[p + WW]
                if k > 0:
                    near |= O[p - HW]
                if k < D - 1:
                    near |= O[p + HW]
                if todo & near:
                    return False
    return True


@njit(cache=True, nogil=True)
def _sweep_rounds(S, O, D, H, W, WW, max_rounds):
    """Rounds of x, y, z sweeps until O is closed; False if max_rounds was not enough."""
    for _ in range(max_rounds):
        changed = _sweep_x(S, O, D, H, W, WW)
        # y: per k, lines of H rows of WW words; z: lines of D planes of H*WW words.
        changed |= _sweep_lines(S, O, D, H * WW, H, WW, WW)
        changed |= _sweep_lines(S, O, 1, 0, D, H * WW, H * WW)
        # Usually the first round already reaches the fixpoint; checking that is cheaper than
        # a round that changes nothing.
        if not changed or _closed(S, O, D, H, W, WW):
            return True
    return False


# ----------------------------------------------------------------------------------------------
# Scanline flood on a byte grid (0 free, 1 surface, 2 outside): the fallback for mazes.


@njit(cache=True, nogil=True)
def _drain(g, stack, sp, D, H, W):
    """Scanline flood from the sp stacked seeds: mark 2 on the free (0) voxels they reach.
    Returns True when a seed had to be dropped because the stack was full."""
    HW = H * W
    dropped = False
    while sp > 0:
        sp -= 1
        p = stack[sp]
        if g[p] != 0:
            continue
        k = p // HW
        j = (p - k * HW) // W
        row = (k * H + j) * W
        a = p - row
        while a > 0 and g[row + a - 1] == 0:
            a -= 1
        b = p - row
        while b < W - 1 and g[row + b + 1] == 0:
            b += 1
        for x in range(a, b + 1):
            g[row + x] = 2
        for nb in range(4):
            if nb == 0:
                if j == 0:
                    continue
                nrow = row - W
            elif nb == 1:
                if j == H - 1:
                    continue
                nrow = row + W
            elif nb == 2:
                if k == 0:
                    continue
                nrow = row - HW
            else:
                if k == D - 1:
                    continue
                nrow = row + HW
            # One seed per run of free voxels in the neighbouring row.
            x = a
            while x <= b:
                if g[nrow + x] == 0:
                    if sp < stack.shape[0]:
                        stack[sp] = nrow + x
                        sp += 1
                    else:
                        dropped = True
                    x += 1
                    while x <= b and g[nrow + x] == 0:
                        x += 1
                else:
                    x += 1
    return dropped


@njit(cache=True, nogil=True)
def _next_to_outside(g, p, i, j, k, D, H, W):
    HW = H * W
    return (
        (i > 0 and g[p - 1] == 2)
        or (i < W - 1 and g[p + 1] == 2)
        or (j > 0 and g[p - W] == 2)
        or (j < H - 1 and g[p + W] == 2)
        or (k > 0 and g[p - HW] == 2)
        or (k < D - 1 and g[p + HW] == 2)
    )


@njit(cache=True, nogil=True)
def _scanline_outside(g, D, H, W, capacity):
    """Mark 2 on every free (0) voxel of flat g reachable from the grid's six faces.

    The stack has a fixed capacity (a stack that grows would be reassigned inside the loops,
    which costs Numba a reference count update per voxel); seeds that do not fit are dropped
    and found again by a pass for free voxels next to the outside, repeated until none is left.
    """
    stack = np.empty(capacity, np.int64)
    dropped = False
    for k in range(D):
        for j in range(H):
            row = (k * H + j) * W
            face = k == 0 or k == D - 1 or j == 0 or j == H - 1
            for i in range(W):
                if (face or i == 0 or i == W - 1) and g[row + i] == 0:
                    stack[0] = row + i
                    dropped |= _drain(g, stack, 1, D, H, W)
    while dropped:
        dropped = False
        for k in range(D):
            for j in range(H):
                row = (k * H + j) * W
                for i in range(W):
                    if g[row + i] == 0 and _next_to_outside(g, row + i, i, j, k, D, H, W):
                        stack[0] = row + i
                        dropped |= _drain(g, stack, 1, D, H, W)


@njit(cache=True, nogil=True)
def _bits_to_bytes(S, D, H, W, WW, out):
    """out[(k*H + j)*W + i] = bit i of row (k, j) of S, as 0/1."""
    for r in range(D * H):
        for i in range(W):
            out[r * W + i] = np.uint8((S[r * WW + (i >> 6)] >> np.uint64(i & 63)) & _U1)


@njit(cache=True, nogil=True)
def _outside_bits(S, O, D, H, W, WW, max_rounds):
    """O = outside bits of surface S; sweeps, or the scanline flood if they do not converge."""
    _init_outside(S, O, D, H, W, WW)
    if _sweep_rounds(S, O, D, H, W, WW, max_rounds):
        return
    g = np.empty(D * H * W, np.uint8)
    _bits_to_bytes(S, D, H, W, WW, g)
    _scanline_outside(g, D, H, W, 4 * (D * H + H * W + D * W) + 64)
    O[:] = 0
    for r in range(D * H):
        for i in range(W):
            if g[r * W + i] == 2:
                O[r * WW + (i >> 6)] |= _U1 << np.uint64(i & 63)


# ----------------------------------------------------------------------------------------------
# Python API


def _check_triangles(triangles) -> np.ndarray:
    tris = np.ascontiguousarray(np.asarray(triangles, dtype=np.float64).reshape(-1, 3, 3))
    if not np.isfinite(tris).all():
        raise ValueError("triangle coordinates must be finite")
    return tris


def _check_shape(shape) -> tuple[int, int, int]:
    D, H, W = (int(s) for s in shape)
    if min(D, H, W) <= 0:
        raise ValueError(f"grid shape must be positive, got {(D, H, W)}")
    return D, H, W


def _words(W: int) -> int:
    return (W + 63) // 64


def _unpack(bits: np.ndarray, shape, invert: bool) -> np.ndarray:
    """Bit rows [D*H*WW] uint64 -> bool (D, H, W); little-endian bit order within a word."""
    D, H, W = shape
    if invert:
        bits = ~bits
    # Bit i of a word is byte i // 8, bit i % 8 of its little-endian bytes.
    bytes_ = bits.astype("<u8", copy=False).view(np.uint8).reshape(D, H, -1)
    unpacked = np.unpackbits(bytes_, axis=-1, bitorder="little")
    return np.ascontiguousarray(unpacked[:, :, :W]).view(np.bool_)


def _pack(grid: np.ndarray) -> np.ndarray:
    """bool (D, H, W) -> bit rows [D*H*WW] uint64 (the inverse of `_unpack`)."""
    D, H, W = grid.shape
    WW = _words(W)
    padded = np.zeros((D, H, WW * 64), np.bool_)
    padded[:, :, :W] = grid
    return np.packbits(padded, axis=-1, bitorder="little").view("<u8").astype(np.uint64).reshape(-1)


def surface_voxels(triangles, shape) -> np.ndarray:
    """Voxels of a (D, H, W) grid that some triangle of the soup [T,3,3] (voxel space) overlaps."""
    D, H, W = _check_shape(shape)
    tris = _check_triangles(triangles)
    S = np.zeros(D * H * _words(W), np.uint64)
    _surface_bits(tris, S, D, H, W, _words(W))
    return _unpack(S, (D, H, W), invert=False)


def fill_enclosed(surface, *, max_rounds: int = MAX_SWEEP_ROUNDS) -> np.ndarray:
    """Occupancy of a surface grid: surface | (voxels not 6-connected to the grid's faces
    through empty voxels). bool (D, H, W) in and out."""
    surface = np.asarray(surface, dtype=np.bool_)
    if surface.ndim != 3 or surface.size == 0:
        raise ValueError(f"surface must be a non-empty 3-D grid, got shape {surface.shape}")
    D, H, W = surface.shape
    S = _pack(surface)
    O = np.empty_like(S)
    _outside_bits(S, O, D, H, W, _words(W), max_rounds)
    return _unpack(O, (D, H, W), invert=True)


@njit(cache=True, nogil=True)
def _voxelize_bits(tris, D, H, W, WW, max_rounds):
    S = np.zeros(D * H * WW, np.uint64)
    _surface_bits(tris, S, D, H, W, WW)
    O = np.empty_like(S)
    _outside_bits(S, O, D, H, W, WW, max_rounds)
    return O


def voxelize_cpu(triangles, shape, *, max_rounds: int = MAX_SWEEP_ROUNDS) -> np.ndarray:
    """Occupancy (surface, then enclosed fill) of a voxel-space triangle soup; bool (D, H, W)."""
    D, H, W = _check_shape(shape)
    tris = _check_triangles(triangles)
    O = _voxelize_bits(tris, D, H, W, _words(W), max_rounds)
    # Outside voxels are free by construction, so occupied is simply "not outside".
    return _unpack(O, (D, H, W), invert=True)
