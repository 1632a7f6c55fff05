"""The suite's own limits (pyproject.toml's pytest addopts): a test that hangs fails with its traceback,
and the slowest tests are printed at the end of every run."""

from __future__ import annotations

import os
import shlex
import sqlite3
import subprocess
import sys
import tomllib
from contextlib import closing
from pathlib import Path

from tests.conftest import HEAVIEST_FIRST, REPO_ROOT, THREAD_POOL_VARIABLES, scheduling_rank, share_of_the_cores


def _addopts() -> list[str]:
    pytest_options = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    return shlex.split(pytest_options["addopts"])


def test_the_suite_sets_a_per_test_limit_and_prints_the_slowest_tests() -> None:
    options = dict(o.split("=", 1) for o in _addopts() if "=" in o)
    assert 60 <= int(options["--timeout"]) <= 900
    assert options["--durations"] == "15"
    assert "--no-loadscope-reorder" in _addopts()


def test_the_heaviest_files_are_scheduled_first() -> None:
    assert len(set(HEAVIEST_FIRST)) == len(HEAVIEST_FIRST)
    missing = [path for path in HEAVIEST_FIRST if not (REPO_ROOT / path).is_file()]
    assert not missing, f"HEAVIEST_FIRST names files that are gone: {missing}"
    files = ["tests/test_layering.py", *reversed(HEAVIEST_FIRST), "tests/curation/test_stage.py"]
    ordered = sorted(files, key=scheduling_rank)
    assert ordered == [*HEAVIEST_FIRST, "tests/test_layering.py", "tests/curation/test_stage.py"]


def test_a_hanging_test_fails_with_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "test_hang.py").write_text("import time\n\n\ndef test_hang():\n    time.sleep(120)\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=2", "test_hang.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 1, run.stdout
    assert "Timeout" in run.stdout and "time.sleep(120)" in run.stdout


def test_each_worker_sizes_its_thread_pools_to_its_share_of_the_cores() -> None:
    shares = [share_of_the_cores(2, 2), share_of_the_cores(16, 2), share_of_the_cores(1, 4), share_of_the_cores(4, 1)]
    assert shares == [1, 8, 1, 4]
    env = {k: v for k, v in os.environ.items() if k not in (*THREAD_POOL_VARIABLES, "PYTEST_XDIST_WORKER_COUNT")}
    probe = "import os, tests.conftest, torch; print(torch.get_num_threads(), os.environ.get('POLARS_MAX_THREADS'))"

    def probe_with(**variables: str) -> list[str]:
        run = subprocess.run(
            [sys.executable, "-c", probe],
            cwd=REPO_ROOT,
            env={**env, **variables},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        return run.stdout.split()

    cores = len(os.sched_getaffinity(0))
    # as many workers as cores: one thread each, torch included
    assert probe_with(PYTEST_XDIST_WORKER_COUNT=str(cores)) == ["1", "1"]
    # not under xdist: the libraries keep their own defaults
    assert probe_with()[1] == "None"
    # a value the caller set is kept
    assert probe_with(PYTEST_XDIST_WORKER_COUNT=str(cores), POLARS_MAX_THREADS="3") == ["1", "3"]


def test_the_test_servers_start_on_a_migrated_database(migrated_prefect_db: Path) -> None:
    with closing(sqlite3.connect(migrated_prefect_db)) as db:
        [(version,)] = db.execute("SELECT version_num FROM alembic_version").fetchall()
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert version and {"flow_run", "task_run", "artifact", "deployment"} <= tables
