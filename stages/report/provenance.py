"""Where a report's numbers come from: config, code version, software, machine.

Every item has a stated value, also when it cannot be known ("not a git repository", "none",
"not installed"), so a reader never has to guess whether it was left out.
"""

from __future__ import annotations

import datetime
import os
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from stages.report.inputs import ReportInputError

PACKAGES = ("torch", "numpy", "pandas", "pyarrow", "snakemake")


@dataclass(frozen=True)
class ConfigFile:
    path: str
    text: str


@dataclass(frozen=True)
class Provenance:
    generated_utc: str
    git_commit: str
    git_state: str  # "clean", "dirty (uncommitted changes)", or why it is unknown
    versions: dict[str, str]  # package -> version, python first
    host: str
    platform: str
    gpu: str
    configs: list[ConfigFile]


def git_revision(repo: str | os.PathLike = ".") -> tuple[str, str]:
    """(commit, state) of the git work tree at `repo`, or a stated reason why there is none."""

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git is not installed)", "unknown"
    if head.returncode != 0:
        if "not a git repository" in head.stderr:
            return "none (not a git repository)", "not applicable"
        reason = (head.stderr.strip().splitlines() or ["git rev-parse failed"])[-1]
        return f"unknown ({reason})", "unknown"
    status = git("status", "--porcelain", "--untracked-files=no")
    if status.returncode != 0:
        return head.stdout.strip(), "unknown"
    return head.stdout.strip(), "dirty (uncommitted changes)" if status.stdout.strip() else "clean"


def package_versions(packages=PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def gpu_description() -> str:
    """The CUDA devices torch sees (by name), or "none"."""
    try:
        import torch
    except ImportError:
        return "unknown (torch is not installed)"
    if not torch.cuda.is_available():
        return "none"
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return ", ".join(f"{i}: {name}" for i, name in enumerate(names))


def read_configs(paths: list[str | os.PathLike]) -> list[ConfigFile]:
    configs = []
    for path in paths:
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as err:
            raise ReportInputError(f"config file {path}: not readable: {err}") from None
        configs.append(ConfigFile(str(path), text))
    return configs


def collect_provenance(config_paths: list[str | os.PathLike], repo: str | os.PathLike = ".") -> Provenance:
    commit, state = git_revision(repo)
    return Provenance(
        generated_utc=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        git_commit=commit,
        git_state=state,
        versions=package_versions(),
        host=socket.gethostname(),
        platform=f"{platform.system()} {platform.release()} ({platform.machine()}), {sys.implementation.name}",
        gpu=gpu_description(),
        configs=read_configs(config_paths),
    )
