"""`curate` on Prefect's Dask task runner (prefect-dask) and on its process pool gives byte-identical outputs to
the default runner, and a scheduler that does not answer fails the run before any work."""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import flow, task

from demo.inputs import DEMO_CONFIG, write_demo_inputs
from flows.curate import curate_flow
from flows.execution import run_parts, tasks_on
from flows.runners import PART_TASK_MODULES, chosen_task_runner, run_task_runner
from schemas import RunReport
from schemas.config import CurationConfig, RunConfig
from schemas.errors import ResourceError
from tests.conftest import REPO_ROOT
from tests.helpers.assertions import assert_nothing_lost
from tests.helpers.runs import assert_same_outputs, write_pages

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[str]:
    """A real Dask LocalCluster: two worker processes, one thread each, as a small cluster would have."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        yield cluster.scheduler_address


def _with_run(config: CurationConfig, **run: object) -> CurationConfig:
    data = config.model_dump(mode="json")
    data["run"] |= run
    return CurationConfig.model_validate(data)


def test_dask_runner_output_is_byte_identical_to_the_thread_runner(
    tmp_path: Path, prefect_server: None, local_cluster: str, sharegpt_sample: list[dict]
) -> None:
    """The demo inputs (every drop reason, duplicates, contamination, a split) plus 60 real pages,
    cut into many parts so tasks really spread over the workers."""
    inputs = write_demo_inputs(tmp_path / "in")
    write_pages(tmp_path / "in" / "real-pages", sharegpt_sample[:60])
    base = _with_run(DEMO_CONFIG, batch_size=20, cache=False)
    from distributed import Client

    client = Client(local_cluster)
    client.get_task_stream()  # registers the scheduler's task-stream recorder
    started = time.time()
    threads = curate_flow(inputs=inputs + [tmp_path / "in" / "real-pages"], out_dir=tmp_path / "threads", config=base)
    dask = curate_flow(
        inputs=inputs + [tmp_path / "in" / "real-pages"],
        out_dir=tmp_path / "dask",
        config=_with_run(base, task_runner="dask", dask_address=local_cluster),
    )
    assert sum(s.parts for s in dask.stages if s.stage == "ingest") >= 5
    assert_same_outputs(tmp_path / "threads" / threads.run_id, tmp_path / "dask" / dask.run_id)
    assert (dask.records_read, dask.kept, dask.dropped, dask.config_hash) == (
        threads.records_read,
        threads.kept,
        threads.dropped,
        threads.config_hash,
    )
    assert_nothing_lost(dask)
    # the tasks ran in the cluster's two worker processes, not in this one
    stream = client.get_task_stream(start=started)
    client.close()
    assert len(stream) >= 20
    assert len({record["worker"] for record in stream}) == 2


def test_dask_runner_starts_its_own_local_cluster_when_no_address_is_given(
    tmp_path: Path, prefect_server: None
) -> None:
    inputs = write_demo_inputs(tmp_path / "in")
    config = _with_run(DEMO_CONFIG, task_runner="dask", dask_workers=1, cache=False)
    report: RunReport = curate_flow(inputs=inputs, out_dir=tmp_path / "out", config=config)
    reference = curate_flow(inputs=inputs, out_dir=tmp_path / "ref", config=_with_run(DEMO_CONFIG, cache=False))
    assert_same_outputs(tmp_path / "ref" / reference.run_id, tmp_path / "out" / report.run_id)


def test_an_unreachable_dask_scheduler_fails_the_run_before_any_work(tmp_path: Path, prefect_server: None) -> None:
    """It used to write the run folder, ingest nothing and fail after distributed's 30 s connect timeout."""
    (tmp_path / "in.jsonl").write_text("{}\n")
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{closed.getsockname()[1]}"
        config = _with_run(CurationConfig(), task_runner="dask", dask_address=address)
        started = time.monotonic()
        with pytest.raises(ResourceError, match=f"run.dask_address='{address}': no Dask scheduler answers"):
            curate_flow(inputs=[tmp_path / "in.jsonl"], out_dir=tmp_path / "out", config=config)
        assert time.monotonic() - started < 20
    assert not (tmp_path / "out").exists()


def test_process_runner_output_is_byte_identical_to_the_thread_runner(
    tmp_path: Path, prefect_server: None, sharegpt_sample: list[dict]
) -> None:
    """Prefect's process pool: each part's task runs in a worker process (spawned: nothing of this
    process is inherited) and its outputs match the thread runner's byte for byte."""
    inputs = [*write_demo_inputs(tmp_path / "in"), tmp_path / "in" / "real-pages"]
    write_pages(tmp_path / "in" / "real-pages", sharegpt_sample[:40])
    base = _with_run(DEMO_CONFIG, batch_size=20, cache=False)
    threads = curate_flow(inputs=inputs, out_dir=tmp_path / "threads", config=base)
    # "auto" (the default) takes the process pool from auto_processes_min_mb of input: 0 here.
    processes = curate_flow(
        inputs=inputs, out_dir=tmp_path / "processes", config=_with_run(base, auto_processes_min_mb=0, max_workers=2)
    )
    assert (threads.task_runner, processes.task_runner) == ("threads", "processes")  # the demo is under 100 MB
    assert sum(s.parts for s in processes.stages if s.stage == "ingest") >= 3
    assert_same_outputs(tmp_path / "threads" / threads.run_id, tmp_path / "processes" / processes.run_id)
    assert (processes.records_read, processes.kept, processes.dropped) == (
        threads.records_read,
        threads.kept,
        threads.dropped,
    )
    assert_nothing_lost(processes)


@pytest.mark.parametrize("runner", ["processes", "dask"])
def test_workers_report_to_the_temporary_server_of_the_run(tmp_path: Path, runner: str) -> None:
    """`chatsift curate` with no server configured starts a temporary one; the workers of its process pool
    or local Dask cluster must use it, not each start a server of their own (that cost ~7 s per worker)."""
    inputs = write_demo_inputs(tmp_path / "in")
    config = tmp_path / "config.json"
    workers = {"max_workers": 2} if runner == "processes" else {"dask_workers": 2}
    config.write_text(
        _with_run(DEMO_CONFIG, task_runner=runner, cache=False, batch_size=20, **workers).model_dump_json()
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true"}
    command = [sys.executable, "-m", "flows.cli", "curate", *map(str, inputs), "--out", str(tmp_path / "out")]
    command += ["--config", str(config), "--run-id", "r", "--progress", "off"]
    done = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    report = RunReport.model_validate_json((tmp_path / "out" / "r" / "report.json").read_text("utf-8"))
    assert report.task_runner == runner and sum(s.parts for s in report.stages if s.stage == "markdown") >= 2
    assert output.count("Starting temporary server") == 1, output[-3000:]


@pytest.mark.parametrize(
    ("run", "input_mb", "cores", "chosen"),
    [
        ({}, 31, 2, "processes"),  # the real sample as one dump: where the two break even
        ({}, 10, 2, "threads"),  # workers would cost more than they save
        ({}, 155, 2, "processes"),
        ({}, 155, 1, "threads"),
        ({"max_workers": 1}, 155, 16, "threads"),
        ({"max_workers": 4}, 155, 1, "processes"),
        ({"auto_processes_min_mb": 0}, 0, 2, "processes"),
        ({"task_runner": "threads"}, 155, 16, "threads"),
        ({"task_runner": "processes"}, 0, 1, "processes"),
        ({"task_runner": "dask"}, 0, 2, "dask"),
    ],
)
def test_auto_takes_processes_for_large_inputs_on_several_cores(
    run: dict[str, object], input_mb: int, cores: int, chosen: str
) -> None:
    config = RunConfig.model_validate(run)
    assert chosen_task_runner(config, input_bytes=input_mb * 10**6, cores=cores) == chosen


def test_every_module_that_submits_parts_is_imported_by_each_worker_as_it_starts() -> None:
    """A module that calls run_parts but is missing from PART_TASK_MODULES would make its first part
    wait on its import in each worker."""
    submitting = {
        f"flows.{path.stem}"
        for path in (REPO_ROOT / "flows").glob("*.py")
        if "run_parts(" in path.read_text("utf-8") and path.stem != "execution"
    }
    assert submitting and submitting <= set(PART_TASK_MODULES)


@task
def _modules_loaded_in_worker(names: tuple[str, ...]) -> tuple[int, list[str]]:
    """The worker's pid and which of `names` it has imported (cloudpickle sends this function by value: the
    worker does not import this module, which imports them all)."""
    assert __name__ not in sys.modules
    return os.getpid(), [name for name in names if name in sys.modules]


def test_the_process_pool_starts_every_worker_at_once_each_with_the_stage_modules_imported(
    prefect_server: None,
) -> None:
    """Python's pool would start a worker only when a job found none idle: the second part of a stage
    waited on a whole worker start."""
    before = {p.pid for p in multiprocessing.active_children()}
    with run_task_runner(RunConfig(max_workers=2), "processes") as runner:
        started = {p.pid for p in multiprocessing.active_children()} - before
        assert len(started) == 2  # both spawned before any part was submitted
        future = runner.submit(_modules_loaded_in_worker, {"names": PART_TASK_MODULES})
        pid, loaded = future.result()
    assert pid in started
    assert loaded == list(PART_TASK_MODULES)


@task
def _pid(_: int) -> int:
    return os.getpid()


@flow
def _lone_part_then_three() -> tuple[list[int], list[int]]:
    with run_task_runner(RunConfig(max_workers=2), "processes") as runner, tasks_on(runner):
        return run_parts(_pid, [(0,)]), run_parts(_pid, [(0,), (1,), (2,)])


def test_a_lone_part_runs_in_the_flows_process_and_several_on_the_workers(prefect_server: None) -> None:
    """One part (a one-file ingest) would wait for a worker to start; several spread over the workers."""
    lone, several = _lone_part_then_three()
    assert lone == [os.getpid()] and os.getpid() not in several
