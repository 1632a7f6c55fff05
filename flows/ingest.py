"""The `ingest` flow: input files → conversation Parquet parts + ingest drops in the ledger."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from prefect import flow, get_run_logger, task

from curation.ingest import list_input_files, read_conversations
from curation.io import partition_records, write_conversations, write_ledger
from curation.reports import merge_stage_reports, stage_report
from flows.paths import RunPaths
from flows.stage_cache import config_digest, file_digest, reuse_or_compute
from schemas import Dropped, StageReport
from schemas.config import CurationConfig
from schemas.ledger import InputGroup

# A task reads at most this much input, so one task covers one big dump or many small pages.
MAX_TASK_INPUT_BYTES = 64 * 1024 * 1024


def group_input_files(files: list[Path], *, target_files: int, max_bytes: int) -> list[list[Path]]:
    """Group files into task-sized lists, in order, with content-defined boundaries.

    A group ends after a file whose name hashes to 0 modulo `target_files` (so groups hold
    `target_files` files on average), or when it reaches 4 x `target_files` files or `max_bytes`.
    Boundaries hang on file names, not positions: files added to an input folder change only the
    groups they land in, and every other group keeps its content and so its cache entry.
    """
    groups: list[list[Path]] = [[]]
    size = 0
    for f in files:
        groups[-1].append(f)
        size += f.stat().st_size
        name_hash = int.from_bytes(hashlib.blake2b(f.name.encode(), digest_size=8).digest(), "big")
        if name_hash % target_files == 0 or len(groups[-1]) >= 4 * target_files or size >= max_bytes:
            groups.append([])
            size = 0
    return [g for g in groups if g]


def _ingest_group(files: list[Path], group: str, paths: RunPaths, config: CurationConfig) -> dict:
    started = time.perf_counter()
    parts: list[str] = []
    dropped: list[Dropped] = []
    kept = 0
    records = (r for file in files for r in read_conversations(file, config=config.ingest))
    for convs, batch_dropped in partition_records(records, batch_size=config.run.batch_size):
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
    return {"parts": parts, "ledger": str(ledger), "report": report}


@task(name="ingest-files")
def ingest_files(files: list[Path], paths: RunPaths, config: CurationConfig) -> dict:
    """Stream a group of input files into parts of `batch_size` conversations and one drop part.

    Cached on the files' names and bytes: a group read by an earlier run is not parsed again.
    """
    key_parts = [config_digest(config.ingest, config.run.batch_size)]
    key_parts += [f"{f}\0{f.stat().st_size}\0{file_digest(f)}" for f in files]
    # The group's outputs are named by its content, so a group keeps its names when others are added.
    group = paths.cache.key("ingest", *key_parts)[:16]
    result = reuse_or_compute(
        paths.cache,
        "ingest",
        key_parts,
        paths.root,
        lambda: _ingest_group(files, group, paths, config),
        files_of=lambda r: [*map(Path, r["parts"]), Path(r["ledger"])],
    )
    report = result["report"]
    result["group"] = InputGroup(
        group=group,
        files=len(files),
        bytes=sum(f.stat().st_size for f in files),
        first_file=str(files[0]),
        last_file=str(files[-1]),
        reused=result["reused"],
    )
    get_run_logger().info(
        "ingest %s: %d file(s), %d records → %d conversations, %d dropped%s",
        group,
        len(files),
        report.inputs,
        report.kept,
        report.dropped,
        " (reused)" if result["reused"] else "",
    )
    return result


@flow(name="ingest")
def ingest_flow(
    inputs: list[Path], paths: RunPaths, config: CurationConfig
) -> tuple[list[str], StageReport, list[InputGroup]]:
    """Read every input (pages, dumps, JSONL, Alpaca, messages) into conversation Parquet parts."""
    files = [f for path in inputs for f in list_input_files(path)]
    # Thousands of records per task: each task run costs ~5 ms and a server row (prefect.md).
    groups = group_input_files(files, target_files=config.run.batch_size, max_bytes=MAX_TASK_INPUT_BYTES)
    results = [f.result() for f in [ingest_files.submit(g, paths, config) for g in groups]]
    parts = [p for r in results for p in r["parts"]]
    (report,) = merge_stage_reports([r["report"] for r in results]) or [
        stage_report("ingest", inputs=0, kept=0, dropped=[])
    ]
    return parts, report, [r["group"] for r in results]
