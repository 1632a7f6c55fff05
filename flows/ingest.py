"""The `ingest` flow: input files → conversation Parquet parts + ingest drops in the ledger."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow, get_run_logger, task

from curation.ingest import list_input_files, read_conversations
from curation.io import partition_records, write_conversations, write_ledger
from curation.reports import merge_stage_reports, stage_report
from flows.paths import RunPaths
from schemas import Dropped, StageReport
from schemas.config import CurationConfig

# A task reads at most this much input, so one task covers one big dump or many small pages.
MAX_TASK_INPUT_BYTES = 64 * 1024 * 1024


def group_input_files(files: list[Path], *, max_files: int, max_bytes: int) -> list[list[Path]]:
    """Group files into task-sized lists, in order: many small page files per task, a big dump alone."""
    groups: list[list[Path]] = [[]]
    size = 0
    for f in files:
        if groups[-1] and (len(groups[-1]) >= max_files or size >= max_bytes):
            groups.append([])
            size = 0
        groups[-1].append(f)
        size += f.stat().st_size
    return [g for g in groups if g]


@task(name="ingest-files")
def ingest_files(files: list[Path], group_index: int, paths: RunPaths, config: CurationConfig) -> dict:
    """Stream a group of input files into parts of `batch_size` conversations and one drop part."""
    started = time.perf_counter()
    parts: list[str] = []
    dropped: list[Dropped] = []
    kept = 0
    records = (r for file in files for r in read_conversations(file, config=config.ingest))
    for convs, batch_dropped in partition_records(records, batch_size=config.run.batch_size):
        dropped.extend(batch_dropped)
        if convs:
            part = paths.stage_part("ingest", f"{group_index:05d}-{len(parts):05d}")
            kept += write_conversations(part, convs)
            parts.append(str(part))
    write_ledger(paths.ledger_part("ingest", f"{group_index:05d}"), dropped)
    report = stage_report(
        "ingest", inputs=kept + len(dropped), kept=kept, dropped=dropped, seconds=time.perf_counter() - started
    )
    get_run_logger().info(
        "ingest: %d file(s), %d records → %d conversations, %d dropped", len(files), report.inputs, kept, len(dropped)
    )
    return {"parts": parts, "report": report}


@flow(name="ingest")
def ingest_flow(inputs: list[Path], paths: RunPaths, config: CurationConfig) -> tuple[list[str], StageReport]:
    """Read every input (pages, dumps, JSONL, Alpaca, messages) into conversation Parquet parts."""
    files = [f for path in inputs for f in list_input_files(path)]
    # Thousands of records per task: each task run costs ~5 ms and a server row (prefect.md).
    groups = group_input_files(files, max_files=config.run.batch_size, max_bytes=MAX_TASK_INPUT_BYTES)
    results = [f.result() for f in [ingest_files.submit(g, i, paths, config) for i, g in enumerate(groups)]]
    parts = [p for r in results for p in r["parts"]]
    (report,) = merge_stage_reports([r["report"] for r in results]) or [
        stage_report("ingest", inputs=0, kept=0, dropped=[])
    ]
    return parts, report
