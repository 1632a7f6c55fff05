"""The `split` flow: long conversations cut into pieces of whole rounds that fit max_tokens."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, get_run_logger, task

from curation.io import read_conversations_parquet, write_conversations, write_ledger
from curation.reports import merge_stage_reports, stage_report
from curation.split import split_long_conversations
from curation.tokenizer_load import batch_token_counter
from flows.paths import RunPaths, part_name
from flows.resources import tokenizer_for
from flows.stage_cache import reuse_or_compute_part
from schemas import StageReport
from schemas.config import CurationConfig


def _split(part: str, paths: RunPaths, config: CurationConfig) -> dict:
    started = time.perf_counter()
    convs = read_conversations_parquet(Path(part))
    count_tokens = batch_token_counter(tokenizer_for(config.tokenizer.spec))
    result = split_long_conversations(convs, count_tokens=count_tokens, config=config.split)
    out = paths.stage_part("split", part_name(part))
    rows = write_conversations(out, result.kept)
    ledger = paths.ledger_part("split", part_name(part))
    write_ledger(ledger, result.dropped)
    kept = sum(1 for c in result.kept if not c.split_index)
    report = stage_report(
        "split",
        inputs=len(convs),
        kept=kept,
        dropped=result.dropped,
        changed=result.changed,
        seconds=time.perf_counter() - started,
        rows_out=rows,
    )
    return {"part": str(out), "ledger": str(ledger), "report": report}


# Retried once: the only transient failure here is loading the tokenizer.
@task(name="split-part", retries=1)
def split_part(part: str, index: int, paths: RunPaths, config: CurationConfig) -> dict:
    """Split one part's long conversations; cached on its content and the split and tokenizer options."""
    return reuse_or_compute_part(
        paths.cache,
        "split",
        part,
        paths.root,
        lambda: _split(part, paths, config),
        config=(config.split, config.tokenizer),
    )


@flow(name="split")
def split_flow(parts: list[str], paths: RunPaths, config: CurationConfig) -> tuple[list[str], StageReport]:
    """Split every part; a conversation that fits passes unchanged."""
    results = [f.result() for f in [split_part.submit(p, i, paths, config) for i, p in enumerate(parts)]]
    (report,) = merge_stage_reports([r["report"] for r in results]) or [
        stage_report("split", inputs=0, kept=0, dropped=[], rows_out=0)
    ]
    get_run_logger().info("split: %d conversations → %d rows, %s", report.inputs, report.rows_out, report.changed)
    return [r["part"] for r in results], report
