"""The Snakemake profiles: profiles/slurm (cluster) and profiles/default (the workflow profile,
applied to every run). Checked as files and through Snakemake's dry runs, which show each job's
threads and resources as the executor would submit them."""

from __future__ import annotations

import os
import re
import sys

import pytest
import yaml

from stages.families import families

from snakemake_runs import REPO, job_counts, scratch_workdir, snakemake, workflow_rules

SLURM = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
# The GPU rules: voxelize on CUDA, the one training rule, and one evaluation rule per model family.
GPU_RULES = ["voxelize_cuda", "train"] + [f"evaluate_{family.name}" for family in families()]


def dry_run_jobs(log: str) -> dict[str, dict]:
    """Rule -> threads and resources of its first job, from a dry run's job listing."""
    jobs = {}
    for block in re.split(r"\n(?=rule \w+:)", log):
        name = re.match(r"rule (\w+):", block)
        if not name or name.group(1) in jobs:
            continue
        threads = re.search(r"^\s+threads: (\d+)", block, re.M)
        resources = re.search(r"^\s+resources: (.*)$", block, re.M)
        jobs[name.group(1)] = {
            "threads": int(threads.group(1)) if threads else 1,
            **dict(item.split("=", 1) for item in resources.group(1).split(", ")),
        }
    return jobs


@pytest.fixture
def big_jobs(tmp_path):
    """The tiny configuration with voxelize on the GPU and with more threads and memory per job
    than this machine's local limits (profiles/default) allow."""
    config = tmp_path / "big.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "voxelize": {"backend": "cuda"},
                "threads": {"voxelize": 8, "render": 4},
                "mem_mb": {"voxelize": 30000, "render": 20000},
            }
        )
    )
    return scratch_workdir(tmp_path), ("--configfile", "config/tiny.yaml", str(config))


def test_the_slurm_profile_submits_every_job_with_default_resources():
    assert SLURM["executor"] == "slurm"
    assert SLURM["jobs"] >= 10 and SLURM["latency-wait"] >= 30
    defaults = SLURM["default-resources"]
    assert set(defaults) >= {"slurm_partition", "runtime", "mem_mb", "cpus_per_task"}
    # One CPU per thread: a fixed number would override the threads of every rule.
    assert defaults["cpus_per_task"] == "threads"
    assert isinstance(defaults["runtime"], int) and isinstance(defaults["mem_mb"], int)


@pytest.mark.parametrize("rule", GPU_RULES)
def test_gpu_rules_ask_for_gpus_through_the_plugins_resources(rule):
    resources = SLURM["set-resources"][rule]
    assert resources["gpu"] >= 1 or re.fullmatch(r"gpu(:\w+)?:\d+", resources.get("gres", ""))
    assert resources["slurm_partition"] != SLURM["default-resources"]["slurm_partition"]
    assert "slurm_extra" not in resources


def test_evaluation_asks_for_the_same_gpus_for_every_family():
    assert len({SLURM["set-resources"][f"evaluate_{family.name}"]["gpu"] for family in families()}) == 1


def test_no_slurm_extra_and_no_empty_sections():
    text = (REPO / "profiles" / "slurm" / "config.yaml").read_text()
    assert not re.search(r"^\s*slurm_extra:", text, re.M), "GPUs and partitions through resources only"
    for key, value in SLURM.items():
        assert value not in ({}, [], None), f"{key}: an empty section is rejected by Snakemake's parser"


def test_download_is_a_local_rule():
    rules = workflow_rules()
    assert rules["download"].local
    if "report" in rules:
        assert rules["report"].local
    assert not any(rules[name].local for name in ("convert_shapenet", "make_scenes", "render", "voxelize"))


def test_a_cluster_run_gives_jobs_their_threads_memory_and_gpus(big_jobs):
    """The workflow profile's local limits (2 cores, 16 GB) step aside under --profile slurm.
    (A dry run caps threads at --cores, 1 unless given; a cluster run leaves them alone.)"""
    work, config = big_jobs
    jobs = dry_run_jobs(snakemake("-n", "--cores", "64", "--profile", "profiles/slurm", *config, cwd=work).stdout)
    voxelize, render = jobs["voxelize_cuda"], jobs["render"]
    assert (voxelize["threads"], voxelize["cpus_per_task"], voxelize["mem_mb"]) == (8, "8", "30000")
    assert (voxelize["gpu"], voxelize["slurm_partition"]) == ("1", SLURM["set-resources"]["voxelize_cuda"]["slurm_partition"])
    assert (render["threads"], render["cpus_per_task"], render["mem_mb"]) == (4, "4", "20000")
    assert render["slurm_partition"] == SLURM["default-resources"]["slurm_partition"]
    assert "gpu" not in render
    assert jobs["make_scenes"]["mem_mb"] == str(SLURM["default-resources"]["mem_mb"])


def default_profile(monkeypatch, argv: list[str], profile_env: str | None = None) -> dict:
    """profiles/default as Snakemake reads it for a command line."""
    from snakemake.profiles import ProfileConfigFileParser

    monkeypatch.setattr(sys, "argv", ["snakemake", *argv])
    if profile_env is None:
        monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    else:
        monkeypatch.setenv("SNAKEMAKE_PROFILE", profile_env)
    with open(REPO / "profiles" / "default" / "config.yaml") as stream:
        return dict(ProfileConfigFileParser().parse(stream))


MACHINE_KEYS = {"cores", "resources", "latency-wait"}


@pytest.mark.parametrize(
    "argv, profile_env, local",
    [
        (["all"], None, True),
        (["-n", "--cores", "4"], None, True),
        (["--executor", "local", "all"], None, True),
        (["--profile", "none", "all"], None, True),
        (["--profile", "profiles/slurm", "all"], None, False),
        (["--profile=slurm"], None, False),
        (["all", "--executor", "slurm"], None, False),
        (["-e", "slurm"], None, False),
        (["--executor=slurm-jobstep", "--jobs", "1"], None, False),  # inside a cluster job
        (["all"], "slurm", False),
    ],
)
def test_the_default_profile_sets_machine_limits_for_local_runs_only(monkeypatch, argv, profile_env, local):
    settings = default_profile(monkeypatch, argv, profile_env)
    assert {"rerun-incomplete", "show-failed-logs"} <= set(settings)
    assert (MACHINE_KEYS <= set(settings)) == local and (MACHINE_KEYS & set(settings) == set()) != local


def test_a_local_run_keeps_to_the_machine(big_jobs):
    work, config = big_jobs
    result = snakemake("-n", *config, cwd=work)
    jobs = dry_run_jobs(result.stdout)
    assert (jobs["voxelize_cuda"]["threads"], jobs["voxelize_cuda"]["mem_mb"]) == (2, "16000")
    assert "slurm_partition" not in jobs["render"]


def test_the_slurm_profile_is_found_by_name_on_snakemakes_search_path(big_jobs, tmp_path):
    """`--profile slurm` once the folder is in ~/.config/snakemake (here: $XDG_CONFIG_HOME)."""
    work, config = big_jobs
    (tmp_path / "xdg" / "snakemake").mkdir(parents=True)
    os.symlink(REPO / "profiles" / "slurm", tmp_path / "xdg" / "snakemake" / "slurm")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    result = snakemake("-n", "--profile", "slurm", *config, cwd=work, env=env)
    assert "Using profiles slurm and workflow specific profile profiles/default" in result.stderr
    assert dry_run_jobs(result.stdout)["voxelize_cuda"]["gpu"] == "1"


def test_the_paper_scale_dag_has_the_jobs_the_readme_states(tmp_path):
    """config/paper_scale.yaml at the default shard size: one make_scenes job per scene shard of
    every split, one render / voxelize job per shard and realism level / resolution, and the
    per-rule counts printed in the README's "Scale on paper" table."""
    import math

    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    paper = yaml.safe_load((REPO / "config" / "paper_scale.yaml").read_text())
    assert "shard_size" not in paper["scenes"], "the paper-scale DAG is sized at the default shard size"
    size = default["scenes"]["shard_size"]
    shards = {
        name: sum(math.ceil(n / size) for n in spec["count"].values())
        for name, spec in paper["scenes"]["datasets"].items()
    }
    per_level = lambda levels: sum(shards[d] * len(v) for d, v in levels.items())  # noqa: E731
    models = len(paper["models"]["run"])
    expected = {
        "convert_shapenet": paper["meshes"]["shards"], "meshes_complete": 1, "make_scenes": sum(shards.values()),
        "render": per_level(paper["render"]["levels"]), "voxelize": per_level(paper["voxelize"]["resolutions"]),
        "train": models, "evaluate_corenet": models,
        "report": 1, "all": 1,
    }
    work = scratch_workdir(tmp_path)
    counts = job_counts(snakemake("-n", "--quiet", "rules", "--configfile", "config/paper_scale.yaml", cwd=work).stdout)
    assert counts == expected
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Scale on paper"):]
    for rule in ("convert_shapenet", "make_scenes", "render", "voxelize"):
        assert f"| {rule} | {counts[rule]:,} |" in section
    total = sum(counts.values())
    assert f"| total | {total:,} | {total - 3:,} SLURM jobs |" in section  # less meshes_complete, report, all
    assert f"| train, evaluate_corenet (h5 .. m9) | {2 * models} |" in section
