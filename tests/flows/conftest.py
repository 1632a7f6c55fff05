"""`chatsift server` on a free port of 127.0.0.1, as a user starts it, for the tests that need the real UI and API."""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, environ_with_every_server_service
from tests.helpers.processes import free_port, stop, wait_until


@pytest.fixture
def server(tmp_path: Path, migrated_prefect_db: Path) -> Iterator[dict[str, str]]:
    """The environment of a client of the server (PREFECT_API_URL); it serves tmp_path/runs' files."""
    port = free_port()
    # PREFECT_HOME's default database, already migrated (tests/conftest.py)
    (tmp_path / "prefect-home").mkdir()
    shutil.copyfile(migrated_prefect_db, tmp_path / "prefect-home" / "prefect.db")
    env = {
        **environ_with_every_server_service(),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        # serve looks for runs to start every 10 s by default; the test's runs start within a second
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "server", "--port", str(port), "--serve-dir", str(tmp_path / "runs")],
        env=env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    try:
        wait_until("prefect server", healthy, proc, timeout=120)
        yield env
    finally:
        stop(proc)
        log.close()
