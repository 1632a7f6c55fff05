"""`chatsift serve INPUT... [--out DIR] [--config FILE] [--cron C] [--paused] [--gpu-pool POOL]`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from flows.cli.local import check_prefect_server, prefect_api_url, start_persistent_server
from schemas.config.file import load_config
from schemas.errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="inputs the scheduled re-curation reads")
    p.add_argument("--out", default="runs", help="output directory of every run (default: runs)")
    p.add_argument("--config", type=Path, help="TOML or JSON config for every deployment")
    p.add_argument("--cron", help="re-curation schedule, a cron line in UTC (default: nightly at 03:00)")
    p.add_argument("--paused", action="store_true", help="register the schedule switched off")
    p.add_argument(
        "--gpu-pool",
        metavar="POOL",
        help="register finetune on this process work pool (e.g. chatsift-gpu) instead of serving it here",
    )
    p.add_argument(
        "--start-server",
        action="store_true",
        help="without PREFECT_API_URL: start `chatsift server` (SQLite in PREFECT_HOME, so the deployments stay) "
        "on 127.0.0.1:--server-port for as long as this runs",
    )
    p.add_argument("--server-port", type=int, default=4200, help="--start-server's port (default 4200)")
    p.add_argument(
        "--gpu-pool-source",
        type=Path,
        help="the folder holding flows/ as the pool's worker sees it (docker: /app; default: this checkout)",
    )


def run(args: argparse.Namespace) -> int:
    """Register the deployments with the server at PREFECT_API_URL and serve their runs until stopped.

    Never on a temporary server: its deployments would vanish when this stops."""
    config = load_config(args.config)
    out_dir = Path(args.out).resolve()
    url = prefect_api_url()
    server = None
    if url is None and not args.start_server:
        raise ConfigError(
            "chatsift serve registers deployments on a Prefect server that must outlive it, and PREFECT_API_URL "
            "names none: start one with `chatsift server` and set PREFECT_API_URL=http://127.0.0.1:4200/api, "
            "or pass --start-server"
        )
    if url is None:
        out_dir.mkdir(parents=True, exist_ok=True)
        log = out_dir / "chatsift-server.log"
        url, server = start_persistent_server(args.server_port, out_dir, log)
        # the flow runs serve starts are child processes: they read it from the environment
        os.environ["PREFECT_API_URL"] = url
        print(f"chatsift serve: started `chatsift server` at {url} (its log: {log})", flush=True)
    else:
        check_prefect_server(url)
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.serve import serve_deployments

    try:
        with temporary_settings({PREFECT_API_URL: url}):
            serve_deployments(
                inputs=[str(Path(p).resolve()) for p in args.inputs],
                out_dir=str(out_dir),
                config=config,
                cron=args.cron,
                schedule_active=not args.paused,
                gpu_pool=args.gpu_pool,
                gpu_pool_source=args.gpu_pool_source,
            )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    return 0
