"""The `dedupe_exact` and `dedupe_minhash` flows: keys per part, one global decision, removal per part.

Only small tables cross the global step (hashes, band hashes, ranks), as Parquet, so the
per-part work runs in parallel tasks and the global step is a polars query over files.
"""

from __future__ import annotations

import time
from pathlib import Path

import polars as pl
from prefect import flow, get_run_logger, task

from curation.dedupe_common import removals_for_part, remove_listed
from curation.dedupe_exact import exact_dedupe_keys, find_exact_duplicates
from curation.dedupe_minhash import (
    conversation_shingles,
    lsh_candidate_pairs,
    minhash_signatures,
    near_duplicate_removals,
)
from curation.io import atomic_write_table, read_conversations_parquet, write_conversations, write_ledger
from curation.reports import merge_stage_reports, passthrough_report, stage_report
from flows.paths import RunPaths
from schemas import StageReport
from schemas.arrow import EXACT_KEYS_SCHEMA, MINHASH_SIGNATURE_SCHEMA, REMOVALS_SCHEMA
from schemas.config import CurationConfig
from schemas.ledger import Stage


@task(name="exact-keys")
def exact_keys_part(part: str, index: int, paths: RunPaths, config: CurationConfig) -> str:
    keys = exact_dedupe_keys(read_conversations_parquet(Path(part)), part=index, config=config.dedupe_exact)
    out = paths.stage_dir("dedupe_exact") / "keys" / f"keys-{index:05d}.parquet"
    atomic_write_table(out, keys, schema=EXACT_KEYS_SCHEMA)
    return str(out)


@task(name="exact-duplicates")
def find_exact_part(keys: list[str], paths: RunPaths, config: CurationConfig) -> str:
    removals = find_exact_duplicates(pl.scan_parquet(keys), config=config.dedupe_exact)
    out = paths.stage_dir("dedupe_exact") / "removals.parquet"
    atomic_write_table(out, removals.to_arrow(), schema=REMOVALS_SCHEMA)
    return str(out)


@task(name="minhash-signatures")
def signatures_part(part: str, index: int, paths: RunPaths, config: CurationConfig) -> str:
    signatures = minhash_signatures(read_conversations_parquet(Path(part)), part=index, config=config.dedupe_minhash)
    out = paths.stage_dir("dedupe_minhash") / "signatures" / f"signatures-{index:05d}.parquet"
    atomic_write_table(out, signatures, schema=MINHASH_SIGNATURE_SCHEMA)
    return str(out)


@task(name="near-duplicates")
def find_near_part(signatures: list[str], parts: list[str], paths: RunPaths, config: CurationConfig) -> str:
    """Candidates from the LSH bands, then exact Jaccard on the shingles of candidates only."""
    scanned = pl.scan_parquet(signatures)
    pairs = lsh_candidate_pairs(scanned, config=config.dedupe_minhash)
    needed = pl.concat([pairs.select(part="part_a", row="row_a"), pairs.select(part="part_b", row="row_b")]).unique()
    shingles = {}
    for (index,), rows in needed.group_by(["part"], maintain_order=True):
        convs = read_conversations_parquet(Path(parts[index]))
        for row in rows["row"]:
            shingles[(index, row)] = conversation_shingles(convs[row], ngram=config.dedupe_minhash.ngram)
    ranks = scanned.drop("band_hashes").collect()
    removals = near_duplicate_removals(pairs, shingles, ranks, config=config.dedupe_minhash)
    out = paths.stage_dir("dedupe_minhash") / "removals.parquet"
    atomic_write_table(out, removals.to_arrow(), schema=REMOVALS_SCHEMA)
    return str(out)


@task(name="remove-duplicates")
def remove_part(part: str, index: int, removals: str, stage: Stage, paths: RunPaths) -> dict:
    """Write one part without the records the global step removed; the removed go to the ledger."""
    started = time.perf_counter()
    convs = read_conversations_parquet(Path(part))
    result = remove_listed(convs, removals_for_part(pl.read_parquet(removals), index), stage=stage)
    out = paths.stage_part(stage, f"{index:05d}")
    write_conversations(out, result.kept)
    write_ledger(paths.ledger_part(stage, f"{index:05d}"), result.dropped)
    report = stage_report(
        stage, inputs=len(convs), kept=len(result.kept), dropped=result.dropped, seconds=time.perf_counter() - started
    )
    return {"part": str(out), "report": report}


def _remove_everywhere(parts: list[str], removals: str, stage: Stage, paths: RunPaths) -> tuple[list[str], StageReport]:
    results = [f.result() for f in [remove_part.submit(p, i, removals, stage, paths) for i, p in enumerate(parts)]]
    (report,) = merge_stage_reports([r["report"] for r in results])
    get_run_logger().info(
        "%s: %d in, %d kept, %d dropped %s", stage, report.inputs, report.kept, report.dropped, report.dropped_by_reason
    )
    return [r["part"] for r in results], report


@flow(name="dedupe-exact")
def dedupe_exact_flow(parts: list[str], paths: RunPaths, config: CurationConfig) -> tuple[list[str], StageReport]:
    """Remove exact duplicates, regenerated answers to the same prompts, and openings of longer conversations."""
    if not config.dedupe_exact.enabled or not parts:
        return parts, passthrough_report(parts, "dedupe_exact")
    keys = [f.result() for f in [exact_keys_part.submit(p, i, paths, config) for i, p in enumerate(parts)]]
    removals = find_exact_part(keys, paths, config)
    return _remove_everywhere(parts, removals, "dedupe_exact", paths)


@flow(name="dedupe-minhash")
def dedupe_minhash_flow(parts: list[str], paths: RunPaths, config: CurationConfig) -> tuple[list[str], StageReport]:
    """Remove near duplicates: MinHash LSH candidates verified by exact Jaccard, best copy kept."""
    if not config.dedupe_minhash.enabled or not parts:
        return parts, passthrough_report(parts, "dedupe_minhash")
    signatures = [f.result() for f in [signatures_part.submit(p, i, paths, config) for i, p in enumerate(parts)]]
    removals = find_near_part(signatures, parts, paths, config)
    return _remove_everywhere(parts, removals, "dedupe_minhash", paths)
