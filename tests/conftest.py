"""Shared fixtures: the real data beside the checkout, and the ledger invariant check."""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

# The shared checks in tests/helpers report their failing asserts as test modules' do.
pytest.register_assert_rewrite("tests.helpers")


def share_of_the_cores(cores: int, workers: int) -> int:
    """Threads each of `workers` pytest-xdist workers may use, so that together they fill the cores."""
    return max(1, cores // max(workers, 1))


# Libraries with thread pools of their own (torch and FAISS through OpenMP, polars, the tokenizers'
# rayon) size them to every core in each worker, and the subprocesses a test starts inherit that.
# Oversubscribed, they spin: the suite used ~10% more CPU time, and two workers of 2 threads each
# on 2 cores embedded 595 texts with MiniLM in 37 s, 2 of 1 thread in 28 s. Set
# before any test imports them; a value the caller set is kept.
THREAD_POOL_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "POLARS_MAX_THREADS",
    "RAYON_NUM_THREADS",
)
if (_workers := int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))) > 1:
    for _name in THREAD_POOL_VARIABLES:
        os.environ.setdefault(_name, str(share_of_the_cores(len(os.sched_getaffinity(0)), _workers)))

REPO_ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (CI puts it there); CHATSIFT_SHARED overrides for other layouts.
SHARED = Path(os.environ.get("CHATSIFT_SHARED", REPO_ROOT.parent / "shared"))
SHARED_DATA = SHARED / "data"
SHAREGPT_SAMPLE = SHARED_DATA / "sharegpt" / "sharegpt_v3_unfiltered_cleaned_split.first3003.json.gz"


# The files that take longest, heaviest first, as `--durations` measured them on 2 busy cores
# (seconds of the file's tests, fixtures included). pyproject's --no-loadscope-reorder makes xdist
# hand out files in collection order, and pytest_collection_modifyitems puts these first: a heavy
# file that starts last would otherwise run alone at the end (xdist's default order is by number
# of tests per file, which sends these few-test files last).
HEAVIEST_FIRST = (
    "tests/curation/contamination/test_check_real.py",  # ~140 s
    "tests/flows/test_resume.py",  # ~145 s
    "tests/flows/test_serve.py",  # ~120 s
    "tests/flows/test_ui_browser.py",  # ~80 s
    "tests/flows/test_cli.py",  # ~60 s
    "tests/flows/test_runners.py",  # ~120 s
    # ~60 s once test_check_real has embedded the conversations both check (the shared cache)
    "tests/curation/contamination/test_rephrased_real.py",
    "tests/curation/clean/test_markdown_roundtrip.py",  # ~60 s
    "tests/flows/test_curate.py",  # ~50 s
    "tests/bench/test_gpu_check.py",  # ~45 s alone
    "tests/curation/shards/test_split.py",  # ~45 s
    "tests/curation/dedupe/test_minhash.py",  # ~25 s
    "tests/curation/runs/test_diff.py",  # ~20 s
    "tests/flows/test_finetune.py",  # ~30 s
)


def scheduling_rank(path: str) -> int:
    """Where a test file goes in the run's order: HEAVIEST_FIRST's files by their place there, the
    others after them in collection order."""
    return HEAVIEST_FIRST.index(path) if path in HEAVIEST_FIRST else len(HEAVIEST_FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: scheduling_rank(item.nodeid.split("::", 1)[0]))  # stable: order within a file kept


def _require(path: Path) -> Path:
    if not path.exists():
        if os.environ.get("CHATSIFT_REQUIRE_SHARED") == "1":
            pytest.fail(f"CHATSIFT_REQUIRE_SHARED=1 but the real data is missing at {path}")
        pytest.skip(f"needs the real data at {path} (../shared beside the checkout); .ci/run requires it")
    return path


@pytest.fixture(scope="session")
def sharegpt_sample_path() -> Path:
    """The 3003 real ShareGPT conversations (gzipped JSON array, markdown values)."""
    return _require(SHAREGPT_SAMPLE)


@pytest.fixture(scope="session")
def sharegpt_sample(sharegpt_sample_path: Path) -> list[dict[str, Any]]:
    with gzip.open(sharegpt_sample_path, "rt", encoding="utf-8") as f:
        data: list[dict[str, Any]] = json.load(f)
    return data


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _require(SHARED_DATA)


def run_temp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary folder of this whole test run, shared by its xdist workers (each worker's own
    basetemp is a folder inside it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


# Applies every Prefect migration to the SQLite file named by PREFECT_SERVER_DATABASE_CONNECTION_URL.
_MIGRATE = (
    "import asyncio; from prefect.server.database import provide_database_interface as db; "
    "asyncio.run(db().create_db())"
)


@pytest.fixture(scope="session")
def migrated_prefect_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Prefect SQLite database with every migration applied, built once per test run.

    A fresh database takes ~16 s of migrations on this machine, an up-to-date one ~1 s
    (docs/defaults.md#prefect); each test server starts on a copy of this one."""
    root = run_temp_root(tmp_path_factory)
    db = root / "prefect-migrated.db"
    with open(root / "prefect-migrated.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one worker builds it, the other waits for it
        if not db.exists():
            building = root / "prefect-migrating.db"
            building.unlink(missing_ok=True)
            env = {**os.environ, "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{building}"}
            subprocess.run([sys.executable, "-c", _MIGRATE], env=env, check=True, timeout=300, capture_output=True)
            os.replace(building, db)
    return db


SERVICES_OFF_IN_THE_SESSION_SERVER = ("EVENT_PERSISTER", "TASK_RUN_RECORDER", "TRIGGERS", "EVENT_LOGGER")


def environ_with_every_server_service() -> dict[str, str]:
    """This process's environment without the session server's services turned off, for a server or
    command that must run as a user's does."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_SERVER_SERVICES_")}


@pytest.fixture(scope="session")
def prefect_server(migrated_prefect_db: Path) -> Any:
    """One real temporary Prefect server (SQLite) for the whole session; flows report to it."""
    import prefect.testing.utilities as harness
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    def folder_with_migrated_db() -> str:
        # The harness puts its database in a new temporary folder as prefect-test.db; starting from
        # a migrated copy skips the migrations. Were the name to change, it would migrate as before.
        folder = tempfile.mkdtemp()
        shutil.copyfile(migrated_prefect_db, Path(folder) / "prefect-test.db")
        return folder

    # The harness takes ~10 s to start (docs/defaults.md#prefect): start it once.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(harness, "mkdtemp", folder_with_migrated_db)
        # Nothing these tests check reads the events or task runs the server would record from
        # every state change, and recording them made a curate run ~30% slower: the server shares
        # the 2 cores with the flows (docs/defaults.md#prefect). test_serve's server and the demo's
        # embedded one run every service (environ_with_every_server_service).
        for service in SERVICES_OFF_IN_THE_SESSION_SERVER:
            patch.setenv(f"PREFECT_SERVER_SERVICES_{service}_ENABLED", "false")
        with (
            harness.prefect_test_harness(server_startup_timeout=90),
            temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
        ):
            yield


@pytest.fixture(scope="session")
def embed_units(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The real all-MiniLM-L6-v2 (bundled, offline) behind one embedding cache for the session,
    so each distinct text is embedded once however many tests use it. The xdist workers share the
    cache (its parts are written atomically under unique names): the two real contamination files
    check the same real conversations, and the second reads the first's vectors. The precision is the default's on
    this CPU (bf16 where it multiplies bf16 natively), as a user's run has it; test_embedding_precision.py compares
    it with fp32."""
    from curation.contamination.embedding_cache import cached_embeddings
    from flows.resources import embed_normalized, embedder_for, embedding_dim, embedding_precision
    from schemas.config import ContaminationConfig

    model = embedder_for("all-MiniLM-L6-v2", "cpu", embedding_precision(ContaminationConfig(device="cpu")))
    embed = embed_normalized(model, ContaminationConfig(device="cpu"))
    folder = run_temp_root(tmp_path_factory) / "embedding-cache"
    folder.mkdir(exist_ok=True)
    dim = embedding_dim(model)
    return lambda texts: cached_embeddings(texts, embed=embed, folder=folder, dim=dim)
