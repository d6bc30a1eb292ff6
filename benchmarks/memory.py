"""Peak memory of convert_shapenet and voxelize as the data grows 10x at a fixed partition size.

A stage's memory must be bounded by its partition, not by its shard or the dataset: this script
runs each stage on a small and a 10x larger input (one shard each, so the job itself sees 10x
the rows) and prints the peak resident memory of the whole process tree (the stage and any Dask
workers), sampled every 20 ms.

    python benchmarks/memory.py [--scale 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """Run a command; return (peak RSS of its process tree in MB, seconds)."""
    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        try:
            tree = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.02)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return peak / 2**20, time.perf_counter() - start


def stage(*args: str) -> list[str]:
    return [sys.executable, "-m", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=10, help="growth factor (default 10)")
    parser.add_argument("--per-class", type=int, default=4, help="meshes per class, small run (default 4)")
    parser.add_argument("--scenes", type=int, default=24, help="scenes, small run (default 24)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="Dask workers per job (default 1)")
    args = parser.parse_args()
    dask = ["--threads", str(args.threads)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # The first pass fills Numba's on-disk cache, so that no measured run pays for (and
        # holds the memory of) JIT compilation; only the two passes after it are reported.
        for factor in (1, 1, args.scale):
            root = tmp / f"x{factor}"
            subprocess.run(
                stage("stages.synthesize", "--out", str(root / "shapenet"), "--per-class", str(args.per_class * factor), "--seed", "0"),
                check=True, stderr=subprocess.DEVNULL,
            )
            meshes = len(list((root / "shapenet").glob("*/*/models/model_normalized.obj")))
            mb, seconds = peak_rss_mb(
                stage("stages.convert_shapenet", "--root", str(root / "shapenet"), "--out", str(root), "--partition-size", "8", *dask)
            )
            rows.append(("convert_shapenet", f"{meshes} meshes", mb, seconds))
            scenes = args.scenes * factor
            subprocess.run(
                stage("stages.make_scenes", "synthetic", "--meshes", str(root / "meshes"), "--dataset", "single", "--objects", "1",
                      "--count", f"train={scenes}", "--shard-size", str(scenes), "--out", str(root / "scenes")),
                check=True, stderr=subprocess.DEVNULL,
            )
            mb, seconds = peak_rss_mb(
                stage("stages.voxelize", "scenes", "--scenes", str(root / "scenes" / "train" / "shard-00000.parquet"),
                      "--meshes", str(root / "meshes"), "--resolution", str(args.resolution), "--backend", "cpu",
                      "--partition-size", "8", "--out", str(root / "voxels.parquet"), *dask)
            )
            rows.append(("voxelize", f"{scenes} scenes at {args.resolution}^3", mb, seconds))
    rows = rows[2:]
    print(f"{'stage':<18}{'input (one shard)':<28}{'peak RSS MB':>12}{'seconds':>10}")
    for name, size, mb, seconds in sorted(rows, key=lambda r: r[0]):
        print(f"{name:<18}{size:<28}{mb:>12.0f}{seconds:>10.1f}")
    for name in ("convert_shapenet", "voxelize"):
        small, large = [r[2] for r in rows if r[0] == name]
        print(f"{name}: peak RSS x{large / small:.2f} for x{args.scale} data (partition size 8)")


if __name__ == "__main__":
    main()
