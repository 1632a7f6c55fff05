"""How a run is cut into tasks and where they execute: [run]."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.config._base import ConfigSection


class RunConfig(ConfigSection):
    """[run]: how a run is cut into tasks, whether finished work is reused, and where tasks execute."""

    batch_size: int = Field(default=5000, gt=0)
    """Conversations per part, and so per task. A task run costs ~42 ms inside curate, so 5000 keeps Prefect to a few
    percent of a run (docs/defaults.md#run).
    """
    part_max_mb: float = Field(default=16.0, gt=0)
    """A part also closes once its turns hold this many million characters of text (about as many MB), so that one big
    dump is cut into parts that every core can take (one part a task) and a part's memory stays bounded
    (docs/defaults.md#run).
    """
    cache: bool = True
    """Reuse finished per-part work from a content-addressed cache keyed on the input's content, the stage's options and
    the code, so a re-run or a resumed run redoes only what changed (docs/defaults.md#run).
    """
    cache_dir: str | None = None
    """Where the stage cache lives; None: `<out_dir>/cache`, shared by the runs of one output folder."""
    keep_raw_intermediates: bool = False
    """Keep the ingest parts (the input's text before the secrets stage redacts it) in stages/ingest/ and the stage
    cache. Off: they are never cached and are deleted once cleaning has read them, so nothing a finished run leaves on
    disk holds a secret the secrets stage redacts (docs/defaults.md#run).
    """
    explore_page: bool = True
    """Write explore.html at the end of a curate run, as `chatsift runs show` does: counts, sampled drops as text,
    length and token distributions. Cheap: read from the run's own files (docs/defaults.md#run).
    """
    explore_map: bool = False
    """Draw the embedding map (UMAP of the first user turns) on the explore.html curate writes. Off: for the real
    sample it adds 12 s with the vectors cached and 2 min embedding them on 2 cores, more than the rest of the page;
    `chatsift runs show` draws it unless told --no-map (docs/defaults.md#run).
    """
    explore_map_points: int = Field(default=20_000, gt=0)
    """The most conversations of each layer (kept, contaminated, dropped) the map draws, drawn by a hash of the id: at
    20,000 kept ones the map is ~4.5 MB of page and its UMAP ~25 s on 2 cores (docs/defaults.md#run).
    """
    explore_token_sample: int = Field(default=1_000, gt=0)
    """Conversations tokenized for the token histograms before and after curation, drawn by a hash of the id: 1,000
    give a histogram's shape in ~2.5 s on 2 cores, whatever the run's size (docs/defaults.md#run).
    """
    task_runner: Literal["auto", "threads", "processes", "dask"] = "auto"
    """ "auto": "processes" when the run may use more than one core and its inputs hold at least auto_processes_min_mb,
    else "threads" (docs/defaults.md#run). "threads": Prefect's thread pool in the flow's process, its default runner.
    "processes": Prefect's process pool, a core per part for the CPU-bound stages. "dask": Prefect's Dask task runner
    (prefect-dask), which costs ~4 s to start (docs/defaults.md#run).
    """
    auto_processes_min_mb: float = Field(default=30.0, ge=0)
    """With task_runner "auto": the inputs' size in megabytes from which a run takes the process pool. Below it the
    workers' start (each imports Prefect and the stages, ~4 s) costs more than the cores save; at 31 MB the two
    break even (docs/defaults.md#run).
    """
    max_workers: int | None = Field(default=None, gt=0)
    """Pool size for task_runner "threads" or "processes"; None: Prefect's default (for processes, the cores)."""
    dask_address: str | None = None
    """The Dask scheduler that task_runner "dask" sends tasks to ("tcp://host:8786"); None: a LocalCluster of
    dask_workers processes is started for the run.
    """
    dask_workers: int = Field(default=2, gt=0)
    """Worker processes of the LocalCluster started when dask_address is None. 2, the cores of the machine the Dask runs
    were measured on (docs/defaults.md#run).
    """


# RunConfig options that decide how a run executes, never what it writes.
EXECUTION_ONLY_RUN_OPTIONS = (
    "cache",
    "cache_dir",
    "keep_raw_intermediates",
    "task_runner",
    "auto_processes_min_mb",
    "max_workers",
    "dask_address",
    "dask_workers",
)
