"""Where a run's tasks execute: Prefect's thread or process pool, or a Dask cluster through prefect-dask."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, Literal

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from schemas.config import RunConfig

RunnerKind = Literal["threads", "processes", "dask"]

# The modules whose part tasks (flows.execution.run_parts) a run submits to its task runner: each
# process-pool worker imports them as it starts (~4 s on 2 cores), before any part reaches it.
PART_TASK_MODULES = ("flows.ingest", "flows.clean", "flows.dedupe", "flows.split", "flows.shards")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container may narrow)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def chosen_task_runner(config: RunConfig, *, input_bytes: int, cores: int) -> RunnerKind:
    """The runner a run takes: `config.task_runner`, or for "auto" the process pool when more than one
    worker may run (`max_workers`, else `cores`) and the inputs hold at least auto_processes_min_mb."""
    if config.task_runner != "auto":
        return config.task_runner
    workers = config.max_workers or cores
    large = input_bytes >= config.auto_processes_min_mb * 1e6
    return "processes" if workers > 1 and large else "threads"


@contextmanager
def _workers_use_this_server() -> Iterator[None]:
    """Worker processes report to the Prefect server this process reports to.

    Without a configured PREFECT_API_URL, a run talks to a temporary server that this process started.
    A spawned worker (of the process pool or of a local Dask cluster) inherits no URL, so it would start
    a temporary server of its own: ~7 s per worker on 2 cores, measured. Handing the workers this
    process's server avoids that. A remote Dask cluster's workers cannot reach a temporary server on
    this machine's 127.0.0.1; they use whatever server their own settings name.
    """
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    if get_current_settings().api.url:
        yield
        return
    with temporary_settings({PREFECT_API_URL: str(get_client().api_url)}):
        yield


def import_modules(names: tuple[str, ...]) -> None:
    """A process-pool worker's initializer: import `names`, so that no part waits on their import."""
    for name in names:
        importlib.import_module(name)


def start_every_worker(runner: ProcessPoolTaskRunner, workers: int) -> None:
    """Start all `workers` of a started process pool at once, each importing PART_TASK_MODULES.

    Python's pool starts a worker only when a job finds none idle, so the first run_parts of two parts
    waited ~5 s on the second worker's start and imports while the first part ran; and a one-part stage
    (a one-file ingest) left the rest unstarted until the next stage. Started here, they import while the
    run lists and ingests its inputs. `_executor` is Prefect's pool (3.8.8); without one, nothing is done
    and the workers start as jobs reach them.
    """
    executor = getattr(runner, "_executor", None)
    if isinstance(executor, ProcessPoolExecutor):
        # A job submitted while no worker is idle starts one; `int` is a picklable no-op.
        for _ in range(workers):
            executor.submit(int)


@contextmanager
def run_task_runner(config: RunConfig, kind: RunnerKind) -> Iterator[TaskRunner[Any]]:
    """The started task runner of `kind` (chosen_task_runner) that every task of one run is submitted
    to, closed when the run ends.

    For "dask" without an address, it runs on a LocalCluster of `dask_workers` processes started for
    the run; with an address, tasks go to that scheduler's workers, which need chatsift installed
    and the run's folders at the same paths.
    """
    if kind == "threads":
        threads: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=config.max_workers)
        with threads:
            yield threads
        return
    if kind == "processes":
        # The stages are CPU-bound Python: in processes, each part has a core of its own, not a GIL share.
        # One worker per usable core (Prefect's default counts the machine's, whatever the affinity).
        workers = config.max_workers or usable_cores()
        pool = ProcessPoolTaskRunner(max_workers=workers, initializer=import_modules, initargs=(PART_TASK_MODULES,))
        with _workers_use_this_server(), pool as processes:
            start_every_worker(processes, workers)
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
        _workers_use_this_server(),
        LocalCluster(
            n_workers=config.dask_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        DaskTaskRunner(address=cluster.scheduler_address) as local,
    ):
        yield local
