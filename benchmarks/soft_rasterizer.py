"""Soft rasterizer benchmark: our windowed rasterizer against the dense all-pixels-by-all-faces
torch version (`soft_rasterize_dense`), forward + backward, on the same meshes.

    OMP_NUM_THREADS=2 python benchmarks/soft_rasterizer.py [--repeats N] [--dense-repeats N]

Meshes: icospheres (trimesh subdivisions 2 and 3: 320 and 1,280 faces), scaled by 0.8, turned by
a random rotation and shifted by a small random (tx, ty) (an orthographic camera s R X + t like
UMR's), depth offset 5 (UMR's `offset_z`), one RGB colour per face. Settings are UMR's: sigma
1e-5, gamma 1e-4, dist_eps 1e-10 (nnutils/smr.py). Both versions produce the same image (the
max abs difference is printed); the loss is a fixed random weighting of all four channels, so
the backward pass reaches vertices and colours.

The dense peer computes [faces, pixels] tensors chunk by chunk (64 faces at a time). Where all
of its intermediates would exceed --dense-budget elements it checkpoints each chunk (recomputes
it in the backward pass), which is what keeps 256 px x 1,280 faces in memory; the table says
which runs did. A CUDA section repeats the comparison when torch.cuda.is_available().
The last line reads `windowed vs dense at 256 px, 1280 faces: <ratio>x` (CPU).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.rendering.soft_rasterizer import (  # noqa: E402
    SoftRasterSettings,
    soft_fragments,
    soft_rasterize,
    soft_rasterize_dense,
)

SIZES = (64, 256)
SUBDIVISIONS = (2, 3)
FACE_CHUNK = 64


def projected_icosphere(subdivisions: int, seed: int = 0):
    """Vertices [1, V, 3] (NDC x, y; depth z) and faces [F, 3] of a randomly posed icosphere."""
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions)
    rng = np.random.default_rng(seed)
    rotation = trimesh.transformations.random_rotation_matrix(rng.random(3))[:3, :3]
    points = 0.8 * mesh.vertices @ rotation.T
    points[:, :2] += rng.uniform(-0.1, 0.1, 2)
    points[:, 2] += 5.0
    return torch.tensor(points, dtype=torch.float32)[None], torch.tensor(mesh.faces)


def step(fn, vertices, faces, colours, weights):
    v = vertices.clone().requires_grad_(True)
    c = colours.clone().requires_grad_(True)
    image = fn(v, faces, c)
    (image * weights).sum().backward()
    return image.detach()


def timed(fn, repeats: int, sync) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        result = fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def compare(device: str, repeats: int, dense_repeats: int, dense_budget: float) -> dict:
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    rows = {}
    print(f"\n{device.upper()}: forward + backward, one image, median of {repeats} (windowed) / {dense_repeats} (dense)")
    print(f"{'px':>5} {'faces':>6} {'pairs kept':>11} {'windowed ms':>12} {'dense ms':>11} {'dense mode':>11} {'ratio':>8} {'max |diff|':>11}")
    for size in SIZES:
        for subdivisions in SUBDIVISIONS:
            vertices, faces = projected_icosphere(subdivisions)
            vertices, faces = vertices.to(device), faces.to(device)
            gen = torch.Generator().manual_seed(size + subdivisions)
            colours = torch.rand(1, faces.shape[0], 3, generator=gen).to(device)
            weights = torch.rand(1, 4, size, size, generator=gen).to(device)
            settings = SoftRasterSettings(image_size=size, sigma=1e-5, gamma=1e-4, dist_eps=1e-10)
            # Pixels x faces x ~25 float intermediates kept for the backward pass.
            checkpoint = size * size * faces.shape[0] * 25 > dense_budget

            def windowed():
                return step(lambda v, f, c: soft_rasterize(v, f, c, settings, "face"), vertices, faces, colours, weights)

            def dense():
                return step(
                    lambda v, f, c: soft_rasterize_dense(v, f, c, settings, "face", face_chunk=FACE_CHUNK, checkpoint=checkpoint),
                    vertices, faces, colours, weights,
                )

            windowed()  # warm-up (allocator, first-call overheads)
            t_w, image_w = timed(windowed, repeats, sync)
            t_d, image_d = timed(dense, dense_repeats, sync)
            pairs = soft_fragments(vertices, faces, settings).pixel.numel()
            diff = (image_w - image_d).abs().max().item()
            ratio = t_d / t_w
            rows[(size, faces.shape[0])] = ratio
            mode = "checkpoint" if checkpoint else "plain"
            print(f"{size:>5} {faces.shape[0]:>6} {pairs:>11,} {t_w * 1e3:>12.1f} {t_d * 1e3:>11.1f} {mode:>11} {ratio:>7.1f}x {diff:>11.2e}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dense-repeats", type=int, default=1)
    parser.add_argument("--dense-budget", type=float, default=2e8, help="float elements the dense peer may keep for backward before it checkpoints")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    cpu = compare("cpu", args.repeats, args.dense_repeats, args.dense_budget)
    if torch.cuda.is_available():
        compare("cuda", args.repeats, max(args.dense_repeats, 3), 2e9)
    else:
        print("\nCUDA: skipped (torch.cuda.is_available() is False)")
    print(f"windowed vs dense at 256 px, 1280 faces: {cpu[(256, 1280)]:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
