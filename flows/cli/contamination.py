"""`chatsift contamination DIR [--out D] [--config F] [--presets-dir D] [--presets ...]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pydantic import ValidationError

from flows.cli.local import add_progress_argument, local_prefect
from schemas.config import LOCAL_BENCHMARK_PRESETS, CurationConfig
from schemas.config.file import load_config
from schemas.errors import ConfigError, InputError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("conversations", type=Path, help="a folder of conversation parts (a run's conversations/)")
    p.add_argument("--out", type=Path, default=Path("runs"), help="output directory (default: ./runs)")
    p.add_argument("--config", type=Path, help="TOML or JSON file; its [contamination] table is used")
    p.add_argument("--presets-dir", type=Path, help="folder holding the benchmark files as published")
    p.add_argument("--presets", nargs="*", help="benchmark presets to use with --presets-dir (default: all)")
    add_progress_argument(p)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.presets_dir:
        data = config.model_dump(mode="json")
        data["contamination"]["presets_dir"] = str(args.presets_dir)
        data["contamination"]["presets"] = args.presets or config.contamination.presets or list(LOCAL_BENCHMARK_PRESETS)
        try:
            config = CurationConfig.model_validate(data)
        except ValidationError as e:
            raise ConfigError(f"--presets: {e.errors(include_url=False)[0]['msg']}") from e
    if not args.conversations.is_dir():
        raise InputError(f"{args.conversations} is not a folder: pass a run's conversations/ folder")
    with local_prefect(args.progress):
        from flows.contamination import contamination_flow

        summary = contamination_flow(conversations=args.conversations, out_dir=args.out, config=config)
    print(json.dumps(summary, indent=2))
    return 0
