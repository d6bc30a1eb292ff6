"""Voxelizer benchmark: our CPU backend against trimesh's voxelized(pitch).fill(), and the CUDA
batch throughput when a GPU is visible.

    python benchmarks/voxelize.py [--repeats N] [--gpu-meshes N]

Meshes (about 5,000 faces each): a smoothly perturbed icosphere (watertight, with dents), a
torus (watertight, with a hole), and the perturbed icosphere with every triangle shrunk by 0.1%
towards its centroid (not watertight: hairline cracks everywhere, the kind of input where ray
parity fails and the enclosed fill must still close the shell).

Agreement is the reference criterion of the tests: every voxel whose centre is inside the
(watertight original) mesh is occupied, and every other occupied voxel lies within half a
voxel diagonal of the surface. Inside is decided by ray parity along each voxel row (checked
against trimesh's contains at 32^3), surface distance with trimesh's closest-point routine.
The last line reads `cpu vs trimesh at 128^3: <ratio>x` for the perturbed icosphere.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.voxelization import cube_to_voxel_space, mesh_to_voxel_transform  # noqa: E402
from stages.voxelization import cuda as cuda_backend  # noqa: E402
from stages.voxelization.cpu import voxelize_cpu  # noqa: E402

RESOLUTIONS = (32, 64, 128)


def perturbed_sphere(seed: int = 0) -> trimesh.Trimesh:
    """An icosphere (5,120 faces) with smooth bumps and dents. Smooth on purpose: a dent
    narrower than about two voxels gets sealed by its own surface voxels and filled, which is
    right by the semantics but breaks the distance half of the agreement criterion."""
    mesh = trimesh.creation.icosphere(subdivisions=4)
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * np.pi, 3)
    x, y, z = mesh.vertices.T
    radius = 1.0 + 0.12 * np.sin(3 * x + phase[0]) * np.sin(2 * y + phase[1]) + 0.06 * np.cos(5 * z + phase[2])
    return trimesh.Trimesh(mesh.vertices * radius[:, None], mesh.faces, process=False)


def torus() -> trimesh.Trimesh:
    return trimesh.creation.torus(major_radius=1.0, minor_radius=0.35, major_sections=80, minor_sections=32)


def cracked(mesh: trimesh.Trimesh) -> np.ndarray:
    tris = mesh.triangles
    centroid = tris.mean(axis=1, keepdims=True)
    return centroid + (tris - centroid) * 0.999


def inside_by_row_parity(tris: np.ndarray, shape) -> np.ndarray:
    """Voxel centres inside a watertight soup: crossings of the +x ray along each row."""
    D, H, W = shape
    inside = np.zeros(shape, bool)
    crossings: dict[tuple[int, int], list[float]] = {}
    for tri in tris:
        (ax, ay, az), (bx, by, bz), (cx, cy, cz) = tri
        det = (by - ay) * (cz - az) - (cy - ay) * (bz - az)
        if det == 0.0:
            continue
        j0, j1 = int(np.floor(min(ay, by, cy) - 0.5)), int(np.ceil(max(ay, by, cy) - 0.5))
        k0, k1 = int(np.floor(min(az, bz, cz) - 0.5)), int(np.ceil(max(az, bz, cz) - 0.5))
        for k in range(max(k0, 0), min(k1, D - 1) + 1):
            for j in range(max(j0, 0), min(j1, H - 1) + 1):
                py, pz = j + 0.5, k + 0.5
                u = ((py - ay) * (cz - az) - (cy - ay) * (pz - az)) / det
                v = ((by - ay) * (pz - az) - (py - ay) * (bz - az)) / det
                if u >= 0 and v >= 0 and u + v <= 1:
                    crossings.setdefault((k, j), []).append(ax + u * (bx - ax) + v * (cx - ax))
    centres = np.arange(W) + 0.5
    for (k, j), xs in crossings.items():
        inside[k, j] = (np.searchsorted(np.sort(xs), centres) % 2) == 1
    return inside


def near_surface(points: np.ndarray, tris: np.ndarray, radius: float) -> np.ndarray:
    """Which points lie within radius of some triangle (exact closest points, KD-tree pruning)."""
    ok = np.zeros(len(points), bool)
    if len(points) == 0:
        return ok
    centroid = tris.mean(axis=1)
    reach = np.linalg.norm(tris - centroid[:, None], axis=2).max(axis=1) + radius
    tree = cKDTree(points)
    pairs = tree.query_ball_point(centroid, reach)
    ti = np.repeat(np.arange(len(tris)), [len(p) for p in pairs])
    pi = np.concatenate([np.asarray(p, dtype=np.int64) for p in pairs])
    for start in range(0, len(pi), 500_000):
        t, p = ti[start:start + 500_000], pi[start:start + 500_000]
        closest = trimesh.triangles.closest_point(tris[t], points[p])
        hit = np.linalg.norm(closest - points[p], axis=1) <= radius
        ok[p[hit]] = True
    return ok


def agreement(grid: np.ndarray, vox_tris: np.ndarray, reference_tris: np.ndarray) -> str:
    shape = grid.shape
    inside = inside_by_row_parity(reference_tris, shape)
    missing = int((inside & ~grid).sum())
    extra = grid & ~inside
    k, j, i = np.nonzero(extra)
    points = np.stack([i, j, k], axis=1) + 0.5
    far = int((~near_surface(points, vox_tris, np.sqrt(3) / 2 + 1e-9)).sum())
    return "ok" if missing == 0 and far == 0 else f"FAIL ({missing} inside empty, {far} far)"


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def check_parity_reference() -> str:
    mesh = perturbed_sphere(1)
    translate, scale = mesh_to_voxel_transform(mesh.vertices, 32)
    vox = cube_to_voxel_space(mesh.triangles, translate, scale, 32)
    k, j, i = np.indices((32, 32, 32)).reshape(3, -1)
    centres = (np.stack([i, j, k], axis=1) + 0.5) * scale / 32 + translate
    contains = mesh.contains(centres).reshape(32, 32, 32)
    parity = inside_by_row_parity(vox, (32, 32, 32))
    return "agrees" if np.array_equal(contains, parity) else f"DISAGREES on {int((contains != parity).sum())} voxels"


def cpu_section(repeats: int) -> float:
    sphere = perturbed_sphere()
    ring = torus()
    cases = [
        ("perturbed icosphere", sphere, sphere.triangles, sphere.triangles),
        ("torus", ring, ring.triangles, ring.triangles),
        ("cracked icosphere (open)", sphere, cracked(sphere), sphere.triangles),
    ]
    voxelize_cpu(sphere.triangles[:10], (8, 8, 8))  # JIT (or load the cache) outside timing
    print(f"ray-parity inside reference vs trimesh contains at 32^3: {check_parity_reference()}")
    print()
    header = f"{'mesh':<26} {'res':>4} {'faces':>6} {'ours s':>10} {'trimesh s':>10} {'ratio':>8}  agreement"
    print(header)
    print("-" * len(header))
    headline = float("nan")
    for name, mesh, tris, reference in cases:
        translate, scale = mesh_to_voxel_transform(mesh.vertices, 1)
        for res in RESOLUTIONS:
            shape = (res, res, res)
            vox = cube_to_voxel_space(tris, translate, scale, res)
            ref_vox = cube_to_voxel_space(reference, translate, scale, res)
            grid = voxelize_cpu(vox, shape)
            ours = median_time(lambda: voxelize_cpu(vox, shape), 21)
            soup = trimesh.Trimesh(tris.reshape(-1, 3), np.arange(3 * len(tris)).reshape(-1, 3), process=False) \
                if tris is not mesh.triangles else mesh
            theirs = median_time(lambda: soup.voxelized(pitch=scale / res).fill(), repeats)
            ratio = theirs / ours
            print(f"{name:<26} {res:>4} {len(tris):>6} {ours:>10.5f} {theirs:>10.4f} {ratio:>7.0f}x  "
                  f"{agreement(grid, vox, ref_vox)}", flush=True)
            if name == "perturbed icosphere" and res == 128:
                headline = ratio
    return headline


def gpu_section(count: int) -> None:
    print()
    if not cuda_backend.cuda_available():
        try:
            import cupy  # noqa: F401

            why = "CuPy is installed but sees no CUDA device"
        except ImportError:
            why = "CuPy is not installed"
        print(f"GPU section skipped: {why}")
        return
    import cupy

    res = 128
    shape = (res, res, res)
    rng = np.random.default_rng(0)
    bases = [perturbed_sphere(s) for s in range(4)] + [torus()]
    meshes = []
    for n in range(count):
        base = bases[n % len(bases)]
        rot = trimesh.transformations.random_rotation_matrix(rng.random(3))[:3, :3]
        v = base.vertices @ rot.T
        tris = v[base.faces]
        lo = v.min(0)
        meshes.append((tris - lo) * (res * rng.uniform(0.6, 1.0) / (v.max(0) - lo).max()))
    faces = sum(len(m) for m in meshes) / len(meshes)
    tris, mesh_of = cuda_backend.pack_batch(meshes, xp=cupy)
    def run():
        return cuda_backend.voxelize_device(cupy, cuda_backend._cupy_launch, tris, mesh_of, len(meshes), shape)

    run()  # compile and warm up
    cupy.cuda.Device().synchronize()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        occ = run()
        cupy.cuda.Device().synchronize()
        times.append(time.perf_counter() - start)
    best = statistics.median(times)
    print(f"GPU: {len(meshes)} meshes of ~{faces:.0f} faces at {res}^3, surface + fill on device: "
          f"{best:.4f} s = {len(meshes) / best:,.0f} meshes/s (goal >= 10,000)")
    start = time.perf_counter()
    cuda_backend.voxelize_batch_cuda(meshes[:100], shape)
    print(f"GPU end to end (host arrays in, host bool grids out), 100 meshes: {time.perf_counter() - start:.3f} s")
    sample = list(range(0, len(meshes), max(1, len(meshes) // 20)))
    host = cupy.asnumpy(occ[cupy.asarray(sample)]).view(bool)
    same = sum(np.array_equal(host[n], voxelize_cpu(meshes[m], shape)) for n, m in enumerate(sample))
    print(f"GPU vs CPU bit-identical on {same} of {len(sample)} sampled meshes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of trimesh (ours: more)")
    parser.add_argument("--gpu-meshes", type=int, default=1000)
    args = parser.parse_args()
    headline = cpu_section(args.repeats)
    gpu_section(args.gpu_meshes)
    print(f"cpu vs trimesh at 128^3: {headline:.0f}x")


if __name__ == "__main__":
    main()
