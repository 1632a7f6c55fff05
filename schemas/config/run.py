"""How a run is cut into tasks and where they execute: [run]."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.config._base import ConfigSection


class RunConfig(ConfigSection):
    """How a run is cut into tasks."""

    # prefect.md: each task run costs ~5 ms and a server row; batches of 1k-10k conversations
    # keep Prefect under a few percent of the run.
    batch_size: int = Field(default=5000, gt=0)
    # Finished per-part work is kept in a content-addressed cache keyed on (input content hash,
    # stage config hash, code fingerprint), so a re-run over the same or grown inputs, or a run
    # resumed after a crash, redoes only what changed. None: <out_dir>/cache.
    cache: bool = True
    cache_dir: str | None = None
    # "threads": Prefect's thread pool in the flow's process. "dask": Prefect's Dask task runner
    # (prefect-dask); with dask_address None a LocalCluster of dask_workers processes is started
    # for the run, otherwise tasks go to the scheduler at that address ("tcp://host:8786").
    task_runner: Literal["threads", "dask"] = "threads"
    # Thread-pool size for "threads"; None: Prefect's default.
    max_workers: int | None = Field(default=None, gt=0)
    dask_address: str | None = None
    dask_workers: int = Field(default=2, gt=0)


# RunConfig options that decide how a run executes, never what it writes.
EXECUTION_ONLY_RUN_OPTIONS = ("cache", "cache_dir", "task_runner", "max_workers", "dask_address", "dask_workers")
