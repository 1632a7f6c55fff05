"""The contamination flows: benchmark items indexed once, every part checked, one report for reviewers.

`contamination_check_flow` is the stage `curate` runs between near-dedupe and split;
`contamination_flow` runs the same check on its own over a folder of conversation parts.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from curation.benchmarks import read_benchmark_items_parquet, read_benchmarks, write_benchmark_items
from curation.contamination import BenchmarkIndex, build_benchmark_index, check_contamination
from curation.contamination_report import (
    build_contamination_report,
    contamination_summary_markdown,
    write_contamination_report,
    write_findings,
)
from curation.embedding_cache import CachedEmbeddings, cached_embeddings, model_cache_dir
from curation.io import atomic_target, atomic_write_text, read_conversations_parquet, write_conversations, write_ledger
from curation.reports import merge_stage_reports, passthrough_report, stage_report
from curation.reviewer_decisions import decisions_by_conversation, read_decisions
from flows.config_file import check_contamination_resources
from flows.paths import RunPaths, new_run_id, part_name, publish_parts
from flows.resources import cache_dir, contamination_devices, embed_normalized, embedder_for, embedding_dim
from flows.stage_cache import file_digest, reuse_or_compute_part
from schemas import StageReport
from schemas.config import CurationConfig
from schemas.contamination import ReviewerDecision

# Shown in every report: what the defaults measured on real data (docs/contamination.md).
CALIBRATION = (
    "Measured with the default settings (bench/contamination.py, docs/contamination.md): recall 99-100% on real "
    "benchmark questions planted verbatim and 100% on light edits inside real ShareGPT conversations; on 2,952 "
    "untouched real conversations 25 (0.85%) were flagged, of which 6 near-verbatim copies, 10 rephrased "
    "(7 of them one generic prompt) and 9 similar-only (same topic, different question): review the "
    "'similar' pairs first."
)


def embed_with_cache(texts: list[str], config: CurationConfig) -> CachedEmbeddings:
    """Vectors for `texts`, reusing and extending the on-disk cache for the configured model."""
    c = config.contamination
    device, _ = contamination_devices(c.device)
    model = embedder_for(c.model, device)
    dim = embedding_dim(model)
    folder = model_cache_dir(cache_dir() / "embeddings", c.model, dim) if c.cache_embeddings else None
    return cached_embeddings(texts, embed=embed_normalized(model, c.embed_batch_size), folder=folder, dim=dim)


@lru_cache(maxsize=2)
def _benchmark_index(items_path: str, vectors_path: str, config: CurationConfig) -> BenchmarkIndex:
    _, gpu = contamination_devices(config.contamination.device)
    items = read_benchmark_items_parquet(Path(items_path))
    return build_benchmark_index(items, np.load(vectors_path), config=config.contamination, gpu=gpu)


@task(name="contamination-benchmarks", retries=1, retry_delay_seconds=2)
def index_benchmarks(paths: RunPaths, config: CurationConfig) -> dict:
    """Read every benchmark's items and embed them (retried once: model loading can fail transiently)."""
    c = config.contamination
    items = read_benchmarks(c.benchmark_specs(), index_answers=c.index_answers)
    folder = paths.stage_dir("contamination")
    items_path, vectors_path = folder / "benchmark_items.parquet", folder / "benchmark_vectors.npy"
    write_benchmark_items(items_path, items)
    cached = embed_with_cache([i.text for i in items], config)
    with atomic_target(vectors_path) as tmp, open(tmp, "wb") as f:
        np.save(f, cached.vectors)
    get_run_logger().info(
        "benchmarks: %d items, %d embedded now, %d from the cache", len(items), cached.embedded, cached.reused
    )
    return {
        "items": str(items_path),
        "vectors": str(vectors_path),
        "embedded": cached.embedded,
        # The check's cache key: a changed benchmark list or file re-checks every part.
        "items_digest": file_digest(items_path),
    }


@task(name="contamination-part")
def check_part(
    part: str,
    index: int,
    bench: dict,
    paths: RunPaths,
    config: CurationConfig,
    decisions: dict[str, list[ReviewerDecision]],
) -> dict:
    """Check one part: write the kept conversations, the ledger rows and every turn's finding.

    Cached on the part's content, the contamination options, the benchmark items and the
    reviewers' decisions file.
    """
    c = config.contamination
    decisions_digest = file_digest(Path(c.decisions_file)) if c.decisions_file else ""
    return reuse_or_compute_part(
        paths.cache,
        "contamination",
        part,
        paths.root,
        lambda: _check(part, bench, paths, config, decisions),
        config=(c,),
        extra_key=(bench["items_digest"], decisions_digest),
        extra_files=("findings",),
    )


def _check(
    part: str, bench: dict, paths: RunPaths, config: CurationConfig, decisions: dict[str, list[ReviewerDecision]]
) -> dict:
    started = time.perf_counter()
    convs = read_conversations_parquet(Path(part))
    result = check_contamination(
        convs,
        index=_benchmark_index(bench["items"], bench["vectors"], config),
        embed=lambda texts: embed_with_cache(texts, config),
        config=config.contamination,
        decisions=decisions,
    )
    name = part_name(part)
    out = paths.stage_part("contamination", name)
    write_conversations(out, result.kept)
    ledger = paths.ledger_part("contamination", name)
    write_ledger(ledger, result.dropped)
    findings = paths.stage_dir("contamination") / "findings" / f"part-{name}.parquet"
    write_findings(findings, result.findings)
    report = stage_report(
        "contamination",
        inputs=len(convs),
        kept=len(result.kept),
        dropped=result.dropped,
        changed=result.changed,
        seconds=time.perf_counter() - started,
    )
    applied = [[*key, effect] for key, effect in result.decisions_applied.items()]
    return {"part": str(out), "ledger": str(ledger), "findings": str(findings), "report": report, "applied": applied}


@flow(name="contamination-check")
def contamination_check_flow(
    parts: list[str], paths: RunPaths, config: CurationConfig
) -> tuple[list[str], StageReport, dict[str, str]]:
    """Drop or cut conversations that contain benchmark items; write the reviewers' report."""
    c = config.contamination
    logger = get_run_logger()
    if not c.enabled or not c.benchmark_specs() or not parts:
        why = "disabled" if not c.enabled else "no benchmarks configured" if parts else "no input"
        logger.warning("contamination check skipped: %s", why)
        return parts, passthrough_report(parts, "contamination"), {"skipped": why}
    decisions = read_decisions(Path(c.decisions_file)) if c.decisions_file else []
    grouped = decisions_by_conversation(decisions)
    bench = index_benchmarks(paths, config)
    results = [check_part(p, i, bench, paths, config, grouped) for i, p in enumerate(parts)]
    (report,) = merge_stage_reports([r["report"] for r in results])
    report.changed["benchmark_items_embedded"] = bench["embedded"]
    items = read_benchmark_items_parquet(Path(bench["items"]))
    device, gpu = contamination_devices(c.device)
    summary = build_contamination_report(
        [Path(r["findings"]) for r in results],
        items,
        config=c,
        run_id=paths.run_id,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        device=f"embeddings {device}, FAISS {'GPU' if gpu else 'CPU'}",
        conversations_checked=report.inputs,
        decisions=decisions,
        decisions_applied={tuple(a[:3]): a[3] for r in results for a in r["applied"]},
        calibration=CALIBRATION,
    )
    report_paths = write_contamination_report(summary, paths.root / "contamination")
    create_markdown_artifact(
        markdown=contamination_summary_markdown(summary, report_paths),
        key="contamination-summary",
        description="contamination check summary and report files",
    )
    create_table_artifact(
        table=[row.model_dump() for row in summary.counts] or [{"benchmark": "-", "flagged_turns": 0}],
        key="contamination-counts",
        description="flagged turns and removed conversations per benchmark and source",
    )
    logger.info(
        "contamination: %d conversations, %d flagged turns, %d removed, %d cut → %s",
        report.inputs,
        summary.flagged_turns,
        report.dropped,
        report.changed.get("conversations_cut", 0),
        report_paths["html"],
    )
    return [r["part"] for r in results], report, report_paths


@flow(name="contamination", log_prints=True)
def contamination_flow(
    conversations: Path,
    out_dir: Path = Path("runs"),
    config: CurationConfig = CurationConfig(),
    run_id: str | None = None,
) -> dict:
    """Check a folder of curated conversation parts (a curate run's conversations/) against benchmarks."""
    parts = sorted(str(p) for p in Path(conversations).glob("part-*.parquet"))
    check_contamination_resources(config, require_benchmarks=True)
    paths = RunPaths.create(Path(out_dir), run_id or new_run_id())
    atomic_write_text(paths.config_json, config.model_dump_json(indent=2))
    kept_parts, report, report_paths = contamination_check_flow(parts, paths, config)
    publish_parts(kept_parts, paths.conversations_dir)
    if report.inputs != report.kept + report.dropped:
        raise RuntimeError(f"contamination: inputs {report.inputs} != kept {report.kept} + dropped {report.dropped}")
    summary = {
        "run_id": paths.run_id,
        "inputs": report.inputs,
        "kept": report.kept,
        "dropped": report.dropped,
        "changed": report.changed,
        "conversations": str(paths.conversations_dir),
        "ledger": str(paths.ledger_dir),
        **{f"report_{k}": v for k, v in report_paths.items()},
    }
    atomic_write_text(paths.report_json, json.dumps(summary, indent=2))
    return summary
