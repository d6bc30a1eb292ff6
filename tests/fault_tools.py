"""Tools of the fault-injection tests (tests/test_faults.py): start and kill Snakemake, damage
files, fill the disk, and check what a fault left behind."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from stages.tables import MESHES, QUARANTINE, RENDERS, SCENES, VOXELS, read_table

# The table a shard belongs to, by the first folder under results/.
TABLE_OF_FOLDER = {"meshes": MESHES, "quarantine": QUARANTINE, "scenes": SCENES, "renders": RENDERS,
                   "voxels": VOXELS}
# stages.atomic's temporary names: `.<final name>.tmp-<pid>`.
TEMPORARY = re.compile(r"^\..+\.tmp-\d+$")


@dataclass
class Ledger:
    """What the fault tests did: faults injected, outputs checked (a table file read through its
    schema, a checkpoint loaded, weights compared), and outputs lost or silently wrong."""

    faults: list[str] = field(default_factory=list)
    checked: int = 0
    lost: list[str] = field(default_factory=list)

    def fault(self, what: str) -> None:
        self.faults.append(what)

    def summary(self) -> str:
        return (f"faults: {len(self.faults)} injected, {self.checked} outputs checked, "
                f"{len(self.lost)} lost or silently wrong")


def nice_snakemake(*args: str) -> list[str]:
    """The command line of a Snakemake run at low priority (the tests share their CPUs)."""
    return ["nice", "-n", "10", sys.executable, "-m", "snakemake", *args]


def start_group(command: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """Start `command` in a process group of its own (so that killpg reaches its jobs too), its
    output to `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL, timeout: float = 60) -> None:
    """Send `sig` to the process group of `proc` and wait until no process of it is left."""
    os.killpg(proc.pid, sig)
    proc.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes of group {proc.pid} still alive {timeout} s after signal {sig}")


def wait_for(condition, proc: subprocess.Popen | None, timeout: float, what: str, poll: float = 0.02):
    """Poll `condition()` until it is true; fail if `proc` ends first or after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}")
        time.sleep(poll)
    raise AssertionError(f"no {what} after {timeout} s")


FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\S+)\)", re.M)


def job_outputs(log: str) -> dict[int, str]:
    """jobid -> output file of every job a Snakemake log announces."""
    outputs, output = {}, None
    for line in log.splitlines():
        line = line.strip()
        if line.startswith("output: "):
            output = line.removeprefix("output: ")
        elif line.startswith("jobid: ") and output is not None:
            outputs[int(line.removeprefix("jobid: "))] = output
            output = None
    return outputs


def finished_outputs(log: str, rules: tuple[str, ...]) -> set[str]:
    """The outputs of the jobs of `rules` that Snakemake recorded as finished (it logs 'Finished
    jobid' after writing the job's metadata; a file whose job was not recorded is incomplete to
    Snakemake, and `--rerun-incomplete` redoes it)."""
    outputs = job_outputs(log)
    return {outputs[int(jobid)] for jobid, rule in FINISHED.findall(log) if rule in rules}


def limit_file_size(limit: int):
    """A preexec_fn that makes every file write of the child past `limit` bytes fail with EFBIG
    (a full disk as a process sees it; SIGXFSZ ignored so the write returns the error)."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def error_line(stderr: str, stage: str) -> str:
    """The one `<stage>: ...` line of a refused input; fails on a traceback or on several lines.
    (Progress bars share stderr: they are split off at carriage returns.)"""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line.strip() for line in re.split(r"[\r\n]+", stderr)]
    errors = [line for line in lines if line.startswith(f"{stage}: ")]
    assert len(errors) == 1, f"expected one '{stage}: ' line in:\n{stderr[-3000:]}"
    return errors[0]


def table_files(results: Path) -> list[Path]:
    return sorted(results.rglob("shard-*.parquet"))


def temporary_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob(".*") if TEMPORARY.match(p.name))


def check_table_file(path: Path, results: Path, ledger: Ledger):
    """Read one shard through its table's schema (raises SchemaViolation if it is partial or
    wrong); returns the rows."""
    spec = TABLE_OF_FOLDER[path.relative_to(results).parts[0]]
    try:
        rows = read_table(path, spec)
    except Exception:
        ledger.lost.append(str(path))
        raise
    ledger.checked += 1
    return rows


def identity(paths) -> dict[Path, tuple[int, int]]:
    """(inode, mtime in ns) per file: equal after a rerun means the file was not redone."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def overwrite_column_bytes(path: Path, column: str, length: int = 16) -> int:
    """Flip `length` bytes in the middle of `column`'s pages in the first row group (the file
    keeps its size and a valid footer); returns the offset."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    names = meta.schema.to_arrow_schema().names
    chunk = meta.row_group(0).column(names.index(column))
    start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
    offset = start + chunk.total_compressed_size // 2
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + length):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return offset
