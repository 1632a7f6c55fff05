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
from flows.paths import RunPaths, part_name
from flows.stage_cache import config_digest, file_digest, reuse_or_compute
from schemas import StageReport
from schemas.arrow import EXACT_KEYS_SCHEMA, MINHASH_SIGNATURE_SCHEMA, REMOVALS_SCHEMA
from schemas.config import CurationConfig
from schemas.ledger import Stage


@task(name="exact-keys")
def exact_keys_part(part: str, index: int, paths: RunPaths, config: CurationConfig) -> dict:
    """The part's exact-dedupe keys (hashes and ranks only), cached on its content and position."""
    out = paths.stage_dir("dedupe_exact") / "keys" / f"keys-{index:05d}.parquet"

    def compute() -> dict:
        keys = exact_dedupe_keys(read_conversations_parquet(Path(part)), part=index, config=config.dedupe_exact)
        atomic_write_table(out, keys, schema=EXACT_KEYS_SCHEMA)
        return {"keys": str(out)}

    # The position is in the key: the table's `part` column holds it.
    key_parts = [str(index), file_digest(Path(part)), config_digest(config.dedupe_exact)]
    result = reuse_or_compute(
        paths.cache, "dedupe_exact-keys", key_parts, paths.root, compute, files_of=lambda r: [Path(r["keys"])]
    )
    return result


@task(name="exact-duplicates")
def find_exact_part(keys: list[str], paths: RunPaths, config: CurationConfig) -> str:
    removals = find_exact_duplicates(pl.scan_parquet(keys), config=config.dedupe_exact)
    out = paths.stage_dir("dedupe_exact") / "removals.parquet"
    atomic_write_table(out, removals.to_arrow(), schema=REMOVALS_SCHEMA)
    return str(out)


@task(name="minhash-signatures")
def signatures_part(part: str, index: int, paths: RunPaths, config: CurationConfig) -> dict:
    """The part's MinHash band hashes, cached on its content and position: the costly per-record step."""
    out = paths.stage_dir("dedupe_minhash") / "signatures" / f"signatures-{index:05d}.parquet"

    def compute() -> dict:
        signatures = minhash_signatures(
            read_conversations_parquet(Path(part)), part=index, config=config.dedupe_minhash
        )
        atomic_write_table(out, signatures, schema=MINHASH_SIGNATURE_SCHEMA)
        return {"signatures": str(out)}

    m = config.dedupe_minhash
    # Only what the signatures depend on: threshold and bands_per_pass act in the global step.
    key_parts = [str(index), file_digest(Path(part)), config_digest(m.ngram, m.bands, m.rows, m.seed)]
    result = reuse_or_compute(
        paths.cache,
        "dedupe_minhash-signatures",
        key_parts,
        paths.root,
        compute,
        files_of=lambda r: [Path(r["signatures"])],
    )
    return result


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
    # Ranks of the candidates only, read from the files by a streaming semi-join: never the ranks
    # of every record at once. Signatures and conversations stay on disk, read a part at a time.
    ranks = scanned.drop("band_hashes").join(needed.lazy(), on=["part", "row"], how="semi").collect(engine="streaming")
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
    # Not cached: a filter of one part by the global step's list, as cheap as a cache lookup.
    out = paths.stage_part(stage, part_name(part))
    write_conversations(out, result.kept)
    write_ledger(paths.ledger_part(stage, part_name(part)), result.dropped)
    report = stage_report(
        stage, inputs=len(convs), kept=len(result.kept), dropped=result.dropped, seconds=time.perf_counter() - started
    )
    return {"part": str(out), "report": report}


def _remove_everywhere(
    parts: list[str], removals: str, stage: Stage, paths: RunPaths, per_part: list[dict]
) -> tuple[list[str], StageReport]:
    """Apply the global step's removals to every part; `per_part` (the cached key tasks) counts the reuse."""
    results = [f.result() for f in [remove_part.submit(p, i, removals, stage, paths) for i, p in enumerate(parts)]]
    (report,) = merge_stage_reports([r["report"] for r in results])
    report.parts = len(per_part)
    report.parts_reused = sum(r["reused"] for r in per_part)
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
    removals = find_exact_part([k["keys"] for k in keys], paths, config)
    return _remove_everywhere(parts, removals, "dedupe_exact", paths, keys)


@flow(name="dedupe-minhash")
def dedupe_minhash_flow(parts: list[str], paths: RunPaths, config: CurationConfig) -> tuple[list[str], StageReport]:
    """Remove near duplicates: MinHash LSH candidates verified by exact Jaccard, best copy kept."""
    if not config.dedupe_minhash.enabled or not parts:
        return parts, passthrough_report(parts, "dedupe_minhash")
    signatures = [f.result() for f in [signatures_part.submit(p, i, paths, config) for i, p in enumerate(parts)]]
    removals = find_near_part([s["signatures"] for s in signatures], parts, paths, config)
    return _remove_everywhere(parts, removals, "dedupe_minhash", paths, signatures)
