"""`chatsift server [--port N]`: a Prefect server and UI on 127.0.0.1."""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=4200)


def run(args: argparse.Namespace) -> int:
    # SQLite under PREFECT_HOME by default; PREFECT_SERVER_DATABASE_CONNECTION_URL points it at Postgres.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(args.port)]
    # exec, not a child process: signals (Ctrl-C, SIGINT from a supervisor) reach the server itself.
    os.execv(sys.executable, command)
    return 0  # not reached: execv replaces this process
