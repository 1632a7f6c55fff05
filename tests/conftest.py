"""Shared fixtures: the real data beside the checkout, and the ledger invariant check."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest

# The shared checks in tests/helpers report their failing asserts as test modules' do.
pytest.register_assert_rewrite("tests.helpers")

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
    "tests/curation/contamination/test_check_real.py",  # ~220 s
    "tests/flows/test_resume.py",  # ~190 s
    "tests/flows/test_serve.py",  # ~140 s
    "tests/curation/contamination/test_rephrased_real.py",  # ~130 s
    "tests/flows/test_cli.py",  # ~90 s
    "tests/flows/test_runners.py",  # ~85 s
    "tests/curation/clean/test_markdown_roundtrip.py",  # ~55 s
    "tests/flows/test_curate.py",  # ~50 s
    "tests/curation/shards/test_split.py",  # ~55 s
    "tests/curation/dedupe/test_minhash.py",  # ~35 s
    "tests/curation/runs/test_diff.py",  # ~30 s
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


@pytest.fixture(scope="session")
def prefect_server() -> Any:
    """One real temporary Prefect server (SQLite) for the whole session; flows report to it."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    # The harness takes ~10 s to start (docs/defaults.md#prefect): start it once.
    with prefect_test_harness(server_startup_timeout=90), temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


@pytest.fixture(scope="session")
def embed_units(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The real all-MiniLM-L6-v2 (bundled, offline) behind one embedding cache for the session,
    so each distinct text is embedded once however many tests use it."""
    from curation.contamination.embedding_cache import cached_embeddings
    from flows.resources import embed_normalized, embedder_for, embedding_dim

    model = embedder_for("all-MiniLM-L6-v2", "cpu")
    embed = embed_normalized(model, 64)
    folder = tmp_path_factory.mktemp("embedding-cache")
    dim = embedding_dim(model)
    return lambda texts: cached_embeddings(texts, embed=embed, folder=folder, dim=dim)
