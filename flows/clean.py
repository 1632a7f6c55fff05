"""The `clean` stage of curate: markdown conversion and filters over each ingest part, in parallel tasks."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from curation.clean.batch import CLEAN
from curation.parquet import read_conversations_parquet
from curation.runs.stage_reports import merge_stage_reports
from flows.execution import run_logger, run_parts
from flows.parts import PartResult, write_part
from flows.stage_cache import cached_part
from schemas import StageReport
from schemas.config import CurationConfig
from schemas.run_layout import RunPaths, part_name


def _clean(part: str, paths: RunPaths, config: CurationConfig) -> PartResult:
    kept, dropped, reports = CLEAN.call(read_conversations_parquet(Path(part)), config=config)
    return write_part(paths, "clean", part, kept, dropped, reports)


@task(name="clean-part")
def clean_part(part: str, paths: RunPaths, config: CurationConfig) -> PartResult:
    """Clean one part: read it, run the cleaning stages, write the kept part and the drops."""
    result = cached_part(
        CLEAN,
        paths=paths,
        config=config,
        inputs=[(part_name(part), Path(part))],
        compute=lambda: _clean(part, paths, config),
    )
    first, last = result.reports[0], result.reports[-1]
    run_logger().info(
        "clean %s: %d in, %d kept, %d dropped%s",
        part_name(part),
        first.inputs,
        last.kept,
        first.inputs - last.kept,
        " (reused)" if result.reused else "",
    )
    return result


def clean_stage(parts: list[str], paths: RunPaths, config: CurationConfig) -> tuple[list[str], list[StageReport]]:
    """Clean every ingest part; returns the cleaned parts and one report per stage."""
    results = run_parts(clean_part, [(p, paths, config) for p in parts])
    return [r.output for r in results], merge_stage_reports([s for r in results for s in r.reports])
