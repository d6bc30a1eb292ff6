"""CUDA voxelizer: the CPU algorithm of `cpu.py` as CuPy RawKernels, for many meshes per launch.

This module is imported only when the CUDA backend is asked for (or probed by backend="auto"),
and it imports CuPy only inside functions, so the CPU path never loads CuPy.

Bit-identical to the CPU. Both evaluate the same per-voxel float64 test (the CANONICAL formulas
in `cpu.py`) with the same operations in the same order. The kernels are compiled with
--fmad=false: by default NVCC/NVRTC fuse a*b + c into one FMA, rounded once instead of twice,
which would flip the rare voxel whose test lands within an ulp of a bound. Which voxels get
tested, and in which order, differs freely between the backends; it cannot change the result
(see `cpu.py`), and neither can the fill, which computes the unique fixpoint.

Work decomposition.
- Surface: one thread per (triangle, line): a line is a run of voxels along the dominant axis
  of the triangle's normal, inside its AABB. Threads per triangle vary from 1 to H*D (a triangle
  spanning the grid), so one thread per triangle would leave a warp waiting on its largest
  triangle, and one per voxel wastes most threads on voxels the line tests skip; per line, the
  work is bounded by the grid size, and the line skipping and narrowing of the CPU carry over.
  A prefix sum over lines per triangle maps thread -> (triangle, line) by binary search.
  Voxels are bits of uint32 words, set with atomicOr (several triangles share words).
- Fill: the same sweeps as the CPU on the bit grid: one thread per x row (carry-propagating
  run fills, forward and back, across words), per (k, word) column for y and per (j, word)
  column for z (32 columns at a time, forward and back). Each launch carries "outside" along a
  whole line, so a round of three launches crosses the grid; rounds repeat until a device flag
  stays clear. All meshes of the batch are swept by the same launches.

The host side is written against an array module `xp` and a `launch` function, so that the
tests can run these exact kernels, compiled for the CPU, where there is no GPU.
"""

from __future__ import annotations

import functools
import importlib.resources

import numpy as np

# The kernels' CUDA C source, a file of this package compiled by CuPy (NVRTC) at run time. Its
# 2^-40 and other constants must equal cpu.TOL_SCALE and friends (checked by the tests).
KERNEL_FILE = "kernels.cu"

KERNEL_NAMES = ("count_lines", "surface_lines", "init_outside", "sweep_x", "sweep_yz", "unpack")

# No fused multiply-add: the CPU path rounds every product and every sum separately.
COMPILE_OPTIONS = ("--fmad=false",)

THREADS = 256


def cuda_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        import cupy
    except ImportError:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except cupy.cuda.runtime.CUDARuntimeError:
        return False


@functools.lru_cache(maxsize=None)
def kernel_source() -> str:
    """The text of `kernels.cu`, exactly as stored (CuPy's compile cache is keyed by it)."""
    resource = importlib.resources.files(__package__).joinpath(KERNEL_FILE)
    with resource.open("rb") as handle:  # bytes: no newline translation
        return handle.read().decode("utf-8")


def __getattr__(name: str):
    # `cuda.KERNEL_SOURCE` reads the file on first use, so importing this module needs no file.
    if name == "KERNEL_SOURCE":
        return kernel_source()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.lru_cache(maxsize=None)
def _kernels() -> dict:
    import cupy

    source = kernel_source()
    return {name: cupy.RawKernel(source, name, options=COMPILE_OPTIONS) for name in KERNEL_NAMES}


def _cupy_launch(name: str, n: int, args: tuple) -> None:
    blocks = (n + THREADS - 1) // THREADS
    _kernels()[name]((blocks,), (THREADS,), args)


def voxelize_device(xp, launch, triangles, mesh_of, num_meshes: int, shape):
    """Occupancy of a batch on the device; xp is the array module (cupy, or numpy for the CPU
    emulation in the tests), launch(name, n_threads, args) runs a kernel of KERNEL_SOURCE.

    triangles: float64 [T, 9] in voxel space; mesh_of: int32 [T], the mesh of each triangle.
    Returns uint8 (num_meshes, D, H, W), 1 where occupied.
    """
    D, H, W = (int(s) for s in shape)
    WW = (W + 31) // 32
    B = int(num_meshes)
    T = int(triangles.shape[0])
    words = B * D * H * WW
    surf = xp.zeros(words, dtype=xp.uint32)
    out = xp.empty(words, dtype=xp.uint32)
    if T:
        counts = xp.empty(T, dtype=xp.int64)
        launch("count_lines", T, (triangles, np.int64(T), np.int32(D), np.int32(H), np.int32(W), counts))
        offsets = xp.zeros(T + 1, dtype=xp.int64)
        offsets[1:] = xp.cumsum(counts)
        total = int(offsets[T])
        if total:
            launch(
                "surface_lines",
                total,
                (triangles, mesh_of, offsets, np.int64(T), np.int64(total),
                 np.int32(D), np.int32(H), np.int32(W), np.int32(WW), surf),
            )
    dims = (np.int64(B), np.int32(D), np.int32(H), np.int32(W), np.int32(WW))
    launch("init_outside", words, (surf, out) + dims)
    changed = xp.zeros(1, dtype=xp.int32)
    # y columns: per (b, k) plane group of H rows, WW words each; z: per b, H*WW columns of D.
    y_cols = B * D * WW
    y_args = (np.int64(y_cols), np.int64(WW), np.int64(H * WW), np.int32(H), np.int64(WW))
    z_cols = B * H * WW
    z_args = (np.int64(z_cols), np.int64(H * WW), np.int64(D * H * WW), np.int32(D), np.int64(H * WW))
    while True:
        changed.fill(0)
        launch("sweep_x", B * D * H, (surf, out) + dims + (changed,))
        launch("sweep_yz", y_cols, (surf, out) + y_args + (changed,))
        launch("sweep_yz", z_cols, (surf, out) + z_args + (changed,))
        if int(changed[0]) == 0:
            break
    occ = xp.empty((B, D, H, W), dtype=xp.uint8)
    launch("unpack", B * D * H * W, (out, np.int64(B * D * H * W), np.int32(W), np.int32(WW), occ))
    return occ


def pack_batch(list_of_triangles, xp=np):
    """Concatenate the meshes' soups: (float64 [T, 9], int32 [T] mesh index) on xp."""
    arrays = [xp.asarray(t, dtype=xp.float64).reshape(-1, 9) for t in list_of_triangles]
    counts = np.array([a.shape[0] for a in arrays], dtype=np.int64)
    tris = xp.ascontiguousarray(xp.concatenate(arrays)) if arrays else xp.zeros((0, 9), dtype=xp.float64)
    if not bool(xp.isfinite(tris).all()):
        raise ValueError("triangle coordinates must be finite")
    mesh_of = xp.asarray(np.repeat(np.arange(len(arrays), dtype=np.int32), counts))
    return tris, mesh_of


def voxelize_batch_cuda(list_of_triangle_arrays, shape, *, return_device: bool = False,
                        max_bytes: int = 8 << 30):
    """Occupancy of each voxel-space soup [T_b, 3, 3] (numpy or cupy) as bool [B, D, H, W].

    Meshes are voxelized max_bytes of output at a time (one set of launches per chunk);
    return_device=True keeps the result on the GPU as a cupy array.
    """
    if not cuda_available():
        raise RuntimeError("the CUDA voxelizer needs CuPy and a visible CUDA device; neither was found usable")
    import cupy

    D, H, W = (int(s) for s in shape)
    if min(D, H, W) <= 0:
        raise ValueError(f"grid shape must be positive, got {(D, H, W)}")
    meshes = list(list_of_triangle_arrays)
    per_chunk = max(1, int(max_bytes) // (D * H * W))
    parts = []
    for start in range(0, len(meshes), per_chunk):
        chunk = meshes[start:start + per_chunk]
        tris, mesh_of = pack_batch(chunk, xp=cupy)
        occ = voxelize_device(cupy, _cupy_launch, tris, mesh_of, len(chunk), (D, H, W))
        parts.append(occ.view(cupy.bool_))
    if not parts:
        result = cupy.zeros((0, D, H, W), dtype=cupy.bool_)
    else:
        result = parts[0] if len(parts) == 1 else cupy.concatenate(parts)
    return result if return_device else cupy.asnumpy(result)
