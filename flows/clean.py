"""The `clean` flow: markdown conversion and filters over each ingest part, in parallel tasks."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task

from curation.clean import clean_batch
from curation.io import read_conversations_parquet, write_conversations, write_ledger
from curation.reports import merge_stage_reports
from flows.paths import RunPaths, part_name
from flows.stage_cache import reuse_or_compute_part
from schemas import StageReport
from schemas.config import CurationConfig


def _clean(part: str, paths: RunPaths, config: CurationConfig) -> dict:
    name = part_name(part)
    kept, dropped, reports = clean_batch(read_conversations_parquet(Path(part)), config=config)
    out = paths.stage_part("clean", name)
    write_conversations(out, kept)
    ledger = paths.ledger_part("clean", name)
    write_ledger(ledger, dropped)
    return {"part": str(out), "ledger": str(ledger), "reports": reports}


@task(name="clean-part")
def clean_part(part: str, paths: RunPaths, config: CurationConfig) -> dict:
    """Clean one part: read it, run the cleaning stages, write the kept part and the drops."""
    c = config
    result = reuse_or_compute_part(
        paths.cache,
        "clean",
        part,
        paths.root,
        lambda: _clean(part, paths, config),
        config=(c.model, c.markdown, c.shape, c.blocked, c.language, c.secrets),
    )
    first, kept = result["reports"][0], result["reports"][-1]
    get_run_logger().info(
        "clean %s: %d in, %d kept, %d dropped%s",
        part_name(part),
        first.inputs,
        kept.kept,
        first.inputs - kept.kept,
        " (reused)" if result["reused"] else "",
    )
    return result


@flow(name="clean")
def clean_flow(parts: list[str], paths: RunPaths, config: CurationConfig) -> tuple[list[str], list[StageReport]]:
    """Clean every ingest part; returns the cleaned parts and one report per stage."""
    results = [f.result() for f in [clean_part.submit(p, paths, config) for p in parts]]
    return [r["part"] for r in results], merge_stage_reports([s for r in results for s in r["reports"]])
