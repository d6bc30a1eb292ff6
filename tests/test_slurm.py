"""The cluster profile against a live SLURM: tests/slurm/slurm.sh brings up a single-node cluster
on this machine (munged, slurmctld, slurmd from Debian's packages), the tiny configuration runs
through `snakemake --profile profiles/slurm`, and SLURM's own job records and the outputs are
checked against a local run. Skipped where SLURM is not installed (CI installs it: .ci/run).

The test cluster has no accounting database, so status comes from `squeue` (the cluster keeps
finished jobs visible for MinJobAge = 300 s) and job records from its job completion log.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from snakemake_runs import REPO, job_counts, scratch_workdir, snakemake

pytestmark = pytest.mark.slurm

SCRIPT = REPO / "tests" / "slurm" / "slurm.sh"
BINARIES = ("sbatch", "squeue", "sinfo", "scontrol", "slurmctld", "slurmd", "munged", "mungekey")
# Settings of this test cluster, not of the profile: status from squeue (no accounting database
# for sacct), and a first status check after 1 s instead of 40 s (jobs here take seconds).
TEST_CLUSTER = ("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1")
# A part of the tiny configuration that has a job of every cluster rule: the corpus, both mesh
# shards, one scene shard of two-object scenes, its renders and its voxels.
TARGETS = ("renders/low/pairs/test/shard-00000.parquet", "voxels/16/pairs/test/shard-00000.parquet")
CLUSTER_RULES = {"synthesize", "convert_shapenet", "make_scenes", "render", "voxelize"}
# Rules without a command run inside Snakemake on the submitting host, never through sbatch.
LOCAL_RULES = {"meshes_complete"}


@pytest.fixture(scope="module")
def slurm_state() -> Path:
    """A running single-node SLURM (started here and stopped afterwards unless it was already up);
    yields its state folder."""
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} not found): apt-get install slurm-wlm munge")
    state = Path(os.environ.get("RECON3D_SLURM_DIR", "/tmp/recon3d-slurm"))
    was_up = subprocess.run(["bash", SCRIPT, "status"], capture_output=True).returncode == 0
    up = subprocess.run(["bash", SCRIPT, "up"], capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, f"tests/slurm/slurm.sh up failed:\n{up.stdout}{up.stderr}"
    yield state
    if not was_up:
        down = subprocess.run(["bash", SCRIPT, "down"], capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr


def job_records(state: Path) -> dict[str, dict[str, str]]:
    """SLURM's job completion log: job id -> its fields (JobState, Name, Partition, WorkDir, ...)."""
    records = {}
    for line in (state / "jobcomp.log").read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        records[fields["JobId"]] = fields
    return records


def submitted(log: str) -> dict[str, str]:
    """SLURM job id -> rule, from the lines the executor logs at submission."""
    jobs = {}
    for match in re.finditer(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)", log):
        rule = re.search(r"slurm_logs/rule_(\w+?)/", match.group(2)).group(1)
        jobs[match.group(1)] = rule
    return jobs


def cluster_run(work: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    # A job SLURM can never place (asks for more than the node has) would pend forever.
    return snakemake(*args, "--profile", "profiles/slurm", *TEST_CLUSTER, cwd=work, check=check, timeout=300)


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def same_source_folder(table: pa.Table) -> pa.Table:
    """The meshes and quarantine tables name the OBJ file each row came from: the runs read the
    same corpus from data-slurm/ and data-local/."""
    if "source_path" not in table.column_names:
        return table
    paths = pc.replace_substring_regex(table["source_path"], "^data-slurm/", "data-local/")
    return table.set_column(table.column_names.index("source_path"), "source_path", paths)


def test_tiny_configuration_on_slurm_equals_a_local_run(slurm_state, tmp_path):
    work = scratch_workdir(tmp_path)
    tiny = ("--configfile", "config/tiny.yaml")

    def run(where: str, *how: str) -> subprocess.CompletedProcess:
        targets = [f"results-{where}/{target}" for target in TARGETS]
        place = ("--config", f"results=results-{where}", f"data=data-{where}")
        if where == "slurm":
            return cluster_run(work, *targets, *tiny, *place)
        return snakemake(*targets, "--cores", "2", *tiny, *place, cwd=work)

    # The local run shares the machine with the cluster's jobs; it is short and overlaps the
    # cluster run's waits for status checks.
    with ThreadPoolExecutor(2) as pool:
        on_slurm = pool.submit(run, "slurm")
        local = pool.submit(run, "local")
        log = on_slurm.result().stdout + on_slurm.result().stderr
        local.result()

    # Every job of the DAG went through sbatch, and SLURM recorded each as completed.
    counts = job_counts(log)
    assert set(counts) == CLUSTER_RULES | LOCAL_RULES, counts
    jobs = submitted(log)
    expected = sorted(rule for rule, n in counts.items() if rule in CLUSTER_RULES for _ in range(n))
    assert sorted(jobs.values()) == expected, log
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    records = job_records(slurm_state)
    for job_id, rule in jobs.items():
        record = records.get(job_id)
        assert record is not None, f"no SLURM record of job {job_id} ({rule})"
        assert record["JobState"] == "COMPLETED", record
        assert record["Name"] == run_id, record
        assert record["Partition"] == "cpu", record
        assert Path(record["WorkDir"]) == work, record

    # The outputs equal the local run's: the same corpus files byte for byte and the same tables.
    assert tree_digest(work / "data-slurm") == tree_digest(work / "data-local")
    tables = sorted(p.relative_to(work / "results-slurm") for p in (work / "results-slurm").rglob("*.parquet"))
    local_tables = sorted(p.relative_to(work / "results-local") for p in (work / "results-local").rglob("*.parquet"))
    assert tables == local_tables
    assert {t.parts[0] for t in tables} == {"meshes", "quarantine", "scenes", "renders", "voxels"}
    for table in tables:
        cluster_table = same_source_folder(pq.read_table(work / "results-slurm" / table))
        local_table = pq.read_table(work / "results-local" / table)
        assert cluster_table.num_rows > 0 or table.parts[0] == "quarantine", table
        assert cluster_table.equals(local_table), f"{table} differs between the SLURM and the local run"


def test_a_failing_cluster_job_shows_its_logs_and_reason(slurm_state, tmp_path):
    work = scratch_workdir(tmp_path)
    missing = tmp_path / "no-such-ShapeNetCore.v2"
    result = cluster_run(
        work,
        "results/meshes/shard-00000.parquet",
        "--configfile",
        "config/tiny.yaml",
        "--config",
        f"source={{shapenet: {missing}}}",
        check=False,
    )
    log = result.stdout + result.stderr
    assert result.returncode != 0, log
    assert "Error in rule convert_shapenet" in log, log
    assert "SLURM status is: 'FAILED'" in log, log
    # The rule's own log (its path and, through show-failed-logs, its content: the stage's
    # one-line reason) and SLURM's log of the job.
    assert "results/logs/convert_shapenet/00000.log" in log, log
    assert f"convert_shapenet: {missing}: not a directory" in log, log
    slurm_log = re.search(r"(\S+/slurm_logs/rule_convert_shapenet/\S+\.log)", log).group(1)
    assert Path(slurm_log).is_file(), slurm_log
    (job_id,) = submitted(log)
    assert job_records(slurm_state)[job_id]["JobState"] == "FAILED"
