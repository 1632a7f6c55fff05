"""`chatsift finetune --shards DIR --model PATH [--out DIR] [--config FILE] [--run-id ID] [--resume]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pydantic import ValidationError

from flows.cli.local import add_progress_argument, local_prefect
from schemas.config.file import load_config, validation_problems
from schemas.errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shards", type=Path, required=True, help="a shards folder holding manifest.json")
    p.add_argument("--model", required=True, help="a local model folder, or a hub name (needs network)")
    p.add_argument("--out", type=Path, default=Path("runs/finetune"), help="output directory (default: runs/finetune)")
    p.add_argument("--config", type=Path, help="TOML or JSON file; its [finetune] table is used")
    p.add_argument("--run-id", help="name of the run directory (default: UTC time + random suffix)")
    p.add_argument("--resume", action="store_true", help="continue --run-id after its newest checkpoint")
    p.add_argument("--method", choices=["lora", "full"], help="overrides finetune.method")
    p.add_argument("--max-steps", type=int, help="overrides finetune.max_steps")
    add_progress_argument(p)


def run(args: argparse.Namespace) -> int:
    """Check everything that needs no training, then run the finetune flow and print its summary."""
    from train.run import check_finetune_inputs, check_run_folder

    if args.resume and not args.run_id:
        raise ConfigError("--resume needs the --run-id of the run to continue")
    config = load_config(args.config).finetune
    overrides = {"method": args.method, "max_steps": args.max_steps}
    try:
        config = config.model_validate({**config.model_dump(), **{k: v for k, v in overrides.items() if v}})
    except ValidationError as e:
        raise ConfigError(f"--method/--max-steps: {validation_problems(e)}") from e
    check_finetune_inputs(args.shards, args.model, config=config)
    if args.run_id:
        check_run_folder(args.out / args.run_id, resume=args.resume)
    with local_prefect(args.progress):
        from flows.finetune import finetune_flow

        summary = finetune_flow(
            shards_dir=str(args.shards),
            model=args.model,
            out_dir=str(args.out),
            config=config,
            run_id=args.run_id,
            resume=args.resume,
        )
    print(json.dumps(summary, indent=2))
    return 0
