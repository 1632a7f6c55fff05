"""The `split` stage of curate: long conversations cut into pieces of whole rounds that fit max_tokens."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import task

from curation.parquet import read_conversations_parquet
from curation.runs.stage_reports import merge_stage_reports, stage_report
from curation.shards.split import SPLIT
from curation.shards.tokenizer_load import batch_token_counter
from flows.execution import run_parts
from flows.parts import PartResult, write_part
from flows.resources import tokenizer_for
from flows.stage_cache import cached_part
from schemas import StageReport
from schemas.config import CurationConfig
from schemas.run_layout import RunPaths, part_name


def _split(part: str, paths: RunPaths, config: CurationConfig) -> PartResult:
    started = time.perf_counter()
    convs = read_conversations_parquet(Path(part))
    count_tokens = batch_token_counter(tokenizer_for(config.tokenizer.spec))
    result = SPLIT.call(convs, config=config, count_tokens=count_tokens)
    report = stage_report(
        "split",
        inputs=len(convs),
        # A conversation kept whole or as pieces counts once; its pieces are the rows.
        kept=sum(1 for c in result.kept if not c.split_index),
        dropped=result.dropped,
        changed=result.changed,
        seconds=time.perf_counter() - started,
        rows_out=len(result.kept),
    )
    return write_part(paths, "split", part, result.kept, result.dropped, [report])


# Retried once: the only transient failure here is loading the tokenizer.
@task(name="split-part", retries=1)
def split_part(part: str, paths: RunPaths, config: CurationConfig) -> PartResult:
    """Split one part's long conversations; cached on its content and the split and tokenizer options."""
    return cached_part(
        SPLIT,
        paths=paths,
        config=config,
        inputs=[(part_name(part), Path(part))],
        compute=lambda: _split(part, paths, config),
    )


def split_stage(parts: list[str], paths: RunPaths, config: CurationConfig) -> tuple[list[str], StageReport]:
    """Split every part; a conversation that fits passes unchanged."""
    results = run_parts(split_part, [(p, paths, config) for p in parts])
    (report,) = merge_stage_reports([r.report for r in results]) or [
        stage_report("split", inputs=0, kept=0, dropped=[], rows_out=0)
    ]
    return [r.output for r in results], report
