"""`chatsift shards build|verify|inspect`: pack a run's conversations again, check shards, look into them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flows.cli.local import add_progress_argument, local_prefect
from schemas.config.file import load_config
from schemas.errors import InputError
from schemas.shards import EXPORT_FORMATS, MANIFEST_NAME, read_manifest


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="shards_command", required=True)
    build = sub.add_parser(
        "build", help="tokenize and pack a run's conversations/ again (another tokenizer, template, length)"
    )
    build.add_argument("dir", type=Path, help="a folder of conversation parts (a run's conversations/)")
    build.add_argument("--out", type=Path, default=Path("runs"), help="output directory (default: ./runs)")
    build.add_argument("--config", type=Path, help="TOML or JSON file; its [tokenizer] and [shards] tables are used")
    build.add_argument("--json", action="store_true", help="print the run's summary as JSON instead of as text")
    add_progress_argument(build)
    export = sub.add_parser(
        "export",
        help="write verified shards in another trainer's format (axolotl's or torchtune's pre-tokenized columns, "
        "MosaicML MDS for LLM Foundry, or the conversations as messages with a training flag per turn)",
    )
    export.add_argument("dir", type=Path, help="a shards folder (a run's shards/, holding manifest.json)")
    export.add_argument("--format", dest="export_format", choices=EXPORT_FORMATS, required=True, help="the format")
    export.add_argument("--out", type=Path, required=True, help="a new folder for the export and its manifest")
    export.add_argument(
        "--layout",
        choices=("unpacked", "packed"),
        default="unpacked",
        help="unpacked (default): one conversation a row, for the trainer's own packing; packed: the shards' "
        "packed rows, with position_ids that restart at each conversation",
    )
    export.add_argument(
        "--conversations",
        type=Path,
        help="--format messages: the conversations' text (default: the run's conversations/ beside the shards)",
    )
    export.add_argument(
        "--file-format",
        choices=("jsonl", "parquet"),
        default="jsonl",
        help="--format messages: JSON lines (default) or Parquet",
    )
    verify = sub.add_parser("verify", help="check the manifest against the files and every invariant")
    verify.add_argument("dir", type=Path, help="a shards folder (a run's shards/, holding manifest.json)")
    inspect = sub.add_parser("inspect", help="print stats and decode sample rows with the mask shown")
    inspect.add_argument("dir", type=Path, help="a shards folder (a run's shards/, holding manifest.json)")
    inspect.add_argument("--rows", type=int, default=1, help="sample rows to decode (default 1)")
    inspect.add_argument("--no-decode", action="store_true", help="show token ids instead of text")


def run(args: argparse.Namespace) -> int:
    from curation.shards.verify import inspect_shards, verify_shards

    if args.shards_command == "build":
        config = load_config(args.config)
        with local_prefect(args.progress):
            from flows.shards import build_shards_flow

            summary = build_shards_flow(conversations=args.dir, out_dir=args.out, config=config)
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            print_build_summary(summary)
        return 0
    if not (args.dir / MANIFEST_NAME).is_file():
        raise InputError(f"{args.dir} holds no {MANIFEST_NAME}: pass a run's shards/ folder")
    if args.shards_command == "verify":
        problems = verify_shards(args.dir)
        for problem in problems:
            print(f"FAIL {problem}")
        print(f"{args.dir}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if problems else 0
    if args.shards_command == "export":
        from curation.shards.export import export_shards

        exported = export_shards(
            args.dir,
            args.out,
            fmt=args.export_format,
            layout=args.layout,
            conversations_dir=args.conversations,
            file_format=args.file_format,
        )
        print(
            f"{args.out}: {exported.format} ({exported.layout}), {exported.rows} rows, {exported.tokens} tokens, "
            f"{exported.supervised_tokens} supervised, as in {args.dir}"
        )
        return 0
    decode = None
    if not args.no_decode:
        from flows.resources import tokenizer_for

        tokenizer = tokenizer_for(read_manifest(args.dir).tokenizer.name)
        decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=False)  # noqa: E731
    print(inspect_shards(args.dir, decode=decode, sample_rows=args.rows))
    return 0


def print_build_summary(summary: dict) -> None:
    """What `shards build` made, as curate's summary says it: counts, each stage's drops and changes, the files."""
    from flows.cli.summary import stage_lines
    from schemas import StageReport

    manifest = read_manifest(Path(summary["manifest"]).parent)
    print(
        f"\nrun {summary['run_id']}: {summary['conversations']} conversations in, {summary['packed']} packed into "
        f"{manifest.total_rows} rows ({manifest.total_tokens} tokens, {manifest.total_loss_tokens} supervised), "
        f"dropped {summary['dropped']}"
    )
    print("\n".join(stage_lines(StageReport.model_validate(s) for s in summary["stages"])))
    print(f"shards:        {summary['manifest']}\nledger:        {summary['ledger']}")
    for key, folder in sorted(summary.items()):
        if key.startswith("export_"):
            print(f"{key.removeprefix('export_') + ' export:':<15}{folder}")
