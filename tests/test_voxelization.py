"""The voxelizer against independent references: exact rational clipping, a brute-force float
SAT over every voxel, trimesh's inside test and surface distance, scipy's hole filling, and
hand-derived voxel sets. The CUDA kernels run here compiled for the CPU (serially, through a
small shim) when a C++ compiler is present; on a GPU they run for real (marker `gpu`)."""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import sys
import types
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import trimesh
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numba import njit
from scipy import ndimage

from stages.voxelization import (
    cube_to_voxel_space,
    grid_shape,
    mesh_to_voxel_transform,
    resolve_backend,
    voxelize_many,
    voxelize_triangles,
)
from stages.voxelization import cpu
from stages.voxelization import cuda as cuda_mod
from stages.voxelization.cpu import fill_enclosed, surface_voxels, voxelize_cpu

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------
# References


def clip_overlaps(tri, lo, hi) -> bool:
    """Exact: does the closed triangle meet the closed box [lo, hi]? Sutherland-Hodgman
    clipping of the triangle against the box's six half-spaces, in rational arithmetic; a
    non-empty remainder means overlap. Works for degenerate triangles too (the polygon is then
    a doubled-back segment or a repeated point, and the clipped vertex set still spans the
    intersection)."""
    poly = [tuple(Fraction(float(c)) for c in v) for v in tri]
    for axis in range(3):
        for sign, bound in ((1, Fraction(lo[axis])), (-1, Fraction(hi[axis]))):
            out = []
            for n, cur in enumerate(poly):
                nxt = poly[(n + 1) % len(poly)]
                dc = sign * (cur[axis] - bound)
                dn = sign * (nxt[axis] - bound)
                if dc >= 0:
                    out.append(cur)
                if (dc >= 0) != (dn >= 0):
                    t = dc / (dc - dn)
                    out.append(tuple(c + t * (m - c) for c, m in zip(cur, nxt)))
            poly = out
            if not poly:
                return False
    return True


def exact_surface(tris, shape, pad=Fraction(0)) -> np.ndarray:
    """Voxels whose box, grown by pad on every side (shrunk when negative), meets a triangle."""
    D, H, W = shape
    out = np.zeros(shape, bool)
    for tri in np.asarray(tris, dtype=np.float64).reshape(-1, 3, 3):
        mn, mx = tri.min(0), tri.max(0)
        for k in range(D):
            for j in range(H):
                for i in range(W):
                    if out[k, j, i]:
                        continue
                    c = (i, j, k)
                    if any(c[a] - 1 > mx[a] or c[a] + 2 < mn[a] for a in range(3)):
                        continue
                    box_lo = [Fraction(v) - pad for v in c]
                    box_hi = [Fraction(v + 1) + pad for v in c]
                    out[k, j, i] = clip_overlaps(tri, box_lo, box_hi)
    return out


def numpy_axes(tri):
    """The ten separating axes and their bounds, re-derived in NumPy with the canonical
    operation order of cpu.triangle_axes (every product and sum rounded on its own)."""
    (v0x, v0y, v0z), (v1x, v1y, v1z), (v2x, v2y, v2z) = (tuple(float(c) for c in v) for v in tri)
    e = [(v1x - v0x, v1y - v0y, v1z - v0z), (v2x - v1x, v2y - v1y, v2z - v1z), (v0x - v2x, v0y - v2y, v0z - v2z)]
    (e0x, e0y, e0z), (e1x, e1y, e1z) = e[0], e[1]
    axes = [(e0y * e1z - e0z * e1y, e0z * e1x - e0x * e1z, e0x * e1y - e0y * e1x)]
    axes += [(0.0, -ez, ey) for ex, ey, ez in e]
    axes += [(ez, 0.0, -ex) for ex, ey, ez in e]
    axes += [(-ey, ex, 0.0) for ex, ey, ez in e]
    bounds = []
    for x, y, z in axes:
        p = [(x * vx + y * vy) + z * vz for vx, vy, vz in ((v0x, v0y, v0z), (v1x, v1y, v1z), (v2x, v2y, v2z))]
        pos = (max(x, 0.0) + max(y, 0.0)) + max(z, 0.0)
        neg = (min(x, 0.0) + min(y, 0.0)) + min(z, 0.0)
        bounds.append((min(p) - pos, max(p) - neg))
    return axes, bounds


def brute_float_surface(tris, shape) -> np.ndarray:
    """The float SAT on every voxel of the grid, no line skipping or narrowing: what cpu.py
    promises to equal bit for bit. The canonical sum runs along the dominant normal axis d
    first: q = c_d * m + (the other two products in x, y, z order)."""
    D, H, W = shape
    K, J, I = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij")
    out = np.zeros(shape, bool)
    for tri in np.asarray(tris, dtype=np.float64).reshape(-1, 3, 3):
        mn, mx = tri.min(0), tri.max(0)
        ok = (I <= mx[0]) & (I + 1 >= mn[0]) & (J <= mx[1]) & (J + 1 >= mn[1]) & (K <= mx[2]) & (K + 1 >= mn[2])
        axes, bounds = numpy_axes(tri)
        n = [abs(c) for c in axes[0]]
        d = 2 if n[2] > n[0] and n[2] > n[1] else (1 if n[1] > n[0] else 0)
        for (x, y, z), (lo, hi) in zip(axes, bounds):
            if d == 0:
                q = x * I + (y * J + z * K)
            elif d == 1:
                q = y * J + (x * I + z * K)
            else:
                q = z * K + (x * I + y * J)
            ok &= (lo <= q) & (q <= hi)
        out |= ok
    return out


def random_rotation(rng) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    return trimesh.transformations.quaternion_matrix(q)[:3, :3]


# ---------------------------------------------------------------------------------------------
# Strategies

eighths = st.integers(-12, 44).map(lambda m: m / 8)  # dyadic: all arithmetic below is exact
dyadic_point = st.tuples(eighths, eighths, eighths)


@st.composite
def dyadic_triangles(draw):
    kind = draw(st.sampled_from(["general", "point", "segment", "collinear", "axis"]))
    a = draw(dyadic_point)
    if kind == "point":
        return np.array([a, a, a])
    b = draw(dyadic_point)
    if kind == "segment":
        return np.array([a, b, b])
    if kind == "collinear":
        m = tuple((x + y) / 2 for x, y in zip(a, b))
        return np.array([a, m, b])
    c = draw(dyadic_point)
    if kind == "axis":
        # In a plane of integer or half-integer coordinate: exactly on voxel faces, or halfway.
        axis = draw(st.integers(0, 2))
        level = draw(st.integers(-1, 9).map(lambda m: m / 2))
        a, b, c = (list(p) for p in (a, b, c))
        a[axis] = b[axis] = c[axis] = level
    return np.array([a, b, c], dtype=float)


finite = st.floats(-3, 7, allow_nan=False, allow_infinity=False)


def tie_triangle(corner, e1, e2, div) -> np.ndarray:
    """A triangle whose centroid is the voxel corner `corner` in exact arithmetic; its vertices
    (corner + e/div, inexact in binary) put that corner within an ulp or so of the plane, so
    whether the voxels touching the plane only at that corner count is decided by rounding:
    any change in the order of operations shows up here."""
    corner, e1, e2 = (np.asarray(v, dtype=float) for v in (corner, e1, e2))
    return np.array([corner + e1 / div, corner + e2 / div, corner - (e1 + e2) / div])


small_int3 = st.tuples(*[st.integers(-9, 9)] * 3)
tie_triangles = st.builds(
    tie_triangle, st.tuples(*[st.integers(1, 4)] * 3), small_int3, small_int3, st.sampled_from([3.0, 7.0, 10.0])
)


# ---------------------------------------------------------------------------------------------
# Surface


@SETTINGS
@given(tri=dyadic_triangles())
def test_surface_matches_exact_clipping_on_dyadic_triangles(tri):
    # Coordinates in eighths keep every product and sum of the float test exact, so the float
    # SAT must agree exactly with rational clipping, touching cases included.
    shape = (4, 4, 4)
    np.testing.assert_array_equal(surface_voxels(tri[None], shape), exact_surface(tri[None], shape))


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(tri=st.lists(st.tuples(finite, finite, finite), min_size=3, max_size=3).map(np.array))
def test_surface_between_shrunk_and_grown_exact_boxes(tri):
    # Arbitrary floats: rounding may decide only voxels within ~1e-9 of touching.
    shape = (4, 4, 4)
    got = surface_voxels(tri[None], shape)
    eps = Fraction(1, 10**9)
    assert not (exact_surface(tri[None], shape, -eps) & ~got).any()
    assert not (got & ~exact_surface(tri[None], shape, eps)).any()


@st.composite
def float_soups(draw):
    shape = draw(st.tuples(st.integers(1, 13), st.integers(1, 13), st.integers(1, 40)))
    D, H, W = shape
    size = draw(st.sampled_from([0.3, 2.0, 12.0, 60.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(1, 6))
    centre = rng.uniform(-0.2, 1.2, 3) * (W, H, D)
    tris = centre + rng.normal(size=(n, 3, 3)) * size
    if draw(st.booleans()):
        tris[0, 2] = tris[0, 1]  # a segment
    if draw(st.booleans()):
        tris[-1, :, draw(st.integers(0, 2))] = np.round(tris[-1, 0, 0])  # flat on a voxel face
    return tris, shape


@SETTINGS
@given(case=float_soups())
def test_surface_equals_brute_force_float_sat(case):
    # Line skipping and narrowing are only a speed-up: the result must be the float test of
    # every voxel, bit for bit, also for large triangles crossing the grid and its borders.
    tris, shape = case
    np.testing.assert_array_equal(surface_voxels(tris, shape), brute_float_surface(tris, shape))


@SETTINGS
@given(tris=st.lists(tie_triangles, min_size=1, max_size=4).map(np.array))
def test_surface_equals_brute_force_float_sat_on_rounding_ties(tris):
    np.testing.assert_array_equal(surface_voxels(tris, (6, 6, 6)), brute_float_surface(tris, (6, 6, 6)))


def test_single_axis_aligned_triangle_hand_checked():
    # In the plane z = 1.5 (voxel layer k = 1) with legs along x and y from (0.5, 0.5): voxel
    # (i, j) meets x, y >= 0.5, x + y <= 3 iff i + j <= 3 with i, j <= 2; the boxes (1, 2) and
    # (2, 1) only touch the hypotenuse at a corner, and still count.
    tri = np.array([[0.5, 0.5, 1.5], [2.5, 0.5, 1.5], [0.5, 2.5, 1.5]])
    expected = np.zeros((4, 4, 4), bool)
    for i, j in [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 2), (1, 2)]:
        expected[1, j, i] = True
    np.testing.assert_array_equal(voxelize_triangles(tri[None], 4, backend="cpu"), expected)
    # On the face z = 2 between layers 1 and 2, both layers are touched.
    tri[:, 2] = 2.0
    expected[2] = expected[1]
    np.testing.assert_array_equal(voxelize_triangles(tri[None], 4, backend="cpu"), expected)


def test_tetrahedron_hand_checked():
    # Solid {x, y, z >= 0.5, x + y + z <= 4.5}: box (i, j, k) meets it iff its corner nearest
    # the origin, clamped to 0.5, has f(i) + f(j) + f(k) <= 4.5 with f(0) = 0.5, f(n) = n; the
    # surface marks the boxes meeting the boundary and the fill the ones inside.
    v = np.array([[0.5, 0.5, 0.5], [3.5, 0.5, 0.5], [0.5, 3.5, 0.5], [0.5, 0.5, 3.5]])
    tris = v[[[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]]
    f = lambda n: 0.5 if n == 0 else n  # noqa: E731
    expected = np.zeros((4, 4, 4), bool)
    for k in range(4):
        for j in range(4):
            for i in range(4):
                expected[k, j, i] = f(i) + f(j) + f(k) <= 4.5
    got = voxelize_triangles(tris, 4, backend="cpu")
    np.testing.assert_array_equal(got, expected)
    # By zeros among (i, j, k): 1 (three) + 3*3 (two) + 3*6 (one: a + b <= 4) + 4 (none).
    assert got.sum() == 32


def test_triangles_outside_the_grid_are_clipped():
    big = np.array([[-50.0, -50.0, 2.5], [80.0, -50.0, 2.5], [-50.0, 80.0, 2.5]])
    got = surface_voxels(big[None], (5, 6, 7))
    expected = np.zeros((5, 6, 7), bool)
    expected[2] = True
    np.testing.assert_array_equal(got, expected)
    far = big + [0, 0, 100]
    assert not surface_voxels(far[None], (5, 6, 7)).any()
    assert not voxelize_triangles(np.zeros((0, 3, 3)), (5, 6, 7), backend="cpu").any()


def test_rejects_non_finite_and_bad_shapes():
    with pytest.raises(ValueError, match="finite"):
        voxelize_triangles(np.full((1, 3, 3), np.nan), 4, backend="cpu")
    with pytest.raises(ValueError):
        voxelize_triangles(np.zeros((1, 3, 3)), 0, backend="cpu")
    with pytest.raises(ValueError):
        grid_shape((4, 4))


# ---------------------------------------------------------------------------------------------
# Fill


@SETTINGS
@given(
    shape=st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 70)),
    density=st.floats(0.2, 0.8),
    seed=st.integers(0, 2**32 - 1),
    rounds=st.sampled_from([cpu.MAX_SWEEP_ROUNDS, 0, 10**6]),
)
def test_fill_equals_scipy_binary_fill_holes(shape, density, seed, rounds):
    # rounds 0 forces the scanline fallback, 10**6 the sweeps alone, the default either.
    surface = np.random.default_rng(seed).random(shape) < density
    np.testing.assert_array_equal(fill_enclosed(surface, max_rounds=rounds), ndimage.binary_fill_holes(surface))


@SETTINGS
@given(
    shape=st.tuples(st.integers(1, 10), st.integers(1, 10), st.integers(1, 20)),
    density=st.floats(0.2, 0.7),
    seed=st.integers(0, 2**32 - 1),
    capacity=st.sampled_from([1, 3, 10_000]),
)
def test_scanline_fallback_with_a_tiny_stack(shape, density, seed, capacity):
    # Seeds that do not fit on the stack are dropped and recovered by the rescans.
    surface = np.random.default_rng(seed).random(shape) < density
    g = surface.astype(np.uint8).reshape(-1)
    cpu._scanline_outside(g, *shape, capacity)
    np.testing.assert_array_equal((g != 2).reshape(shape), ndimage.binary_fill_holes(surface))


def spiral_walls(n: int) -> np.ndarray:
    """A square spiral corridor, extruded along z and capped, whose far end is sealed: the
    sweeps need many rounds to follow it, and the fill must agree with scipy."""
    walls = np.ones((n, n), bool)
    x, y, dx, dy, step = n // 2, n // 2, 1, 0, 1
    walls[y, x] = False
    while True:
        for _ in range(2):
            for _ in range(step):
                nx, ny = x + dx, y + dy
                if not (1 <= nx < n - 1 and 1 <= ny < n - 1):
                    return walls
                walls[ny, nx] = False
                x, y = nx, ny
            dx, dy = -dy, dx
        step += 2


def corridors(W: int) -> np.ndarray:
    """Solid walls around two straight corridors along x: one open at x = 0 only, one at
    x = W - 1 only. Outside reaches their far ends only along x, across every word boundary
    of the bit rows, forwards in one and backwards in the other."""
    grid = np.ones((5, 7, W), bool)
    grid[2, 2, :-1] = False
    grid[2, 4, 1:] = False
    return grid


@pytest.mark.parametrize("W", [63, 64, 65, 140])
def test_fill_along_corridors_across_words(W):
    grid = corridors(W)
    for rounds in (cpu.MAX_SWEEP_ROUNDS, 0):
        got = fill_enclosed(grid, max_rounds=rounds)
        np.testing.assert_array_equal(got, grid)
        np.testing.assert_array_equal(got, ndimage.binary_fill_holes(grid))


def test_fill_follows_a_spiral():
    walls = spiral_walls(33)
    walls[16, 31] = False  # open the corridor to the grid's side
    grid = np.repeat(walls[None], 6, axis=0)
    grid[0] = grid[-1] = True
    for rounds in (cpu.MAX_SWEEP_ROUNDS, 10**6, 0):
        np.testing.assert_array_equal(fill_enclosed(grid, max_rounds=rounds), ndimage.binary_fill_holes(grid))


def box_triangles(lo, hi, open_side=None) -> np.ndarray:
    """The 12 triangles of the box [lo, hi]; open_side (axis, 0 for -, 1 for +) drops a face."""
    # Corner c has x from bit 0, y from bit 1, z from bit 2 (0: lo, 1: hi).
    corners = np.array([[(lo, hi)[(c >> a) & 1][a] for a in range(3)] for c in range(8)], float)
    tris = []
    for axis in range(3):
        for side in range(2):
            if open_side == (axis, side):
                continue
            ids = [c for c in range(8) if (c >> axis) & 1 == side]
            a, b, c, d = ids
            tris += [corners[[a, b, d]], corners[[a, d, c]]]
    return np.array(tris)


CUPS = [(axis, side) for axis in range(3) for side in range(2)]


@pytest.mark.parametrize("open_side", CUPS)
def test_cups_stay_open_and_boxes_fill(open_side):
    shape = (12, 12, 12)
    interior = (slice(3, 9),) * 3
    cup = voxelize_triangles(box_triangles((2.5,) * 3, (9.5,) * 3, open_side), shape, backend="cpu")
    assert not cup[interior].any()
    closed = voxelize_triangles(box_triangles((2.5,) * 3, (9.5,) * 3), shape, backend="cpu")
    assert closed[2:10, 2:10, 2:10].all() and closed.sum() == 8**3


def test_closed_shell_touching_the_grid_boundary_fills():
    # Faces on x = 0, y = 0, z = 0 lie on the grid's border; the interior is still enclosed.
    got = voxelize_triangles(box_triangles((0.0,) * 3, (5.0,) * 3), 8, backend="cpu")
    expected = np.zeros((8, 8, 8), bool)
    expected[:6, :6, :6] = True
    np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------------------------------------
# Watertight meshes against trimesh's inside test and surface distance

SHAPES = {
    "box": lambda: trimesh.creation.box(extents=(1.0, 0.7, 0.4)),
    "icosphere": lambda: trimesh.creation.icosphere(subdivisions=2),
    "cylinder": lambda: trimesh.creation.cylinder(radius=0.4, height=1.0, sections=20),
    "capsule": lambda: trimesh.creation.capsule(height=0.6, radius=0.3, count=[10, 10]),
}


@settings(deadline=None, max_examples=12, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SHAPES)), seed=st.integers(0, 2**32 - 1), fill=st.floats(0.3, 0.95))
def test_watertight_meshes_against_inside_and_distance(name, seed, fill):
    # Convex shapes on purpose: a dent narrower than about two voxels gets sealed by its own
    # surface voxels and filled, as the semantics say, and its voxels can lie a little beyond
    # half a voxel diagonal from the surface.
    rng = np.random.default_rng(seed)
    mesh = SHAPES[name]()
    mesh.apply_transform(np.vstack([np.hstack([random_rotation(rng), np.zeros((3, 1))]), [0, 0, 0, 1]]))
    shape = (14, 16, 18)
    D, H, W = shape
    room = np.array([W, H, D], float) - 2.0
    mesh.apply_scale(fill * room.min() / mesh.extents.max())
    mesh.apply_translation(1.0 + rng.uniform(0, 1, 3) * (room - mesh.extents) - mesh.bounds[0])
    assume(mesh.is_watertight)
    grid = voxelize_triangles(mesh.triangles, shape, backend="cpu")
    k, j, i = np.indices(shape).reshape(3, -1)
    centres = np.stack([i, j, k], axis=1) + 0.5
    inside = mesh.contains(centres).reshape(shape)
    assert not (inside & ~grid).any(), "a voxel whose centre is inside is empty"
    extra = grid & ~inside
    points = centres[extra.reshape(-1)]
    _, dist, _ = trimesh.proximity.closest_point(mesh, points)
    assert dist.max(initial=0.0) <= np.sqrt(3) / 2 + 1e-9


# ---------------------------------------------------------------------------------------------
# API


def test_mesh_to_voxel_transform_and_cube_mapping():
    v = np.array([[1.0, 2.0, 3.0], [3.0, 2.5, 7.0], [2.0, 4.0, 3.5]])
    translate, scale = mesh_to_voxel_transform(v, 32)
    np.testing.assert_array_equal(translate, [1.0, 2.0, 3.0])
    assert scale == 4.0
    mapped = cube_to_voxel_space(v[None], translate, scale, (16, 8, 32))
    np.testing.assert_allclose(mapped[0], [[0, 0, 0], [16, 1, 16], [8, 4, 2]])
    with pytest.raises(ValueError):
        mesh_to_voxel_transform(np.zeros((3, 3)), 8)


def test_backends_without_gpu():
    if cuda_mod.cuda_available():
        pytest.skip("a GPU is present")
    assert resolve_backend("auto") == "cpu"
    with pytest.raises(RuntimeError, match="CUDA|GPU"):
        voxelize_triangles(np.zeros((1, 3, 3)), 4, backend="cuda")
    with pytest.raises(ValueError):
        resolve_backend("metal")
    grids = voxelize_many([box_triangles((1.0,) * 3, (3.0,) * 3), np.zeros((0, 3, 3))], 5, backend="auto")
    assert grids[0].sum() == 4**3 and not grids[1].any()  # faces on integer planes touch both sides


def test_cpu_backend_never_imports_cupy_or_the_cuda_module():
    code = (
        "import sys, numpy as np\n"
        "from stages.voxelization import voxelize_triangles\n"
        "voxelize_triangles(np.zeros((1, 3, 3)), 4, backend='cpu')\n"
        "assert 'cupy' not in sys.modules and 'stages.voxelization.cuda' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_cpu_code_has_no_fused_multiply_add():
    # Numba compiles without fastmath, so LLVM may not contract a*b + c: a fused operation
    # would round once and could flip a voxel against the CUDA kernels (built with --fmad=false).
    # Cached code cannot be inspected, so compile fresh copies of the float code.
    fma = re.compile(r"\bv?fn?m(add|sub)\d*[sp]d\b")
    ten = np.zeros(10)
    calls = [
        (cpu._surface_bits, (np.ones((1, 3, 3)), np.zeros(4, np.uint64), 2, 2, 2, 1)),
        (cpu._triangle_lines, (ten, ten, ten, ten, ten, np.zeros(4, np.uint64), 2, 1, 0, 0, 1, 2, 0, 1, 0, 1)),
        (cpu._narrow, (1.0, 0.5, 0.0, 1.0, 8.0, 0.0, 8.0)),
    ]
    for func, args in calls:
        fresh = njit(nogil=True)(func.py_func)
        fresh(*args)
        asm = "\n".join(fresh.inspect_asm().values())
        assert "ret" in asm and not fma.search(asm), func.__name__


def test_cuda_source_constants_match_cpu():
    src = cuda_mod.KERNEL_SOURCE
    assert float(re.search(r"#define TOL_SCALE (\S+)", src).group(1)) == cpu.TOL_SCALE
    assert int(re.search(r"#define PRUNE_MIN_LINE (\d+)", src).group(1)) == cpu.PRUNE_MIN_LINE
    assert int(re.search(r"#define NAXES (\d+)", src).group(1)) == cpu.NAXES
    assert cuda_mod.COMPILE_OPTIONS == ("--fmad=false",)


def test_cuda_kernel_file_is_found_and_defines_every_kernel():
    # kernels.cu sits beside cuda.py in the package and is read at run time (no GPU needed here).
    path = Path(cuda_mod.__file__).with_name(cuda_mod.KERNEL_FILE)
    assert path.is_file()
    src = cuda_mod.kernel_source()
    assert src == path.read_bytes().decode("utf-8") == cuda_mod.KERNEL_SOURCE
    defined = re.findall(r'extern "C" __global__ void (\w+)\(', src)
    assert sorted(defined) == sorted(cuda_mod.KERNEL_NAMES)
    with pytest.raises(AttributeError):
        cuda_mod.NO_SUCH_NAME  # noqa: B018 - the module's __getattr__ serves KERNEL_SOURCE only


# ---------------------------------------------------------------------------------------------
# CUDA kernels, compiled for the CPU and run one thread at a time

SHIM = r"""
#include <cmath>
using std::ceil; using std::floor; using std::fabs;
struct EmuDim { unsigned int x, y, z; };
static EmuDim threadIdx, blockIdx, blockDim;
#define __global__
#define __device__
#define __forceinline__ inline
static inline unsigned int atomicOr(unsigned int* p, unsigned int v) { unsigned int o = *p; *p = o | v; return o; }
static inline unsigned int __brev(unsigned int x) {
    unsigned int r = 0;
    for (int b = 0; b < 32; ++b) r |= ((x >> b) & 1u) << (31 - b);
    return r;
}
"""

_CTYPES = {"double": ctypes.c_double, "int": ctypes.c_int, "i64": ctypes.c_longlong}


class Emulator:
    """Runs KERNEL_SOURCE's kernels on the CPU: every thread of every block in turn. Valid
    because no kernel synchronizes or shares memory between threads, and the only concurrent
    writes are atomicOr and flags set to the same value."""

    BLOCK = 256

    def __init__(self, workdir):
        kernels = re.findall(r'extern "C" __global__ void (\w+)\(([^)]*)\)', cuda_mod.KERNEL_SOURCE)
        assert sorted(k for k, _ in kernels) == sorted(cuda_mod.KERNEL_NAMES)
        wrappers, self.signatures = [], {}
        for name, params in kernels:
            params = [" ".join(p.split()) for p in params.split(",")]
            names = [re.findall(r"\w+", p)[-1] for p in params]
            types = [ctypes.c_void_p if "*" in p else _CTYPES[p.replace("const", "").split()[0]] for p in params]
            self.signatures[name] = types
            wrappers.append(
                f'extern "C" void emu_{name}(long long emu_threads, {", ".join(params)}) {{\n'
                f"  blockDim.x = {self.BLOCK};\n"
                f"  for (long long b = 0; b * {self.BLOCK} < emu_threads; ++b) {{\n"
                f"    blockIdx.x = (unsigned int)b;\n"
                f"    for (unsigned int t = 0; t < {self.BLOCK}; ++t) {{\n"
                f"      threadIdx.x = t;\n"
                f"      {name}({', '.join(names)});\n"
                f"    }}\n"
                f"  }}\n}}\n"
            )
        src = workdir / "emu.cpp"
        src.write_text(SHIM + cuda_mod.KERNEL_SOURCE + "\n".join(wrappers))
        lib = workdir / "emu.so"
        flags = ["-O1", "-std=c++14", "-shared", "-fPIC", "-ffp-contract=off"]
        subprocess.run(["g++", *flags, "-o", str(lib), str(src)], check=True)
        self.lib = ctypes.CDLL(str(lib))

    def launch(self, name, n, args):
        types = self.signatures[name]
        assert len(types) == len(args)
        converted = []
        for t, a in zip(types, args):
            if t is ctypes.c_void_p:
                assert isinstance(a, np.ndarray) and a.flags.c_contiguous
                converted.append(ctypes.c_void_p(a.ctypes.data))
            else:
                assert isinstance(a, np.generic)
                converted.append(t(a.item()))
        getattr(self.lib, f"emu_{name}")(ctypes.c_longlong(n), *converted)

    def voxelize(self, list_of_triangles, shape):
        tris, mesh_of = cuda_mod.pack_batch(list_of_triangles)
        return cuda_mod.voxelize_device(np, self.launch, tris, mesh_of, len(list_of_triangles), shape).view(bool)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    if shutil.which("g++") is None:
        pytest.skip("no C++ compiler to run the CUDA kernels on the CPU")
    return Emulator(tmp_path_factory.mktemp("cuda_emu"))


def sample_meshes(rng, shape, count):
    D, H, W = shape
    out = []
    for n in range(count):
        mesh = list(SHAPES.values())[n % len(SHAPES)]()
        mesh.apply_transform(np.vstack([np.hstack([random_rotation(rng), np.zeros((3, 1))]), [0, 0, 0, 1]]))
        mesh.apply_scale(rng.uniform(0.3, 1.3) * min(W, H, D) / mesh.extents.max())
        mesh.apply_translation(rng.uniform(0, 1, 3) * (W, H, D) - mesh.centroid)
        out.append(mesh.triangles)
    out.append(rng.normal(size=(30, 3, 3)) * 4 + (W / 2, H / 2, D / 2))  # a soup, partly outside
    big = np.array([[-5.0, 1.3, -2.0], [W + 4.0, H * 0.7, D + 3.0], [W * 0.3, H + 6.0, D * 0.5]])
    out.append(np.stack([big, big[[0, 1, 1]], big[[2, 2, 2]]]))  # large, segment and point
    out.append(np.zeros((0, 3, 3)))
    out += [box_triangles((2.5,) * 3, (min(shape) - 2.5,) * 3, side) for side in CUPS[::2]]
    return out


@pytest.mark.parametrize("shape", [(9, 11, 20), (16, 16, 32), (7, 6, 45), (5, 12, 64), (10, 10, 70)])
def test_cuda_kernels_emulated_equal_cpu(emulator, shape):
    rng = np.random.default_rng(sum(shape))
    meshes = sample_meshes(rng, shape, 5)
    got = emulator.voxelize(meshes, shape)
    for grid, tris in zip(got, meshes):
        np.testing.assert_array_equal(grid, voxelize_cpu(tris, shape))


def voxel_cubes(grid) -> np.ndarray:
    """Triangles of a small cube inside each set voxel: their surface is exactly the grid."""
    k, j, i = np.nonzero(grid)
    return np.concatenate([box_triangles((a + 0.25, b + 0.25, c + 0.25), (a + 0.75, b + 0.75, c + 0.75))
                           for a, b, c in zip(i, j, k)])


def tie_meshes(count: int = 400) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    draw = lambda: tie_triangle(  # noqa: E731
        rng.integers(1, 5, 3), rng.integers(-9, 10, 3), rng.integers(-9, 10, 3), rng.choice([3.0, 7.0, 10.0])
    )
    return [draw()[None] for _ in range(count)]


def test_cuda_kernels_emulated_equal_cpu_on_rounding_ties(emulator):
    # Ties decided by rounding: a kernel that orders or fuses its arithmetic differently from
    # the CPU disagrees on some of these.
    meshes = tie_meshes()
    got = emulator.voxelize(meshes, (6, 6, 6))
    for grid, tris in zip(got, meshes):
        np.testing.assert_array_equal(grid, voxelize_cpu(tris, (6, 6, 6)))


class FakeCupy(types.ModuleType):
    """Just enough of CuPy's surface, over NumPy and the emulated kernels, to run the CUDA
    backend's host code (kernel compilation options, launch shapes, chunking, transfers)."""

    def __init__(self, emulator):
        super().__init__("cupy")
        self.compiled = []
        fake = self

        class CUDARuntimeError(RuntimeError):
            pass

        class RawKernel:
            def __init__(self, code, name, options=()):
                assert code == cuda_mod.KERNEL_SOURCE
                fake.compiled.append((name, tuple(options)))
                self.name = name

            def __call__(self, grid, block, args):
                emulator.launch(self.name, grid[0] * block[0], args)

        self.RawKernel = RawKernel
        runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, CUDARuntimeError=CUDARuntimeError)
        self.cuda = types.SimpleNamespace(runtime=runtime)
        self.asnumpy = np.asarray

    def __getattr__(self, name):
        return getattr(np, name)


@pytest.fixture
def fake_cupy(emulator, monkeypatch):
    fake = FakeCupy(emulator)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    cuda_mod._kernels.cache_clear()
    yield fake
    cuda_mod._kernels.cache_clear()


def test_cuda_backend_host_code_through_the_public_api(fake_cupy):
    shape = (10, 12, 40)
    meshes = sample_meshes(np.random.default_rng(11), shape, 4)
    assert resolve_backend("auto") == "cuda"
    got = voxelize_many(meshes, shape, backend="cuda")
    for grid, tris in zip(got, meshes):
        assert grid.dtype == bool and grid.shape == shape
        np.testing.assert_array_equal(grid, voxelize_cpu(tris, shape))
    # Two meshes per chunk: several sets of launches, concatenated in order.
    chunked = cuda_mod.voxelize_batch_cuda(meshes, shape, max_bytes=2 * 10 * 12 * 40)
    np.testing.assert_array_equal(chunked, np.stack(got))
    np.testing.assert_array_equal(voxelize_triangles(meshes[0], shape, backend="cuda"), got[0])
    assert cuda_mod.voxelize_batch_cuda([], shape).shape == (0,) + shape
    assert {name for name, _ in fake_cupy.compiled} == set(cuda_mod.KERNEL_NAMES)
    assert all(options == ("--fmad=false",) for _, options in fake_cupy.compiled)


def test_cuda_fill_emulated_follows_a_spiral_and_corridors(emulator):
    # The spiral needs many rounds of sweeps; the corridors carry across word boundaries.
    walls = spiral_walls(21)
    walls[10, 19] = False
    spiral = np.repeat(walls[None], 4, axis=0)
    spiral[0] = spiral[-1] = True
    for grid in (spiral, corridors(70), corridors(96)):
        tris = voxel_cubes(grid)
        got = emulator.voxelize([tris, tris], grid.shape)
        for g in got:
            np.testing.assert_array_equal(g, ndimage.binary_fill_holes(grid))
            np.testing.assert_array_equal(g, voxelize_cpu(tris, grid.shape))


# ---------------------------------------------------------------------------------------------
# The real GPU

gpu = pytest.mark.skipif(not cuda_mod.cuda_available(), reason="needs CuPy and a CUDA device")


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("shape", [(32, 32, 32), (20, 24, 70)])
def test_cuda_bit_identical_to_cpu(shape):
    rng = np.random.default_rng(7)
    meshes = sample_meshes(rng, shape, 12)
    got = cuda_mod.voxelize_batch_cuda(meshes, shape)
    assert got.dtype == bool and got.shape == (len(meshes),) + shape
    for grid, tris in zip(got, meshes):
        np.testing.assert_array_equal(grid, voxelize_cpu(tris, shape))


@pytest.mark.gpu
@gpu
def test_cuda_bit_identical_to_cpu_on_rounding_ties():
    # The real check of --fmad=false: with fused multiply-adds some of these flip.
    meshes = tie_meshes()
    got = cuda_mod.voxelize_batch_cuda(meshes, (6, 6, 6))
    for grid, tris in zip(got, meshes):
        np.testing.assert_array_equal(grid, voxelize_cpu(tris, (6, 6, 6)))


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("open_side", CUPS)
def test_cuda_cups(open_side):
    tris = box_triangles((2.5,) * 3, (9.5,) * 3, open_side)
    np.testing.assert_array_equal(voxelize_triangles(tris, 12, backend="cuda"), voxelize_cpu(tris, (12, 12, 12)))
