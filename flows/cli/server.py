"""`chatsift server [--host H] [--port N]`: a Prefect server and UI for chatsift's deployments."""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on; 127.0.0.1 (default): this machine only, 0.0.0.0: every interface "
        "(in a container, behind your own access control)",
    )
    p.add_argument("--port", type=int, default=4200, help="the port of the API and the UI (default 4200, Prefect's)")


def run(args: argparse.Namespace) -> int:
    from prefect.settings import get_current_settings

    # SQLite under PREFECT_HOME by default; PREFECT_SERVER_DATABASE_CONNECTION_URL points it at Postgres.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The UI calls the API at PREFECT_UI_API_URL, which is 4200 whatever --port is unless it is set
    # (the UI then shows "Can't connect to Server API"). A value you set (a proxy's URL) is kept.
    browser_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    api_url = os.environ.setdefault("PREFECT_UI_API_URL", f"http://{browser_host}:{args.port}/api")
    home = os.environ.get("PREFECT_HOME") or str(get_current_settings().home)
    print(
        f"chatsift server: the UI on http://{browser_host}:{args.port} (calling its API at {api_url}); "
        f"its data in PREFECT_HOME={home}",
        flush=True,
    )
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", args.host, "--port", str(args.port)]
    # exec, not a child process: signals (Ctrl-C, SIGINT from a supervisor) reach the server itself.
    os.execv(sys.executable, command)
    return 0  # not reached: execv replaces this process
