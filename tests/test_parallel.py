"""Dask inside a stage: an existing scheduler named by address, as on several nodes."""

import argparse
import os

from distributed import Client, LocalCluster

from stages.parallel import SCHEDULER_ENV, add_dask_arguments, dask_options, map_partitions


def parse(argv, monkeypatch, env=None):
    if env is None:
        monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    else:
        monkeypatch.setenv(SCHEDULER_ENV, env)
    parser = argparse.ArgumentParser()
    add_dask_arguments(parser)
    return dask_options(parser.parse_args(argv))


def where(item):
    return item, os.getpid()


def test_the_scheduler_defaults_to_auto_or_the_environment(monkeypatch):
    assert parse([], monkeypatch).scheduler == "auto"
    assert parse([], monkeypatch, env="tcp://10.0.0.7:8786").scheduler == "tcp://10.0.0.7:8786"
    assert parse(["--scheduler", "sync"], monkeypatch, env="tcp://10.0.0.7:8786").scheduler == "sync"


def test_partitions_run_on_the_scheduler_named_in_the_environment(monkeypatch):
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        options = parse(["--threads", "1"], monkeypatch, env=cluster.scheduler_address)
        results = list(map_partitions(where, range(8), options))
        assert [item for item, _ in results] == list(range(8))
        assert os.getpid() not in {pid for _, pid in results}, "ran in the job, not on the Dask workers"
        with Client(cluster) as client:
            worker_pids = set(client.run(os.getpid).values())
        assert {pid for _, pid in results} <= worker_pids
