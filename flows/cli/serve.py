"""`chatsift serve INPUT... [--out DIR] [--config FILE] [--cron C] [--paused] [--gpu-pool POOL]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from schemas.config.file import load_config


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
        "--gpu-pool-source",
        type=Path,
        help="the folder holding flows/ as the pool's worker sees it (docker: /app; default: this checkout)",
    )


def run(args: argparse.Namespace) -> int:
    """Register the deployments with the server at PREFECT_API_URL and serve their runs until stopped."""
    config = load_config(args.config)
    from flows.serve import serve_deployments

    serve_deployments(
        inputs=[str(Path(p).resolve()) for p in args.inputs],
        out_dir=str(Path(args.out).resolve()),
        config=config,
        cron=args.cron,
        schedule_active=not args.paused,
        gpu_pool=args.gpu_pool,
        gpu_pool_source=args.gpu_pool_source,
    )
    return 0
