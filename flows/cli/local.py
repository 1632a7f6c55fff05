"""The embedded local Prefect a command line run uses when no server is named."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager


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

    Without PREFECT_API_URL, Prefect starts a temporary local server (SQLite) for the run.
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

    mode = next(m for m in PROGRESS_MODES if m == progress)
    with (
        temporary_settings(
            {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 90}
        ),
        terminal_progress(mode),
    ):
        yield
