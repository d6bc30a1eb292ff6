"""Dask inside one job: a scheduler sized by the job's threads and memory, and an ordered map.

A Snakemake job handles one shard; inside it, the shard's partitions are spread over a Dask
`LocalCluster` whose workers match the rule's `threads` and `mem_mb`, or over an existing
`distributed` scheduler given by address (the multi-node route). Results come back in
submission order with a bounded number in flight, so a job's memory is bounded by a few
partitions, never by the shard or the dataset.
"""

from __future__ import annotations

import argparse
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from tqdm import tqdm


@dataclass(frozen=True)
class DaskOptions:
    """How a stage spreads its partitions.

    scheduler: "auto" (a LocalCluster of `threads` processes, or in-process when threads is 1),
      "local" (always a LocalCluster), "threads" (one worker process-free, `threads` threads),
      "sync" (in-process, no Dask: for debugging), or a scheduler address "tcp://host:port".
    threads: worker count, normally the rule's `threads`.
    mem_mb: memory for the whole job, split evenly between workers (None: no limit).
    """

    scheduler: str = "auto"
    threads: int = 1
    mem_mb: int | None = None


# The default of --scheduler: set it to a running scheduler's address to send every stage's
# partitions there (README, "Running on a cluster"). An environment variable rather than a rule
# parameter, because where partitions run does not change what a job writes: a parameter would
# make Snakemake rerun every job whenever the address changes.
SCHEDULER_ENV = "RECON3D_DASK_SCHEDULER"


def add_dask_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("parallelism (Dask)")
    group.add_argument(
        "--scheduler",
        default=os.environ.get(SCHEDULER_ENV) or "auto",
        help="auto | local | threads | sync | tcp://HOST:PORT of a running distributed "
        "scheduler (default: $RECON3D_DASK_SCHEDULER if set, else auto = LocalCluster of "
        "--threads processes, in-process for 1)",
    )
    group.add_argument("--threads", type=int, default=1, help="workers for this job (default 1)")
    group.add_argument(
        "--mem-mb", type=int, default=None, help="memory for the whole job in MB (default: unlimited)"
    )


def dask_options(args: argparse.Namespace) -> DaskOptions:
    if args.threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {args.threads}")
    return DaskOptions(scheduler=args.scheduler, threads=args.threads, mem_mb=args.mem_mb)


class _InProcess:
    """The 'sync' scheduler: calls run in the caller, one at a time."""

    def map_ordered(self, fn: Callable, items: list, window: int) -> Iterator[Any]:
        for item in items:
            yield fn(item)


class _DaskClient:
    def __init__(self, client, workers: int):
        self.client = client
        self.workers = workers

    def map_ordered(self, fn: Callable, items: list, window: int) -> Iterator[Any]:
        pending = []
        position = 0
        while position < len(items) or pending:
            while position < len(items) and len(pending) < window:
                # pure=False: partitions with equal arguments are still separate work items.
                pending.append(self.client.submit(fn, items[position], pure=False))
                position += 1
            future = pending.pop(0)
            result = future.result()
            future.release()
            yield result


@contextmanager
def open_scheduler(options: DaskOptions):
    mode = options.scheduler
    if mode == "sync" or (mode == "auto" and options.threads == 1):
        yield _InProcess()
        return
    from dask.distributed import Client, LocalCluster

    if "://" in mode:
        with Client(mode) as client:
            workers = max(1, len(client.scheduler_info().get("workers", {})))
            yield _DaskClient(client, workers)
        return
    if mode not in ("auto", "local", "threads"):
        raise SystemExit(f"unknown --scheduler {mode!r}: use auto, local, threads, sync or an address")
    processes = mode != "threads"
    workers = options.threads if processes else 1
    memory = (
        f"{max(1, options.mem_mb // workers)}MB" if options.mem_mb and processes else "auto"
    )
    cluster_kwargs = dict(
        n_workers=workers,
        threads_per_worker=1 if processes else options.threads,
        processes=processes,
        memory_limit=memory,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    # Workers inherit the environment; keep each one single-threaded in BLAS and numba so the
    # job uses exactly its `threads` cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    with LocalCluster(**cluster_kwargs) as cluster, Client(cluster) as client:
        yield _DaskClient(client, workers)


def map_partitions(
    fn: Callable[[Any], Any],
    partitions: Iterable[Any],
    options: DaskOptions,
    description: str = "",
) -> Iterator[Any]:
    """Run `fn` on every partition, yielding results in order; shows a progress bar."""
    items = list(partitions)
    with open_scheduler(options) as scheduler:
        window = 2 * max(1, getattr(scheduler, "workers", 1))
        results = scheduler.map_ordered(fn, items, window)
        yield from tqdm(results, total=len(items), desc=description, unit="part", mininterval=1.0)


def chunk(items: list, size: int) -> list[list]:
    """Split a list into consecutive partitions of at most `size` items."""
    if size < 1:
        raise ValueError(f"partition size must be >= 1, got {size}")
    return [items[i : i + size] for i in range(0, len(items), size)]
