"""Running the workflow from tests: Snakemake as a subprocess, in a scratch working folder."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def snakemake(
    *args: str, cwd: Path = REPO, check: bool = True, env: dict | None = None, timeout: float | None = None
) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True, env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as err:
        streams = [err.stdout or "", err.stderr or ""]
        output = "".join(x.decode(errors="replace") if isinstance(x, bytes) else x for x in streams)
        pytest.fail(f"snakemake {' '.join(args)} still ran after {timeout} s:\n{output[-4000:]}")
    if check and result.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def scratch_workdir(tmp_path: Path) -> Path:
    """A working folder that sees the repository's workflow, configs and profiles (by links) and
    keeps its own results/, data/ and .snakemake/."""
    work = tmp_path / "run"
    work.mkdir()
    for name in ("workflow", "config", "profiles"):
        os.symlink(REPO / name, work / name)
    return work


def job_counts(log: str) -> dict[str, int]:
    """The 'Job stats' table Snakemake prints before running: rule -> number of jobs."""
    lines = log.splitlines()
    start = lines.index("Job stats:") + 3
    counts = {}
    for line in lines[start:]:
        name, number = line.split()
        if name == "total":
            return counts
        counts[name] = int(number)
    raise AssertionError("no Job stats table in the log")


@dataclass(frozen=True)
class RuleInfo:
    """What a rule declares about where it runs (from Snakemake's own parse of the workflow)."""

    name: str
    conda_env: Path | None  # the env file, resolved
    container: str | None
    shellcmd: str
    local: bool  # in `localrules`


def workflow_rules(config: dict | None = None) -> dict[str, RuleInfo]:
    """The rules of workflow/Snakefile under the default config updated by `config`."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(config=config or {}),
            snakefile=REPO / "workflow" / "Snakefile",
            workdir=REPO,
        )._workflow
        # Snakemake's internal Workflow object: the public API has no per-rule view of conda
        # environments and containers.
        return {
            rule.name: RuleInfo(
                name=rule.name,
                conda_env=(Path(rule.snakefile).parent / rule.conda_env).resolve() if rule.conda_env else None,
                container=rule.container_img,
                shellcmd=rule.shellcmd or "",
                local=rule.name in workflow._localrules,
            )
            for rule in workflow.rules
        }
