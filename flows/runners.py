"""Where a run's tasks execute: Prefect's thread pool, or a Dask cluster through prefect-dask."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar, cast

from prefect import Flow
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from schemas.config import RunConfig

F = TypeVar("F", bound=Flow[Any, Any])


class OnRunner(Protocol):
    """Gives a subflow the run's task runner, keeping the subflow's type."""

    def __call__(self, subflow: F, /) -> F: ...


def _on(make_runner: Any) -> OnRunner:
    def on_runner(subflow: F) -> F:
        # A new runner per subflow: a task runner is entered and closed by the flow run that uses it.
        return cast(F, subflow.with_options(task_runner=cast(TaskRunner[Any], make_runner())))

    return on_runner


def _dask(address: str) -> OnRunner:
    from prefect_dask import DaskTaskRunner

    return _on(lambda: DaskTaskRunner(address=address))


@contextmanager
def task_runners(config: RunConfig) -> Iterator[OnRunner]:
    """Yield a function that gives a (sub)flow the run's task runner.

    For "dask" without an address, one LocalCluster of `dask_workers` processes serves every
    subflow of the run and is closed when the run ends; with an address, tasks go to that
    scheduler's workers, which need chatsift installed and the run's folders at the same paths.
    """
    if config.task_runner == "threads":
        yield _on(lambda: ThreadPoolTaskRunner(max_workers=config.max_workers))
        return
    if config.dask_address:
        yield _dask(config.dask_address)
        return
    from distributed import LocalCluster

    # Processes, one thread each: the stages are CPU-bound Python, so threads would share one GIL.
    # The dashboard on any free port: 8787 may be taken by another cluster on the machine.
    with LocalCluster(
        n_workers=config.dask_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield _dask(cluster.scheduler_address)
