"""`chatsift curate INPUT... --out DIR [--config FILE] [--run-id ID]`, `--resume RUN_DIR`, and `chatsift demo`."""

from __future__ import annotations

import argparse
from pathlib import Path

from flows.cli.local import add_progress_argument, local_prefect
from schemas import RunReport
from schemas.config import CurationConfig
from schemas.config.file import load_config
from schemas.errors import ConfigError
from schemas.run_layout import RunPaths, read_run_to_resume


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="*", type=Path, help="files or directories")
    p.add_argument("--out", type=Path, help="output directory; the run goes in OUT/<run-id>")
    p.add_argument("--config", type=Path, help="TOML or JSON file overriding the defaults")
    p.add_argument("--run-id", help="name of the run directory (default: UTC time + random suffix)")
    p.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="run a killed or finished run again with its own inputs and config; finished parts come from the cache",
    )
    add_progress_argument(p)


# What --resume reads from the run folder instead, by flag and argparse name.
_FLAGS_RESUME_REPLACES = {"INPUTS": "inputs", "--out": "out", "--config": "config", "--run-id": "run_id"}


def run(args: argparse.Namespace) -> int:
    from flows.resources import check_inputs, check_resources

    if args.resume:
        mixed = [flag for flag, given in _FLAGS_RESUME_REPLACES.items() if getattr(args, given)]
        if mixed:
            raise ConfigError(
                f"--resume runs the run again with its own inputs, output folder and config: drop {', '.join(mixed)}"
            )
        inputs, out, config, run_id = read_run_to_resume(args.resume)
        check_inputs(inputs)
        check_resources(config)
        print(f"resuming run {run_id} in {out}: finished parts come back from the stage cache")
    else:
        if not args.inputs or args.out is None:
            raise ConfigError("curate needs INPUTS and --out (or --resume RUN_DIR)")
        inputs, out, config, run_id = args.inputs, args.out, load_config(args.config), args.run_id
        if run_id is not None:
            RunPaths.create(out, run_id).refuse_if_taken()
        check_inputs(inputs)
        check_resources(config)
    print_summary(curate_locally(inputs, out, config, run_id, args.progress))
    return 0


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("runs"), help="output directory (default: ./runs)")
    add_progress_argument(p)


def run_demo(args: argparse.Namespace) -> int:
    from demo.inputs import DEMO_CONFIG, write_demo_inputs
    from flows.resources import check_resources

    check_resources(DEMO_CONFIG)
    inputs = write_demo_inputs(args.out / "demo-input")
    print(f"demo inputs written to {args.out / 'demo-input'} (split.max_tokens={DEMO_CONFIG.split.max_tokens})")
    print_summary(curate_locally(inputs, args.out, DEMO_CONFIG, None, args.progress))
    return 0


def curate_locally(
    inputs: list[Path], out: Path, config: CurationConfig, run_id: str | None, progress: str = "auto"
) -> RunReport:
    """The curate flow on the local (or PREFECT_API_URL's) Prefect, its progress on stderr as `progress` says."""
    with local_prefect(progress):
        from flows.curate import curate_flow

        return curate_flow(inputs=inputs, out_dir=out, config=config, run_id=run_id)


def print_summary(report: RunReport) -> None:
    from curation.runs.stage_reports import reuse_line
    from flows.cli.summary import stage_lines

    print(
        f"\nrun {report.run_id}: read {report.records_read}, kept {report.kept} ({report.rows} rows), "
        f"dropped {report.dropped}"
    )
    print("\n".join(stage_lines(report.stages)))
    print(reuse_line(report))
    print(f"conversations: {report.outputs['conversations']}\nledger:        {report.outputs['ledger']}")
    print(f"shards:        {report.outputs['shards']}")
    print(f"report:        {report.outputs['report']}")
    if "contamination_html" in report.outputs:
        print(f"contamination: {report.outputs['contamination_html']}")
    if "explore" in report.outputs:
        print(f"explore:       {report.outputs['explore']}")
