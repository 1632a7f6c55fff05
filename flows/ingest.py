"""The `ingest` stage of curate: input files → conversation Parquet parts + ingest drops in the ledger."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from prefect import task

from curation.ingest.groups import MAX_TASK_INPUT_BYTES, group_input_files, partition_records
from curation.ingest.read import INGEST, InputListing
from curation.parquet import write_conversations, write_ledger
from curation.runs.stage_reports import merge_stage_reports, stage_report
from flows.execution import run_logger, run_parts
from flows.stage_cache import PartResult, cached_part
from schemas import Dropped, StageReport
from schemas.config import CurationConfig
from schemas.ledger import InputGroup
from schemas.run_layout import RunPaths


def _ingest_group(files: list[Path], group: str, paths: RunPaths, config: CurationConfig) -> PartResult:
    started = time.perf_counter()
    parts: list[str] = []
    dropped: list[Dropped] = []
    kept = 0
    batches = partition_records(
        INGEST.call(files, config=config),
        batch_size=config.run.batch_size,
        max_text_chars=int(config.run.part_max_mb * 1e6),
    )
    for convs, batch_dropped in batches:
        dropped.extend(batch_dropped)
        if convs:
            part = paths.stage_part("ingest", f"{group}-{len(parts):05d}")
            kept += write_conversations(part, convs)
            parts.append(str(part))
    ledger = paths.ledger_part("ingest", group)
    write_ledger(ledger, dropped)
    report = stage_report(
        "ingest", inputs=kept + len(dropped), kept=kept, dropped=dropped, seconds=time.perf_counter() - started
    )
    return PartResult(outputs=tuple(parts), ledger=str(ledger), reports=(report,))


@task(name="ingest-part")
def ingest_part(files: list[Path], paths: RunPaths, config: CurationConfig) -> tuple[PartResult, InputGroup]:
    """Stream one group of input files into parts of `batch_size` conversations (or `part_max_mb` of text) and one
    drop part.

    Cached on the files' paths and bytes, only with RunConfig.keep_raw_intermediates: its parts are the
    input's text before the secrets stage, which the cache must not keep. Without it, a re-run parses
    the group again, into the same bytes, so the stages after it still reuse their cached parts.
    """
    inputs = [(str(f), f) for f in files]
    # The group's outputs are named by its content, so a group keeps its names when others are added.
    group = INGEST.config_key(config, {str(f): str(f.stat().st_size) for f in files})[:16]
    result = cached_part(
        INGEST,
        paths=paths if config.run.keep_raw_intermediates else replace(paths, cache_root=None),
        config=config,
        inputs=inputs,
        compute=lambda: _ingest_group(files, group, paths, config),
    )
    report = result.report
    run_logger().info(
        "ingest %s: %d file(s), %d records → %d conversations, %d dropped%s",
        group,
        len(files),
        report.inputs,
        report.kept,
        report.dropped,
        " (reused)" if result.reused else "",
    )
    input_group = InputGroup(
        group=group,
        files=len(files),
        bytes=sum(f.stat().st_size for f in files),
        first_file=str(files[0]),
        last_file=str(files[-1]),
        reused=result.reused,
    )
    return result, input_group


def ingest_stage(
    listing: InputListing, paths: RunPaths, config: CurationConfig
) -> tuple[list[str], StageReport, list[InputGroup]]:
    """Read every input of `listing` (list_inputs: pages, dumps, JSONL, Alpaca, messages) into conversation
    Parquet parts."""
    for repeated in listing.repeated:
        run_logger().warning(repeated)
    # Entries that are no readable file (FIFOs, dangling links...) are drops found while listing:
    # they go to the ledger and the counts like any other, and no task ever opens them.
    listing_reports = []
    if listing.dropped:
        write_ledger(paths.ledger_part("ingest", "inputs"), listing.dropped)
        listing_reports.append(stage_report("ingest", inputs=len(listing.dropped), kept=0, dropped=listing.dropped))
    # Thousands of records per task: each task run costs ~42 ms inside curate (docs/defaults.md#run).
    groups = group_input_files(listing.files, target_files=config.run.batch_size, max_bytes=MAX_TASK_INPUT_BYTES)
    results = run_parts(ingest_part, [(g, paths, config) for g in groups])
    parts = [p for result, _ in results for p in result.outputs]
    (report,) = merge_stage_reports([*listing_reports, *(result.report for result, _ in results)]) or [
        stage_report("ingest", inputs=0, kept=0, dropped=[])
    ]
    report = report.model_copy(update={"warnings": list(listing.repeated)})
    return parts, report, [group for _, group in results]
