"""The contamination flows: benchmark items indexed once, every part checked, one report for reviewers.

`contamination_check_stage` is the stage `curate` runs between near-dedupe and split;
`contamination_flow` runs the same check on its own over a folder of conversation parts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
from prefect import flow, task

from curation.contamination.benchmarks import (
    read_benchmark_items_parquet,
    read_benchmarks,
    reference_answers,
    write_benchmark_items,
)
from curation.contamination.check import BENCHMARK_INDEX, CONTAMINATION, BenchmarkIndex, benchmark_views
from curation.contamination.decisions import decisions_by_conversation, read_decisions
from curation.contamination.report import (
    CONTAMINATION_REPORT,
    SUMMARY_TOP_PAIRS,
    contamination_summary_markdown,
    top_pair_rows,
    write_contamination_report,
    write_findings,
)
from curation.parquet import read_conversations_parquet
from curation.runs.stage_reports import merge_stage_reports, passthrough_report, stage_report
from flows.execution import (
    publish_failure,
    publish_link,
    publish_markdown,
    publish_table,
    run_in_turn,
    run_logger,
    run_step,
)
from flows.parts import PartResult, write_part
from flows.resources import check_contamination_resources, contamination_devices, embed_with_cache
from flows.run_files import file_links
from flows.stage_cache import cached_part
from schemas import StageReport
from schemas.config import CurationConfig
from schemas.contamination import ReviewerDecision
from schemas.files import atomic_target, atomic_write_text, file_digest
from schemas.run_layout import RunPaths, conversation_parts, new_run_id, part_name, publish_parts

# The contamination-top-pairs table: more rows than the summary's, still one screen of the UI.
TOP_PAIRS_TABLE = 5 * SUMMARY_TOP_PAIRS


@dataclass(frozen=True)
class BenchmarkFiles:
    """The run's benchmark items and their vectors, as files beside the run's stages."""

    items: str
    # Every question's reference answer (the specs' answer_fields), shown beside its pairs in the report.
    answers: str
    # One row per item, then one per second view (curation.contamination.check.benchmark_views).
    vectors: str
    # Items embedded now (not found in the embedding cache).
    embedded: int
    # The check's cache key: a changed benchmark list or file re-checks every part.
    items_digest: str


@lru_cache(maxsize=2)
def _benchmark_index(items_path: str, vectors_path: str, config: CurationConfig) -> BenchmarkIndex:
    _, gpu = contamination_devices(config.contamination.device)
    items = read_benchmark_items_parquet(Path(items_path))
    vectors = np.load(vectors_path)
    return BENCHMARK_INDEX.call(
        items, vectors[: len(items)], config=config, gpu=gpu, view_vectors=vectors[len(items) :]
    )


@task(name="contamination-benchmarks-global", retries=1, retry_delay_seconds=2)
def index_benchmarks_global(paths: RunPaths, config: CurationConfig) -> BenchmarkFiles:
    """Run-wide: read every benchmark's items and embed them (retried once: model loading can fail transiently)."""
    c = config.contamination
    # answers are read even where they are not indexed: the report shows them beside their questions
    read = read_benchmarks(c.benchmark_specs(), index_answers=True)
    items = read if c.index_answers else [i for i in read if i.kind == "question"]
    folder = paths.stage_dir("contamination")
    items_path, vectors_path = folder / "benchmark_items.parquet", folder / "benchmark_vectors.npy"
    answers_path = folder / "benchmark_answers.parquet"
    write_benchmark_items(items_path, items)
    write_benchmark_items(answers_path, [i for i in read if i.kind == "answer"])
    views = benchmark_views(items, c)
    cached = embed_with_cache([i.text for i in items] + [text for _, _, text in views], config.contamination)
    with atomic_target(vectors_path) as tmp, open(tmp, "wb") as f:
        np.save(f, cached.vectors)
    run_logger().info(
        "benchmarks: %d items, %d embedded now, %d from the cache", len(items), cached.embedded, cached.reused
    )
    return BenchmarkFiles(
        items=str(items_path),
        answers=str(answers_path),
        vectors=str(vectors_path),
        embedded=cached.embedded,
        items_digest=file_digest(items_path),
    )


def _check(
    part: str,
    bench: BenchmarkFiles,
    paths: RunPaths,
    config: CurationConfig,
    decisions: dict[str, list[ReviewerDecision]],
) -> PartResult:
    started = time.perf_counter()
    convs = read_conversations_parquet(Path(part))
    result = CONTAMINATION.call(
        convs,
        config=config,
        index=_benchmark_index(bench.items, bench.vectors, config),
        embed=lambda texts: embed_with_cache(texts, config.contamination),
        decisions=decisions,
    )
    findings = paths.stage_dir("contamination") / "findings" / f"part-{part_name(part)}.parquet"
    write_findings(findings, result.findings)
    report = stage_report(
        "contamination",
        inputs=len(convs),
        kept=len(result.kept),
        dropped=result.dropped,
        changed=result.changed,
        seconds=time.perf_counter() - started,
    )
    return replace(
        write_part(paths, "contamination", part, result.kept, result.dropped, [report]),
        findings=str(findings),
        decisions_applied=tuple((*key, effect) for key, effect in result.decisions_applied.items()),
    )


@task(name="contamination-part")
def contamination_part(
    part: str,
    index: int,
    bench: BenchmarkFiles,
    paths: RunPaths,
    config: CurationConfig,
    decisions: dict[str, list[ReviewerDecision]],
) -> PartResult:
    """Check one part: write the kept conversations, the ledger rows and every turn's finding.

    Cached on the part's content, the contamination options, the benchmark items and the
    reviewers' decisions file.
    """
    c = config.contamination
    return cached_part(
        CONTAMINATION,
        paths=paths,
        config=config,
        inputs=[(part_name(part), Path(part))],
        extra_key={
            "benchmark_items": bench.items_digest,
            "decisions_file": file_digest(Path(c.decisions_file)) if c.decisions_file else "",
        },
        compute=lambda: _check(part, bench, paths, config, decisions),
    )


def contamination_check_stage(
    parts: list[str], paths: RunPaths, config: CurationConfig
) -> tuple[list[str], StageReport, dict[str, str]]:
    """Drop or cut conversations that contain benchmark items; write the reviewers' report."""
    c = config.contamination
    logger = run_logger()
    if not c.enabled or not c.benchmark_specs() or not parts:
        why = "disabled" if not c.enabled else "no benchmarks configured" if parts else "no input"
        logger.warning("contamination check skipped: %s", why)
        return parts, passthrough_report(parts, "contamination"), {"skipped": why}
    decisions = read_decisions(Path(c.decisions_file)) if c.decisions_file else []
    grouped = decisions_by_conversation(decisions)
    bench = run_step(index_benchmarks_global, paths, config)
    # One part at a time, in this flow's process: every part shares the loaded model and index.
    results = run_in_turn(contamination_part, [(p, i, bench, paths, config, grouped) for i, p in enumerate(parts)])
    (report,) = merge_stage_reports([r.report for r in results])
    report.changed["benchmark_items_embedded"] = bench.embedded
    items = read_benchmark_items_parquet(Path(bench.items))
    device, gpu = contamination_devices(c.device)
    checked = [(Path(r.findings), Path(part)) for r, part in zip(results, parts, strict=True) if r.findings]
    summary = CONTAMINATION_REPORT.call(
        [findings for findings, _ in checked],
        items,
        config=config,
        run_id=paths.run_id,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        device=f"embeddings {device}, FAISS {'GPU' if gpu else 'CPU'}",
        conversations_checked=report.inputs,
        decisions=decisions,
        decisions_applied={(a, b, i): effect for r in results for a, b, i, effect in r.decisions_applied},
        checked_parts=[part for _, part in checked],
        answers=reference_answers([*items, *read_benchmark_items_parquet(Path(bench.answers))]),
    )
    report_paths = write_contamination_report(summary, paths.contamination_dir)
    links = file_links(report_paths)  # one question to the server for every file
    publish_markdown(
        markdown=contamination_summary_markdown(summary, links),
        key="contamination-summary",
        description="contamination check: the numbers, the top flagged pairs and the report files",
    )
    publish_table(
        table=[row.model_dump() for row in summary.counts] or [{"benchmark": "-", "flagged_turns": 0}],
        key="contamination-counts",
        description="flagged turns and removed conversations per benchmark and source",
    )
    if summary.pairs:
        publish_table(
            table=top_pair_rows(summary, TOP_PAIRS_TABLE),
            key="contamination-top-pairs",
            description=f"the {TOP_PAIRS_TABLE} highest-scored flagged pairs (all of them: report.html)",
        )
    publish_link(
        key="contamination-report",
        link=links["html"],
        link_text="contamination report",
        description="the reviewers' contamination report (one offline HTML file)",
    )
    logger.info(
        "contamination: %d conversations, %d flagged turns, %d removed, %d cut → %s",
        report.inputs,
        summary.flagged_turns,
        report.dropped,
        report.changed.get("conversations_cut", 0),
        report_paths["html"],
    )
    return [r.output for r in results], report, report_paths


@flow(name="contamination", log_prints=True, on_failure=[publish_failure])
def contamination_flow(
    conversations: Path,
    out_dir: Path = Path("runs"),
    config: CurationConfig = CurationConfig(),
    run_id: str | None = None,
) -> dict:
    """Check a folder of curated conversation parts (a curate run's conversations/) against benchmarks."""
    parts = conversation_parts(Path(conversations))
    check_contamination_resources(config, require_benchmarks=True)
    paths = RunPaths.create(Path(out_dir), run_id or new_run_id())
    atomic_write_text(paths.config_json, config.model_dump_json(indent=2))
    kept_parts, report, report_paths = contamination_check_stage(parts, paths, config)
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
