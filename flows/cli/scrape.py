"""`chatsift scrape (--ids FILE | --urls FILE) --out DIR [--config FILE] [--run-id ID]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flows.cli.local import add_progress_argument, local_prefect
from schemas.config.file import load_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--ids", type=Path, help="a file of page ids, one a line (QWJhYvA or QWJhYvA_0)")
    which.add_argument("--urls", type=Path, help="a file of page URLs, one a line (https://sharegpt.com/c/<id>)")
    p.add_argument("--out", type=Path, required=True, help="output directory: store/, pages/, <run-id>/")
    p.add_argument("--config", type=Path, help="TOML or JSON file overriding the defaults ([scrape] table)")
    p.add_argument("--run-id", help="name of the run directory (default: UTC time + random suffix)")
    add_progress_argument(p)


def run(args: argparse.Namespace) -> int:
    """Run the scrape flow on the local Prefect and print its summary."""
    from flows.scrape import check_scrape_arguments

    config = load_config(args.config)
    check_scrape_arguments(args.ids, args.urls)
    with local_prefect(args.progress):
        from flows.scrape import scrape_flow

        summary = scrape_flow(
            ids_file=args.ids, urls_file=args.urls, out_dir=args.out, config=config, run_id=args.run_id
        )
    print(json.dumps(summary, indent=2))
    return 0
