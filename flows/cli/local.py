"""The embedded local Prefect a command line run uses when no server is named."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from schemas.errors import ResourceError


def add_progress_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        choices=("auto", "on", "off"),
        default="auto",
        help="progress bars on stderr: auto (default) when stderr is a terminal, on always, off never; "
        "the run's progress artifact and log lines are there either way",
    )


@contextmanager
def local_prefect(progress: str = "off") -> Iterator[None]:
    """Settings for a run on Prefect from the command line: telemetry off, no heartbeat thread; with
    `progress` ("auto", "on"), the run's progress drawn on stderr (flows/progress.py).

    Without PREFECT_API_URL, Prefect starts a temporary local server (SQLite) for the run; with one, the
    server must answer first (one line naming the fix, not a client traceback, when it does not).
    """
    # The embedded server's telemetry write races its first migration on a fresh SQLite file
    # ("database is locked" in the log); a local curation run has no use for telemetry anyway.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # Imported here so `chatsift config` and argument errors answer without Prefect's import cost.
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    # The heartbeat thread adds ~1 s per flow run (docs/defaults.md#prefect); the embedded server can
    # take longer than the default 20 s to start on a busy 2-core machine.
    from flows.progress import PROGRESS_MODES, terminal_progress

    url = prefect_api_url()
    if url is not None:
        check_prefect_server(url)
    mode = next(m for m in PROGRESS_MODES if m == progress)
    with (
        temporary_settings(
            {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 90}
        ),
        terminal_progress(mode),
    ):
        yield


def prefect_api_url() -> str | None:
    """The Prefect API this process would talk to (PREFECT_API_URL, from the environment or the profile)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


def check_prefect_server(url: str, timeout: float = 5.0) -> None:
    """Raise ResourceError, in one line with the fix, when nothing answers at the Prefect API `url`. Any HTTP
    answer counts (a server behind auth answers 401)."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return
    except (OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise ResourceError(
            f"no Prefect server answers at PREFECT_API_URL={url} ({reason}): start one with `chatsift server`, "
            "or fix or unset PREFECT_API_URL"
        ) from None


def start_persistent_server(
    port: int, serve_dir: Path, log: Path, timeout: float = 120.0
) -> tuple[str, subprocess.Popen]:
    """`chatsift server` on 127.0.0.1:`port` as a child process (its SQLite in PREFECT_HOME, so what is
    registered on it stays), once it answers; its API URL and the process."""
    url = f"http://127.0.0.1:{port}/api"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "server", "--port", str(port), "--serve-dir", str(serve_dir)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    while True:
        try:
            check_prefect_server(url, timeout=2)
            return url, proc
        except ResourceError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.terminate()
                raise ResourceError(
                    f"`chatsift server --port {port}` did not start (exit {proc.poll()}): see {log}; "
                    "another server may hold the port (pick one with --server-port)"
                ) from None
            time.sleep(0.5)
