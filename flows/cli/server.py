"""`chatsift server [--host H] [--port N] [--serve-dir DIR]...`: a Prefect server and UI for chatsift's
deployments, with the run folders served read-only beside them (flows/run_files.py)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from flows.run_files import RUN_FILES_PATH, SERVED_DIRS_ENV


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on; 127.0.0.1 (default): this machine only, 0.0.0.0: every interface "
        "(in a container, behind your own access control)",
    )
    p.add_argument("--port", type=int, default=4200, help="the port of the API and the UI (default 4200, Prefect's)")
    p.add_argument(
        "--serve-dir",
        dest="serve_dirs",
        action="append",
        type=Path,
        metavar="DIR",
        help="a folder whose files the UI's artifact links open, read-only, under "
        f"{RUN_FILES_PATH}/ (repeatable; default: ./runs, `chatsift serve`'s default --out)",
    )


def run(args: argparse.Namespace) -> int:
    # SQLite under PREFECT_HOME by default; PREFECT_SERVER_DATABASE_CONNECTION_URL points it at Postgres.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The UI calls the API at PREFECT_UI_API_URL, which is 4200 whatever --port is unless it is set
    # (the UI then shows "Can't connect to Server API"). A value you set (a proxy's URL) is kept.
    browser_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    api_url = os.environ.setdefault("PREFECT_UI_API_URL", f"http://{browser_host}:{args.port}/api")
    served = [p.resolve() for p in (args.serve_dirs or [Path("runs")])]
    os.environ[SERVED_DIRS_ENV] = os.pathsep.join(map(str, served))
    from prefect.settings import get_current_settings

    home = os.environ.get("PREFECT_HOME") or str(get_current_settings().home)
    print(
        f"chatsift server: the UI on http://{browser_host}:{args.port} (calling its API at {api_url}); "
        f"its data in PREFECT_HOME={home}; run files from {', '.join(map(str, served))} "
        f"under http://{browser_host}:{args.port}{RUN_FILES_PATH}/",
        flush=True,
    )
    # The same app `prefect server start` runs (API, UI, services), with the run files mounted on it;
    # a fresh interpreter so that Prefect reads the settings set above. exec, not a child process:
    # signals (Ctrl-C, SIGINT from a supervisor) reach the server itself.
    command = [sys.executable, "-m", "uvicorn", "flows.run_files:chatsift_server_app", "--factory"]
    os.execv(sys.executable, [*command, "--host", args.host, "--port", str(args.port)])
    return 0  # not reached: execv replaces this process
