"""The `dedupe_exact` and `dedupe_minhash` stages of curate: keys per part, one run-wide decision, removal per part.

Only small tables cross the run-wide step (hashes, band hashes, ranks), as Parquet, so the
per-part work runs in parallel tasks and the run-wide step is a polars query over files.
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
import pyarrow as pa
from prefect import task

from curation.dedupe.common import removals_for_part, remove_listed_rows
from curation.dedupe.exact import EXACT_DUPLICATES, EXACT_KEYS
from curation.dedupe.minhash import MINHASH_SIGNATURES, NEAR_DUPLICATES
from curation.parquet import (
    atomic_write_table,
    read_conversation_table,
    read_conversations_parquet,
    write_conversation_table,
)
from curation.runs.stage_reports import merge_stage_reports, passthrough_report, stage_report
from curation.stage import Stage as CurationStage
from flows.execution import run_parts, run_step
from flows.parts import PartResult, write_part
from flows.stage_cache import cached_part
from schemas import StageReport
from schemas.arrow import EXACT_KEYS_SCHEMA, MINHASH_SIGNATURE_SCHEMA, REMOVALS_SCHEMA
from schemas.config import CurationConfig
from schemas.ledger import Stage
from schemas.run_layout import RunPaths


def _keys_table_part(
    stage: CurationStage[pa.Table],
    part: str,
    index: int,
    paths: RunPaths,
    config: CurationConfig,
    *,
    folder: Path,
    schema: pa.Schema,
) -> PartResult:
    """One part's small table for a run-wide step (keys or signatures) in `folder`, cached on the
    part's content and position: the table's `part` column holds the position."""
    out = folder / f"{folder.name}-{index:05d}.parquet"

    def compute() -> PartResult:
        rows = stage.call(read_conversations_parquet(Path(part)), part=index, config=config)
        atomic_write_table(out, rows, schema=schema)
        return PartResult(outputs=(str(out),))

    return cached_part(stage, paths=paths, config=config, inputs=[(str(index), Path(part))], compute=compute)


@task(name="exact-keys-part")
def exact_keys_part(part: str, index: int, paths: RunPaths, config: CurationConfig) -> PartResult:
    """The part's exact-dedupe keys (hashes and ranks only)."""
    folder = paths.stage_dir("dedupe_exact") / "keys"
    return _keys_table_part(EXACT_KEYS, part, index, paths, config, folder=folder, schema=EXACT_KEYS_SCHEMA)


@task(name="exact-duplicates-global")
def exact_duplicates_global(keys: list[str], paths: RunPaths, config: CurationConfig) -> str:
    """Run-wide: the records that repeat another, over every part's keys."""
    removals = EXACT_DUPLICATES.call(pl.scan_parquet(keys), config=config)
    out = paths.stage_dir("dedupe_exact") / "removals.parquet"
    atomic_write_table(out, removals.to_arrow(), schema=REMOVALS_SCHEMA)
    return str(out)


@task(name="minhash-signatures-part")
def minhash_signatures_part(part: str, index: int, paths: RunPaths, config: CurationConfig) -> PartResult:
    """The part's MinHash band hashes: the costly per-record step."""
    folder = paths.stage_dir("dedupe_minhash") / "signatures"
    return _keys_table_part(
        MINHASH_SIGNATURES, part, index, paths, config, folder=folder, schema=MINHASH_SIGNATURE_SCHEMA
    )


@task(name="near-duplicates-global")
def near_duplicates_global(signatures: list[str], parts: list[str], paths: RunPaths, config: CurationConfig) -> str:
    """Run-wide: candidates from the LSH bands, then exact Jaccard on the shingles of candidates only."""
    removals = NEAR_DUPLICATES.call(signatures, parts, config=config)
    out = paths.stage_dir("dedupe_minhash") / "removals.parquet"
    atomic_write_table(out, removals.to_arrow(), schema=REMOVALS_SCHEMA)
    return str(out)


@task(name="remove-duplicates-part")
def remove_duplicates_part(part: str, index: int, removals: str, stage: Stage, paths: RunPaths) -> PartResult:
    """Write one part without the records the run-wide step removed; the removed go to the ledger."""
    started = time.perf_counter()
    table = read_conversation_table(Path(part))
    kept, dropped = remove_listed_rows(table, removals_for_part(pl.read_parquet(removals), index), stage=stage)
    # Not cached: a filter of one part by the run-wide list, as cheap as a cache lookup.
    report = stage_report(
        stage, inputs=table.num_rows, kept=kept.num_rows, dropped=dropped, seconds=time.perf_counter() - started
    )
    return write_part(paths, stage, part, kept, dropped, [report], write=write_conversation_table)


def _remove_everywhere(
    parts: list[str], removals: str, stage: Stage, paths: RunPaths, per_part: list[PartResult]
) -> tuple[list[str], StageReport]:
    """Apply the run-wide step's removals to every part; `per_part` (the cached key tasks) counts the reuse."""
    results = run_parts(remove_duplicates_part, [(p, i, removals, stage, paths) for i, p in enumerate(parts)])
    (report,) = merge_stage_reports([r.report for r in results])
    report.parts = len(per_part)
    report.parts_reused = sum(r.reused for r in per_part)
    return [r.output for r in results], report


def dedupe_exact_stage(parts: list[str], paths: RunPaths, config: CurationConfig) -> tuple[list[str], StageReport]:
    """Remove exact duplicates, regenerated answers to the same prompts, and openings of longer conversations."""
    if not config.dedupe_exact.enabled or not parts:
        return parts, passthrough_report(parts, "dedupe_exact")
    keys = run_parts(exact_keys_part, [(p, i, paths, config) for i, p in enumerate(parts)])
    removals = run_step(exact_duplicates_global, [k.output for k in keys], paths, config)
    return _remove_everywhere(parts, removals, "dedupe_exact", paths, keys)


def dedupe_minhash_stage(parts: list[str], paths: RunPaths, config: CurationConfig) -> tuple[list[str], StageReport]:
    """Remove near duplicates: MinHash LSH candidates verified by exact Jaccard, best copy kept."""
    if not config.dedupe_minhash.enabled or not parts:
        return parts, passthrough_report(parts, "dedupe_minhash")
    signatures = run_parts(minhash_signatures_part, [(p, i, paths, config) for i, p in enumerate(parts)])
    removals = run_step(near_duplicates_global, [s.output for s in signatures], parts, paths, config)
    return _remove_everywhere(parts, removals, "dedupe_minhash", paths, signatures)
