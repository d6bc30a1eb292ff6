"""benchmarks/gpu_check.sh, the one prepared GPU check, in its no-GPU mode on its cheap steps:
the summary table's format, the statuses, the exit code, and its wheel list."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
WHEELS = REPO / "benchmarks" / "gpu_wheels.txt"
ROW = re.compile(r"^\| (?P<step>[a-z0-9_]+) \| (?P<status>[^|]+) \| (?P<seconds>[0-9.]+) \| (?P<key>[^|]*) \|$")
# Steps that cost no more than a torch import without a GPU (the benchmarks only check their options).
CHEAP = ["env", "voxelize", "train_throughput", "bench_soft_rasterizer"]


def run_check(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "out"
    environ = {**os.environ, "GPU_CHECK_NO_GPU": "1", "GPU_CHECK_WORK": str(tmp_path / "work"), **env}
    result = subprocess.run(["bash", str(SCRIPT), *args, str(out)], capture_output=True, text=True,
                            env=environ, timeout=120)
    return result, out


def summary_rows(out: Path) -> list[dict[str, str]]:
    lines = (out / "summary.md").read_text().splitlines()
    header = lines.index("| step | status | seconds | key number |")
    assert lines[header + 1] == "| --- | --- | --- | --- |"
    rows = []
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        match = ROW.match(line)
        assert match, f"not a summary row: {line!r}"
        rows.append(match.groupdict())
    return rows


def test_lists_its_steps_in_order():
    result = subprocess.run(["bash", str(SCRIPT), "--list"], capture_output=True, text=True, check=True)
    steps = result.stdout.split()
    assert steps[:6] == ["env", "pytest_gpu", "voxelize", "train_throughput", "torchrun_h5", "snakemake_tiny"]
    benchmarks = {p.stem for p in (REPO / "benchmarks").glob("*.py")
                  if "cuda" in p.read_text().lower() and p.stem not in ("voxelize", "train_throughput")}
    assert set(steps[6:]) == {f"bench_{name}" for name in benchmarks}
    assert "bench_memory" not in steps  # no CUDA section


def test_no_gpu_mode_on_cheap_steps(tmp_path):
    result, out = run_check(tmp_path, "--steps", ",".join(CHEAP))
    assert result.returncode == 0, result.stdout + result.stderr
    rows = summary_rows(out)
    assert [r["step"] for r in rows] == CHEAP
    status = {r["step"]: r["status"] for r in rows}
    assert status["env"] == "passed"
    assert all(status[s] == "skipped: no GPU" for s in CHEAP[1:]), status
    assert "no CUDA device" in rows[0]["key"] or "torch" in rows[0]["key"]
    assert "GPU: none (GPU_CHECK_NO_GPU set)" in (out / "summary.md").read_text()
    assert "Result: 1 passed, 0 failed, 3 skipped." in (out / "summary.md").read_text()
    logs = sorted(p.name for p in out.glob("*.log"))
    assert logs == [f"{n:02d}_{step}.log" for n, step in enumerate(CHEAP, 1)]
    env_log = (out / "01_env.log").read_text()
    assert "nvidia-smi" in env_log and "torch " in env_log
    assert "| env | passed |" in result.stdout  # the table is printed at the end too


def test_spent_budget_fails_every_step_and_the_exit_code(tmp_path):
    result, out = run_check(tmp_path, "--steps", "env,voxelize", GPU_CHECK_BUDGET="0")
    assert result.returncode == 1
    rows = summary_rows(out)
    assert [(r["step"], r["status"]) for r in rows] == [("env", "failed"), ("voxelize", "failed")]
    assert all("time budget" in r["key"] for r in rows)


def test_unknown_step_is_a_usage_error(tmp_path):
    result, out = run_check(tmp_path, "--steps", "env,no_such_step")
    assert result.returncode == 2
    assert "unknown step 'no_such_step'" in result.stderr
    assert not (out / "summary.md").exists()


def test_wheel_list_is_pinned_and_names_what_the_gpu_machine_lacks():
    specs = {}
    for line in WHEELS.read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec:
            name, _, version = spec.partition("==")
            assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", name) and re.fullmatch(r"[0-9][0-9a-z.]*", version), line
            assert name not in specs, f"{name} twice"
            specs[name] = version
    # What the pipeline imports and the GPU image lacks (/work/.library/device/KINDS.md's list).
    for needed in ("snakemake", "pandera", "dask", "distributed", "trimesh", "rtree", "mapbox-earcut"):
        assert needed in specs
    # Never the accelerator stack the machine brings (a CPU wheel of torch would shadow CUDA's).
    for provided in ("torch", "cupy-cuda13x", "numpy", "numba", "pandas", "pyarrow", "scipy"):
        assert provided not in specs


def test_usage_without_out_dir():
    result = subprocess.run(["bash", str(SCRIPT), "--steps", "env"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "OUT_DIR" in result.stderr
