"""The `chatsift` command: a thin layer over the flows."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from flows.config_file import ConfigError, check_inputs, check_resources, load_config, resume_arguments
from flows.finetune_cli import add_finetune_parser, finetune_command
from flows.runs_cli import add_runs_parser, runs_command
from flows.scrape_cli import add_scrape_parser, scrape_command
from schemas import RunReport
from schemas.config import LOCAL_BENCHMARK_PRESETS, CurationConfig


@contextmanager
def _local_prefect() -> Iterator[None]:
    """Settings for a local run on the embedded Prefect server."""
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

    # The heartbeat thread adds ~1 s per flow run (prefect.md); the embedded server can take
    # longer than the default 20 s to start on a busy 2-core machine.
    with temporary_settings(
        {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 90}
    ):
        yield


def _run_curate(inputs: list[Path], out: Path, config: CurationConfig, run_id: str | None) -> RunReport:
    with _local_prefect():
        from flows.curate import curate_flow

        return curate_flow(inputs=inputs, out_dir=out, config=config, run_id=run_id)


def _contamination_command(args: argparse.Namespace) -> int:
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
        raise ConfigError(f"{args.conversations} is not a folder: pass a run's conversations/ folder")
    with _local_prefect():
        from flows.contamination import contamination_flow

        summary = contamination_flow(conversations=args.conversations, out_dir=args.out, config=config)
    print(json.dumps(summary, indent=2))
    return 0


def _print_summary(report: RunReport) -> None:
    from curation.reports import reuse_line

    print(
        f"\nrun {report.run_id}: read {report.records_read}, kept {report.kept} ({report.rows} rows), "
        f"dropped {report.dropped}"
    )
    for s in report.stages:
        notes = [f"{k}={v}" for k, v in sorted(s.dropped_by_reason.items())]
        notes += [f"{k}={v}" for k, v in sorted(s.changed.items())]
        print(f"  {s.stage:<15} in {s.inputs:>7}  kept {s.kept:>7}  dropped {s.dropped:>6}  {', '.join(notes)}")
    print(reuse_line(report))
    print(f"conversations: {report.outputs['conversations']}\nledger:        {report.outputs['ledger']}")
    print(f"shards:        {report.outputs['shards']}")
    print(f"report:        {report.outputs['report']}")
    if "contamination_html" in report.outputs:
        print(f"contamination: {report.outputs['contamination_html']}")


def _shards_command(args: argparse.Namespace) -> int:
    from curation.shards import MANIFEST_NAME, read_manifest
    from curation.shards_verify import inspect_shards, verify_shards

    if args.shards_command == "build":
        config = load_config(args.config)
        with _local_prefect():
            from flows.shards import build_shards_flow

            summary = build_shards_flow(conversations=args.dir, out_dir=args.out, config=config)
        print(json.dumps(summary, indent=2))
        return 0
    if not (args.dir / MANIFEST_NAME).is_file():
        raise ConfigError(f"{args.dir} holds no {MANIFEST_NAME}: pass a run's shards/ folder")
    if args.shards_command == "verify":
        problems = verify_shards(args.dir)
        for problem in problems:
            print(f"FAIL {problem}")
        print(f"{args.dir}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if problems else 0
    decode = None
    if not args.no_decode:
        from flows.resources import tokenizer_for

        tokenizer = tokenizer_for(read_manifest(args.dir).tokenizer.name)
        decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=False)  # noqa: E731
    print(inspect_shards(args.dir, decode=decode, sample_rows=args.rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatsift", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p_curate = sub.add_parser("curate", help="curate ShareGPT pages, dumps or JSONL into clean Parquet")
    p_curate.add_argument("inputs", nargs="*", type=Path, help="files or directories")
    p_curate.add_argument("--out", type=Path, help="output directory; the run goes in OUT/<run-id>")
    p_curate.add_argument("--config", type=Path, help="TOML or JSON file overriding the defaults")
    p_curate.add_argument("--run-id", help="name of the run directory (default: UTC time + random suffix)")
    p_curate.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="run a killed or finished run again with its own inputs and config; finished parts come from the cache",
    )

    p_demo = sub.add_parser("demo", help="run the whole pipeline on a small built-in sample")
    p_demo.add_argument("--out", type=Path, default=Path("runs"), help="output directory (default: ./runs)")

    p_cont = sub.add_parser("contamination", help="check curated conversations against benchmark questions")
    p_cont.add_argument("conversations", type=Path, help="a folder of conversation parts (a run's conversations/)")
    p_cont.add_argument("--out", type=Path, default=Path("runs"), help="output directory (default: ./runs)")
    p_cont.add_argument("--config", type=Path, help="TOML or JSON file; its [contamination] table is used")
    p_cont.add_argument("--presets-dir", type=Path, help="folder holding the benchmark files as published")
    p_cont.add_argument("--presets", nargs="*", help="benchmark presets to use with --presets-dir (default: all)")

    p_server = sub.add_parser("server", help="run a Prefect server (and UI) on 127.0.0.1 for chatsift's deployments")
    p_server.add_argument("--port", type=int, default=4200)
    sub.add_parser(
        "serve", help="register and serve the deployments (see `chatsift serve -h`)", add_help=False
    ).add_argument("rest", nargs=argparse.REMAINDER)

    sub.add_parser("config", help="print every option with its default, as JSON")

    p_shards = sub.add_parser("shards", help="check or look into training shards")
    shards_sub = p_shards.add_subparsers(dest="shards_command", required=True)
    p_build = shards_sub.add_parser(
        "build", help="tokenize and pack a run's conversations/ again (another tokenizer, template, length)"
    )
    p_build.add_argument("dir", type=Path, help="a folder of conversation parts (a run's conversations/)")
    p_build.add_argument("--out", type=Path, default=Path("runs"), help="output directory (default: ./runs)")
    p_build.add_argument("--config", type=Path, help="TOML or JSON file; its [tokenizer] and [shards] tables are used")
    p_verify = shards_sub.add_parser("verify", help="check the manifest against the files and every invariant")
    p_verify.add_argument("dir", type=Path)
    p_inspect = shards_sub.add_parser("inspect", help="print stats and decode sample rows with the mask shown")
    p_inspect.add_argument("dir", type=Path)
    p_inspect.add_argument("--rows", type=int, default=1, help="sample rows to decode (default 1)")
    p_inspect.add_argument("--no-decode", action="store_true", help="show token ids instead of text")

    add_runs_parser(sub)
    add_scrape_parser(sub)
    add_finetune_parser(sub)

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        from flows.serve import main as serve_main

        return serve_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command == "server":
        # SQLite under PREFECT_HOME by default; PREFECT_SERVER_DATABASE_CONNECTION_URL points it at Postgres.
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(args.port)]
        # exec, not a child process: signals (Ctrl-C, SIGINT from a supervisor) reach the server itself.
        os.execv(sys.executable, command)
    try:
        if args.command == "config":
            print(json.dumps(CurationConfig().model_dump(mode="json"), indent=2))
            return 0
        if args.command == "shards":
            return _shards_command(args)
        if args.command == "runs":
            return runs_command(args)
        if args.command == "scrape":
            return scrape_command(args)
        if args.command == "finetune":
            return finetune_command(args)
        if args.command == "contamination":
            return _contamination_command(args)
        if args.command == "demo":
            from flows.demo_data import DEMO_CONFIG, write_demo_inputs

            check_resources(DEMO_CONFIG)
            inputs = write_demo_inputs(args.out / "demo-input")
            print(f"demo inputs written to {args.out / 'demo-input'} (split.max_tokens={DEMO_CONFIG.split.max_tokens})")
            report = _run_curate(inputs, args.out, DEMO_CONFIG, None)
        elif args.resume:
            inputs, out, config, run_id = resume_arguments(args.resume)
            check_inputs(inputs)
            check_resources(config)
            print(f"resuming run {run_id} in {out}: finished parts come back from the stage cache")
            report = _run_curate(inputs, out, config, run_id)
        else:
            if not args.inputs or args.out is None:
                raise ConfigError("curate needs INPUTS and --out (or --resume RUN_DIR)")
            config = load_config(args.config)
            check_inputs(args.inputs)
            check_resources(config)
            report = _run_curate(args.inputs, args.out, config, args.run_id)
    except ConfigError as e:
        print(f"chatsift: error: {e}", file=sys.stderr)
        return 2
    _print_summary(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
