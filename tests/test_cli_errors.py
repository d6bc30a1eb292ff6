"""Every `python -m stages.<x>` command refuses a missing input with one line and exit code 1.

The commands are found in the source (every module that ends with `run(main)` under
`if __name__ == "__main__":`), so a new stage CLI fails `test_every_cli_has_a_row` until it gets a
row in `ARGUMENTS`: its required options, with the input pointing at a path that does not exist.
The commands run as subprocesses, two at a time (several import torch).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from multiprocessing.pool import ThreadPool
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGES = REPO_ROOT / "stages"
MAIN_GUARD = re.compile(r'^if __name__ == "__main__":\n(?P<body>(?:[ \t]+.*\n|\n)*)', re.MULTILINE)


def stage_clis() -> dict[str, Path]:
    """`stages.<x>` -> source file, for every module whose main guard calls `run(main)`."""
    found = {}
    for path in sorted(STAGES.rglob("*.py")):
        match = MAIN_GUARD.search(path.read_text(encoding="utf-8"))
        if match is None or "run(main)" not in match.group("body"):
            continue
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def main_guards_without_run() -> list[str]:
    """Modules with a main guard that does not go through `stages.cli.run`."""
    return [
        str(path.relative_to(REPO_ROOT))
        for path in sorted(STAGES.rglob("*.py"))
        if (match := MAIN_GUARD.search(path.read_text(encoding="utf-8"))) and "run(main)" not in match.group("body")
    ]


# Per command: (arguments, the path the one-line reason must name). `m` is a path that does not
# exist (inside the test's temporary folder), `o` a folder for outputs that may be created, and
# `f` an existing regular file: the generators take no input, so their `--out` lies below `f`.
ARGUMENTS = {
    "stages.convert_scannet": lambda m, o, f: (["--root", m, "--out", o], m),
    "stages.convert_shapenet": lambda m, o, f: (["--root", m, "--out", o], m),
    "stages.download": lambda m, o, f: (["--source", m, "--sha256", "skip", "--dest", f"{o}/d", "--no-progress"], m),
    "stages.eval": lambda m, o, f: (["--model", m, "--out-dir", o], m),
    "stages.fuse_tsdf": lambda m, o, f: (["--frames", m, "--out", o], m),
    "stages.families.r2n2.pix3d": lambda m, o, f: (["--model", m, "--pix3d", m, "--out-dir", o], m),
    "stages.import_checkpoint": lambda m, o, f: (
        ["corenet", "--checkpoint", m, "--model", "h5", "--models-dir", str(REPO_ROOT / "config" / "models"),
         "--out", f"{o}/model.pt"], m),
    "stages.import_cub": lambda m, o, f: (["--cub-root", m, "--annotations", m, "--out", o], m),
    "stages.import_pix3d": lambda m, o, f: (["--root", m, "--out", o], m),
    "stages.make_scenes": lambda m, o, f: (
        ["synthetic", "--meshes", m, "--dataset", "pairs", "--objects", "2", "--count", "train=1", "--out", o], m),
    "stages.make_scenes import-corenet": lambda m, o, f: (
        ["import-corenet", "--dataset-json", m, "--dataset", "pairs", "--split", "train", "--out", o,
         "--renders", o, "--quarantine", o], m),
    "stages.predict": lambda m, o, f: (["--model", m, "--out", f"{o}/mesh.obj"], m),
    "stages.r2n2_views": lambda m, o, f: (
        ["--rendering", m, "--voxels", m, "--out", f"{o}/v.parquet", "--quarantine", f"{o}/q.parquet"], m),
    "stages.render": lambda m, o, f: (
        ["--scenes", m, "--meshes", m, "--realism", "low", "--out", f"{o}/r.parquet", "--scheduler", "sync"], m),
    "stages.render_views": lambda m, o, f: (
        ["--meshes", m, "--rendering-out", f"{o}/r", "--voxels-out", f"{o}/v", "--scheduler", "sync"], m),
    "stages.report": lambda m, o, f: (["--results", m, "--models", "h5", "--out", f"{o}/index.html"], m),
    "stages.scene_metrics": lambda m, o, f: (["--frames", m, "--tsdf", m, "--pred", m, "--out", o], m),
    "stages.synthesize": lambda m, o, f: (["--out", f"{f}/out", "--per-class", "1", "--no-progress"], f),
    "stages.synthesize_birds": lambda m, o, f: (
        ["--out", f"{f}/out", "--train", "1", "--val", "0", "--test", "0", "--no-progress"], f),
    "stages.synthesize_rooms": lambda m, o, f: (["--out", f"{f}/out", "--scenes-train", "1", "--no-progress"], f),
    "stages.train": lambda m, o, f: (["--model-config", m, "--out-dir", o], m),
    "stages.voxelize": lambda m, o, f: (
        ["scenes", "--scenes", m, "--meshes", m, "--resolution", "16", "--backend", "cpu", "--out", f"{o}/v.parquet",
         "--scheduler", "sync"], m),
    "stages.voxelize mesh": lambda m, o, f: (["mesh", m, "--resolution", "8", "--backend", "cpu", "--out", f"{o}/m.binvox"], m),
}


def test_every_cli_has_a_row():
    clis = set(stage_clis())
    assert {"stages.download", "stages.report", "stages.voxelize"} <= clis  # the scan finds them
    missing = sorted(clis - {name.split()[0] for name in ARGUMENTS})
    assert not missing, f"add a row to ARGUMENTS for {missing}"
    stale = sorted({name.split()[0] for name in ARGUMENTS} - clis)
    assert not stale, f"no longer a `run(main)` CLI: {stale}"


def test_every_main_guard_uses_the_one_wrapper():
    assert main_guards_without_run() == []


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, str]]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1", STAGES_DEBUG="0")

    base = tmp_path_factory.mktemp("cli_errors")

    def one(name: str):
        root = base / name.replace(" ", "_").replace(".", "_")
        root.mkdir()
        missing, out, blocker = root / "no" / "such" / "input", root / "out", root / "a_file"
        blocker.write_text("not a folder\n")
        args, named = ARGUMENTS[name](str(missing), str(out), str(blocker))
        module = name.split()[0]
        done = subprocess.run([sys.executable, "-m", module, *args], cwd=root, env=env, capture_output=True,
                              text=True, timeout=120)
        return name, (done, named)

    with ThreadPool(2) as pool:
        return dict(pool.map(one, sorted(ARGUMENTS)))


@pytest.mark.parametrize("name", sorted(ARGUMENTS))
def test_missing_input_is_one_line_and_exit_1(results, name):
    done, named = results[name]
    lines = done.stderr.splitlines()
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert len(lines) == 1 and lines[0].strip(), done.stderr[-3000:]
    prog = name.split()[0].removeprefix("stages.")
    assert lines[0].startswith(f"{prog}: "), lines[0]
    assert named in lines[0], lines[0]
