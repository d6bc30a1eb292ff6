"""Fault injection on the tiny configuration: kill -9 of Snakemake during the render/voxelize jobs
and of a training process between checkpoints, truncated and overwritten inputs, a full disk
while a shard or a checkpoint is written, and two Snakemake runs on one results folder at once.

Each test checks that nothing is lost or silently wrong: every table file that exists passes its
schema, finished outputs are not redone, training resumes to bit-identical weights, and a damaged
input or a failed write ends the stage with exit 1 and one line naming the file. The module
prints its ledger at the end (faults injected, outputs checked, losses; the README's
"Reliability" section quotes it).

Cost: one Snakemake run of the tiny configuration's upstream (synthesize, convert_shapenet, the
single-object scenes), shared by the module, then only render/voxelize jobs; training on tiny box
scenes (tests/model_fixtures.py).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from fault_tools import (Ledger, check_table_file, error_line, finished_outputs, identity, job_outputs,
                         kill_group, limit_file_size, nice_snakemake, overwrite_column_bytes, start_group,
                         table_files, temporary_files, truncate, wait_for)
from model_fixtures import write_box_scenes, write_tiny_model
from snakemake_runs import REPO, scratch_workdir
from stages.tables import SCENES, VOXELS, SchemaViolation, read_table, shard_files
from stages.training import checkpoints

pytestmark = pytest.mark.faults

TINY = yaml.safe_load((REPO / "config" / "tiny.yaml").read_text())
CONFIG = ("--cores", "2", "--configfile=config/tiny.yaml")  # "=": one file, the targets follow
LOCKED = "Directory cannot be locked"
STEPS, EVERY = 30, 10  # box training: 3 checkpoints
RULES = ("render", "voxelize")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _scene_shards(*splits: str) -> list[str]:
    """The tiny configuration's single-object scene shards of `splits` (train: 2, test: 1)."""
    counts, size = TINY["scenes"]["datasets"]["single"]["count"], TINY["scenes"]["shard_size"]
    return [f"results/scenes/single/{split}/shard-{shard:05d}.parquet"
            for split in splits for shard in range(math.ceil(counts[split] / size))]


def _derived(table_level: str, *splits: str) -> list[str]:
    return [p.replace("results/scenes/", f"results/{table_level}/") for p in _scene_shards(*splits)]


def _snakemake(work: Path, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(nice_snakemake(*args), cwd=work, capture_output=True, text=True, timeout=timeout,
                            env=_env())
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _run_stage(stage: str, *args: str, preexec_fn=None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["nice", "-n", "10", sys.executable, "-m", f"stages.{stage}", *map(str, args)], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=timeout, preexec_fn=preexec_fn)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ledger(request):
    book = Ledger()
    yield book
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\ntest_faults ledger: {book.summary()}")
        reporter.write_line("  " + "; ".join(book.faults))


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """A scratch working folder where the tiny configuration's meshes and single-object scenes
    are made (the inputs of the render/voxelize jobs the tests interrupt)."""
    work = scratch_workdir(tmp_path_factory.mktemp("faults"))
    _snakemake(work, *CONFIG, "results/meshes/_SUCCESS", *_scene_shards("train", "test"))
    return work


# Snakemake -----------------------------------------------------------------------------------


def test_kill9_of_snakemake_during_render_and_voxelize(upstream, ledger):
    work, results = upstream, upstream / "results"
    targets = _derived("renders/low", "train") + _derived("voxels/16", "train")  # 4 jobs
    log = work.parent / "killed.log"
    proc = start_group(nice_snakemake(*CONFIG, *targets), work, log)
    # Kill once Snakemake has recorded a render/voxelize job as finished, others still running.
    wait_for(lambda: finished_outputs(log.read_text(), RULES), proc, 600, "finished render/voxelize job")
    kill_group(proc)

    # What the kill left: every table file under its final name is complete (passes its schema),
    # including the shards of jobs killed after their rename but before Snakemake recorded them.
    recorded = sorted(work / t for t in finished_outputs(log.read_text(), RULES))
    missing = [t for t in targets if not (work / t).exists()]
    assert recorded and missing, "the kill should land between the first and the last job"
    for path in table_files(results):
        check_table_file(path, results, ledger)
    before = identity(recorded)

    # Snakemake keeps its lock after kill -9: a plain rerun is refused and says how to go on.
    refused = _snakemake(work, *CONFIG, *targets, check=False)
    assert refused.returncode != 0 and LOCKED in refused.stdout + refused.stderr
    assert "--unlock" in refused.stdout + refused.stderr
    _snakemake(work, *CONFIG, "--unlock")
    rerun = _snakemake(work, *CONFIG, *targets)

    # The rerun does the missing and the unrecorded jobs, never a recorded one, which stays as it was.
    redone = set(job_outputs(rerun.stdout + rerun.stderr).values())
    assert set(missing) <= redone <= set(targets) - {str(p.relative_to(work)) for p in recorded}, redone
    ledger.fault(f"kill -9 of snakemake during render/voxelize ({len(recorded)} of {len(targets)} jobs "
                 f"recorded as finished and kept, {len(redone)} redone)")
    assert identity(recorded) == before
    for target in targets:
        check_table_file(work / target, results, ledger)
    # A killed job's temporary file (`.shard-NNNNN.parquet.tmp-<pid>`) may stay behind, but no
    # reader ever lists it as a shard of its table.
    assert not set(temporary_files(results)) & set(shard_files(results))


def test_second_snakemake_on_the_same_results_is_refused(upstream, ledger):
    work, results = upstream, upstream / "results"
    targets = _derived("renders/high", "test") + _derived("voxels/32", "test")  # 2 jobs
    untouched = identity(table_files(results))
    first = start_group(nice_snakemake(*CONFIG, *targets), work, work.parent / "first.log")
    # Once the first run holds the lock and runs a job, pause it so the second surely meets it.
    wait_for(lambda: any((results / "logs" / d).exists() for d in ("render/high", "voxelize/32")), first, 600,
             "job started by the first run")
    os.killpg(first.pid, signal.SIGSTOP)
    try:
        second = _snakemake(work, *CONFIG, *targets, check=False, timeout=600)
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    ledger.fault("a second snakemake on the same results folder")
    assert second.returncode == 1, second.stdout[-2000:] + second.stderr[-2000:]
    assert LOCKED in second.stdout + second.stderr
    assert first.wait(timeout=900) == 0, (work.parent / "first.log").read_text()[-3000:]

    # The first run finished everything, its outputs pass their schemas, nothing else changed.
    for target in targets:
        check_table_file(work / target, results, ledger)
    assert identity(untouched) == untouched
    assert not [p for p in temporary_files(results) if "high" in p.parts or "32" in p.parts]
    again = _snakemake(work, *CONFIG, *targets, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


# Training ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def boxes(tmp_path_factory):
    root = tmp_path_factory.mktemp("fault-boxes")
    train = write_box_scenes(root, "train", 16, resolution=16, seed=0)
    test = write_box_scenes(root, "test", 4, resolution=16, seed=1)
    model = write_tiny_model(root / "tiny.yaml", steps=STEPS, every=EVERY)
    return root, model, train, test


def _train_args(boxes, out_dir: Path, *extra: str) -> list[str]:
    _, model, (scenes, renders, voxels), _ = boxes
    return ["--model-config", model, "--scenes", scenes, "--renders", renders, "--voxels", voxels,
            "--out-dir", str(out_dir), "--device", "cpu", "--threads", "1", *extra]


@pytest.fixture(scope="module")
def reference(boxes, tmp_path_factory):
    """An uninterrupted training run: its model.pt and checkpoints."""
    out = tmp_path_factory.mktemp("fault-reference") / "out"
    result = _run_stage("train", *_train_args(boxes, out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _weights(path: Path) -> dict:
    return checkpoints.load(path, ("recon3d-model",))["model"]


def test_kill9_of_training_between_checkpoints_resumes_to_identical_weights(boxes, reference, tmp_path, ledger):
    out = tmp_path / "out"
    command = ["nice", "-n", "10", sys.executable, "-m", "stages.train", *_train_args(boxes, out)]
    with open(tmp_path / "train.log", "wb") as log:
        proc = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    wait_for(lambda: checkpoints.latest(out / "checkpoints"), proc, 600, "checkpoint")
    kill_group(proc)
    ledger.fault("kill -9 of training between checkpoints")
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "model.pt").exists(), "training ended before the kill"
    # Every checkpoint under its final name is complete; resume takes the newest.
    saved = sorted((out / "checkpoints").glob("step-*.pt"))
    steps = [checkpoints.load(p, ("recon3d-checkpoint",))["step"] for p in saved]
    ledger.checked += len(saved)
    assert steps and steps[-1] < STEPS and all(s % EVERY == 0 for s in steps), steps

    resumed = _run_stage("train", *_train_args(boxes, out))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {saved[-1]} at step {steps[-1]}" in resumed.stderr
    ours, theirs = _weights(out / "model.pt"), _weights(reference / "model.pt")
    assert ours.keys() == theirs.keys()
    different = [k for k in ours if not torch.equal(ours[k], theirs[k])]
    ledger.checked += 1
    if different:
        ledger.lost.append(f"{out / 'model.pt'}: {len(different)} tensors differ")
    assert not different, f"not bit-identical to an uninterrupted run: {different[:5]}"


# Damaged inputs ------------------------------------------------------------------------------


def _copy(path: str | Path, folder: Path) -> Path:
    """A copy of a shard under the same relative layout (table/level/dataset/split/shard)."""
    path = Path(path)
    target = folder / Path(*path.parts[-4:])
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)
    return target


def _refused(result: subprocess.CompletedProcess, stage: str, path: Path, problem: str, ledger: Ledger) -> str:
    assert result.returncode == 1, result.stderr[-3000:]
    line = error_line(result.stderr, stage)
    assert str(path) in line and problem in line, line
    ledger.checked += 1
    return line


def test_truncated_voxel_shard_stops_training_with_one_line(boxes, tmp_path, ledger):
    root, model, (scenes, renders, voxels), _ = boxes
    bad = _copy(voxels, tmp_path)
    truncate(bad)
    ledger.fault("truncated voxels shard -> train")
    result = _run_stage("train", "--model-config", model, "--scenes", scenes, "--renders", renders, "--voxels", bad,
                        "--out-dir", tmp_path / "out", "--device", "cpu", "--threads", "1")
    _refused(result, "train", bad, "unreadable Parquet, truncated or corrupt", ledger)
    assert not (tmp_path / "out" / "checkpoints").exists()


def _eval_args(boxes, model: Path, out: Path, **replace) -> list:
    _, _, train, test = boxes
    files = {"scenes": test[0], "renders": test[1], "voxels": test[2], **replace}
    return ["--model", model, "--scenes", files["scenes"], "--renders", files["renders"], "--voxels",
            files["voxels"], "--train-scenes", train[0], "--train-voxels", train[2], "--out-dir", out,
            "--qualitative", "1", "--device", "cpu"]


def test_overwritten_render_shard_stops_evaluation_with_one_line(boxes, reference, tmp_path, ledger):
    _, _, _, test = boxes
    bad = _copy(test[1], tmp_path)
    overwrite_column_bytes(bad, "image")  # same size, valid footer: only the page checksum can tell
    ledger.fault("bytes overwritten in a renders shard -> eval")
    result = _run_stage("eval", *_eval_args(boxes, reference / "model.pt", tmp_path / "eval", renders=bad))
    _refused(result, "eval", bad, "unreadable Parquet, truncated or corrupt", ledger)
    assert not (tmp_path / "eval" / "summary.json").exists()


def test_truncated_checkpoints_stop_evaluation_and_resume_with_one_line(boxes, reference, tmp_path, ledger):
    model = tmp_path / "model.pt"
    shutil.copy2(reference / "model.pt", model)
    truncate(model)
    ledger.fault("truncated model.pt -> eval")
    result = _run_stage("eval", *_eval_args(boxes, model, tmp_path / "eval"))
    _refused(result, "eval", model, "not a readable torch checkpoint", ledger)

    out = tmp_path / "out"
    shutil.copytree(reference, out)
    newest = checkpoints.latest(out / "checkpoints")
    truncate(newest)
    ledger.fault("truncated checkpoint -> train (resume)")
    result = _run_stage("train", *_train_args(boxes, out, "--steps", str(STEPS + EVERY)))
    _refused(result, "train", newest, "not a readable torch checkpoint", ledger)


def test_damaged_mesh_and_scene_shards_stop_render_and_voxelize_with_one_line(upstream, tmp_path, ledger):
    results = upstream / "results"
    scenes = results / "scenes" / "single" / "train" / "shard-00000.parquet"
    meshes = [tmp_path / "meshes" / p.name for p in sorted((results / "meshes").glob("shard-*.parquet"))]
    (tmp_path / "meshes").mkdir()
    for copy in meshes:
        shutil.copy2(results / "meshes" / copy.name, copy)
        truncate(copy, keep=0.8)
    ledger.fault("truncated meshes shards -> render")
    result = _run_stage("render", "--scenes", scenes, "--meshes", *meshes, "--realism", "low", "--size", 32,
                        "--out", tmp_path / "renders" / "shard-00000.parquet", "--threads", 1)
    assert result.returncode == 1, result.stderr[-3000:]
    line = error_line(result.stderr, "render")
    assert any(str(m) in line for m in meshes) and "unreadable Parquet, truncated or corrupt" in line, line
    ledger.checked += 1
    assert not (tmp_path / "renders").exists() or not list((tmp_path / "renders").iterdir())

    # A scenes shard overwritten by another table's file (a meshes shard under its name).
    wrong = tmp_path / "scenes" / "shard-00000.parquet"
    wrong.parent.mkdir()
    shutil.copy2(results / "meshes" / "shard-00000.parquet", wrong)
    ledger.fault("scenes shard overwritten by a meshes shard -> voxelize")
    result = _run_stage("voxelize", "scenes", "--scenes", wrong, "--meshes",
                        *sorted((results / "meshes").glob("shard-*.parquet")), "--resolution", 16, "--backend", "cpu",
                        "--out", tmp_path / "voxels" / "shard-00000.parquet", "--threads", 1)
    _refused(result, "voxelize", wrong, "do not match the schema", ledger)
    assert not (tmp_path / "voxels").exists() or not list((tmp_path / "voxels").iterdir())


def test_no_overwritten_bytes_of_a_shard_are_read_as_other_data(boxes, tmp_path, ledger):
    """Every 4-byte block of a shard flipped in turn: each damaged copy is refused (one
    SchemaViolation naming it) or reads as the same rows (bytes no reader uses); none is read as
    different data. (Measured before shards carried page checksums: 21 of 193 copies of a voxels
    shard damaged this way read as other grids.)"""
    _, _, (_, _, voxels), _ = boxes
    good = read_table(voxels, VOXELS)
    data = Path(voxels).read_bytes()
    bad = tmp_path / "shard-00000.parquet"
    refused, unchanged, silent = 0, 0, []
    for offset in range(4, len(data) - 8, 11):  # between the magic numbers at both ends
        damaged = bytearray(data)
        damaged[offset:offset + 4] = bytes(b ^ 0xFF for b in damaged[offset:offset + 4])
        bad.write_bytes(bytes(damaged))
        try:
            rows = read_table(bad, VOXELS)
        except SchemaViolation as err:
            assert str(bad) in str(err) and "\n" not in str(err), err
            refused += 1
            continue
        if rows.equals(good):
            unchanged += 1
        else:
            silent.append(offset)
    ledger.fault(f"{refused + unchanged + len(silent)} byte-flipped copies of a voxels shard -> read_table")
    ledger.checked += refused + unchanged + len(silent)
    ledger.lost.extend(f"{bad} flipped at {offset}" for offset in silent)
    assert silent == [], f"damaged copies read as different rows: offsets {silent}"
    assert refused > unchanged


# A full disk ---------------------------------------------------------------------------------


def test_full_disk_while_a_shard_is_written(upstream, tmp_path, ledger):
    results = upstream / "results"
    out = tmp_path / "renders" / "shard-00000.parquet"
    ledger.fault("full disk (EFBIG) while render writes its shard")
    result = _run_stage("render", "--scenes", results / "scenes" / "single" / "test" / "shard-00000.parquet",
                        "--meshes", *sorted((results / "meshes").glob("shard-*.parquet")), "--realism", "low",
                        "--size", 32, "--out", out, "--threads", 1, preexec_fn=limit_file_size(1024))
    _refused(result, "render", out, "could not write the shard: File too large", ledger)
    assert list(out.parent.iterdir()) == [], "a partial or temporary file was left"


def test_full_disk_while_a_checkpoint_is_written_keeps_the_previous_one(boxes, reference, tmp_path, ledger):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    previous = checkpoints.latest(out / "checkpoints")
    before = {p.name: _sha256(p) for p in (out / "checkpoints").iterdir()}
    model_before = _sha256(out / "model.pt")
    # 64 KB: metrics.csv fits, a checkpoint (~390 KB) does not.
    ledger.fault("full disk (EFBIG) while training writes a checkpoint")
    result = _run_stage("train", *_train_args(boxes, out, "--steps", str(STEPS + EVERY)),
                        preexec_fn=limit_file_size(64 * 1024))
    new = checkpoints.step_path(out / "checkpoints", STEPS + EVERY)
    _refused(result, "train", new, "could not write the checkpoint: File too large", ledger)
    assert f"resuming from {previous}" in result.stderr
    # No partial file under a final name, no temporary left, the previous checkpoints intact.
    assert {p.name: _sha256(p) for p in (out / "checkpoints").iterdir()} == before
    assert _sha256(out / "model.pt") == model_before
    assert checkpoints.load(previous, ("recon3d-checkpoint",))["step"] == STEPS
    ledger.checked += 1


# Rebuilding ----------------------------------------------------------------------------------


def test_a_damaged_shard_is_rebuilt_by_forcerun_of_its_rule(upstream, ledger):
    """The README's recipe: Snakemake cannot see damage inside a file (it exists and is newer than
    its inputs), so `--forcerun <producing rule> <file>` rebuilds it, the same rows as before."""
    work, results = upstream, upstream / "results"
    target = "results/scenes/single/test/shard-00000.parquet"
    original = check_table_file(work / target, results, ledger)
    truncate(work / target)
    ledger.fault("truncated scenes shard, rebuilt with --forcerun make_scenes")
    with pytest.raises(SchemaViolation, match="unreadable Parquet"):
        read_table(work / target, SCENES)
    # (the target before --forcerun, or "--forcerun=<rule>": the option takes every name after it)
    rebuilt = _snakemake(work, *CONFIG, target, "--forcerun=make_scenes", timeout=600)
    assert set(job_outputs(rebuilt.stdout + rebuilt.stderr).values()) == {target}
    assert check_table_file(work / target, results, ledger).equals(original)
