"""Where a run's tasks execute: Prefect's thread or process pool, or a Dask cluster through prefect-dask."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from schemas.config import RunConfig


@contextmanager
def run_task_runner(config: RunConfig) -> Iterator[TaskRunner[Any]]:
    """The started task runner that every task of one run is submitted to, closed when the run ends.

    For "dask" without an address, it runs on a LocalCluster of `dask_workers` processes started for
    the run; with an address, tasks go to that scheduler's workers, which need chatsift installed
    and the run's folders at the same paths.
    """
    if config.task_runner == "threads":
        threads: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=config.max_workers)
        with threads:
            yield threads
        return
    if config.task_runner == "processes":
        # The stages are CPU-bound Python: in processes, each part has a core of its own, not a GIL share.
        with ProcessPoolTaskRunner(max_workers=config.max_workers) as processes:
            yield processes
        return
    from prefect_dask import DaskTaskRunner

    if config.dask_address:
        with DaskTaskRunner(address=config.dask_address) as remote:
            yield remote
        return
    from distributed import LocalCluster

    # Processes, one thread each: the stages are CPU-bound Python, so threads would share one GIL.
    # The dashboard on any free port: 8787 may be taken by another cluster on the machine.
    with (
        LocalCluster(
            n_workers=config.dask_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        DaskTaskRunner(address=cluster.scheduler_address) as local,
    ):
        yield local
