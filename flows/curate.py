"""The `curate` flow: every stage in order, then the ledger check, and only then the published outputs.

The final conversations and the shards are written under temporary names (schemas.run_layout.
staging_name) and renamed into place once `inputs == kept + dropped` holds; lineage.json,
report.json and report.md follow. A run that fails (its ledger balance or anything else) records
"failed" and the error in run.json and leaves no conversations/, shards/ or report. The ingest
parts, which hold the input's unredacted text, are removed once cleaning has read them
(RunConfig.keep_raw_intermediates keeps them).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, task

from curation.ingest.read import list_inputs
from curation.runs.explore import write_explore
from curation.runs.lineage import code_version, run_lineage
from curation.runs.stage_reports import count_source_records, ledger_balance_errors, run_report_markdown
from flows.clean import clean_stage
from flows.contamination import contamination_check_stage
from flows.dedupe import dedupe_exact_stage, dedupe_minhash_stage
from flows.execution import publish_failure, publish_markdown, publish_table, run_logger, run_step, tasks_on
from flows.ingest import ingest_stage
from flows.progress import StageProgress
from flows.resources import check_inputs, check_resources, explore_tools
from flows.run_files import publish_file_link
from flows.runners import chosen_task_runner, run_task_runner, usable_cores
from flows.shards import shards_stage, write_configured_exports
from flows.split import split_stage
from flows.stage_cache import StageCache, rejected_cache_entries
from schemas import RunReport
from schemas.config import CurationConfig
from schemas.errors import ChatsiftError
from schemas.files import atomic_write_text
from schemas.run_layout import RunPaths, new_run_id, publish_parts, record_run_end, run_record_json, staging_name

# ingest, clean, dedupe-exact, dedupe-minhash, contamination, split, shards (tokenize and pack).
CURATE_STAGES = 7


class LedgerImbalanceError(ChatsiftError, RuntimeError):
    """Records were lost or invented: a bug in chatsift, never a property of the input."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@flow(name="curate", log_prints=True, on_failure=[publish_failure])
def curate_flow(
    inputs: list[Path],
    out_dir: Path = Path("runs"),
    config: CurationConfig = CurationConfig(),
    run_id: str | None = None,
) -> RunReport:
    """Curate ShareGPT-style inputs into clean conversation Parquet plus a drop ledger."""
    inputs = [Path(p) for p in inputs]
    check_inputs(inputs)
    check_resources(config)
    out_dir = Path(out_dir)
    paths = RunPaths.for_run(out_dir, run_id or new_run_id(), config)
    started = _now()
    # A run id used before (a resumed run) starts from a clean folder: finished work comes back
    # from the stage cache, so nothing an earlier attempt wrote can be left over twice.
    paths.clear_outputs()
    removed = StageCache(paths.cache_root).remove_temporaries()
    atomic_write_text(paths.config_json, config.model_dump_json(indent=2))
    atomic_write_text(paths.run_json, run_record_json(paths.run_id, inputs, out_dir, started))
    logger = run_logger()
    if removed:
        logger.info("removed %d unfinished cache entries left by a killed run", removed)
    try:
        report = _curate(inputs, paths, config, started)
    except Exception as e:
        # Anything the run wrote stays for a look (stages/, ledger/), but nothing that looks finished.
        for folder in (paths.conversations_dir, paths.shards_dir):
            shutil.rmtree(staging_name(folder), ignore_errors=True)
        record_run_end(paths.run_json, "failed", finished_at=_now(), error=f"{type(e).__name__}: {e}")
        raise
    finally:
        if not config.run.keep_raw_intermediates:
            paths.remove_raw_intermediates()
    record_run_end(paths.run_json, "finished", finished_at=report.finished_at)
    if report.cache_entries_rejected:
        stages = sorted({r.stage for r in report.cache_entries_rejected})
        logger.warning(
            "replaced %d damaged stage-cache entries (%s): see cache_entries_rejected in %s",
            len(report.cache_entries_rejected),
            ", ".join(stages),
            paths.report_json,
        )
    logger.info(
        "run %s: read %d, kept %d, dropped %d → %s",
        report.run_id,
        report.records_read,
        report.kept,
        report.dropped,
        paths.root,
    )
    return report


def _curate(inputs: list[Path], paths: RunPaths, config: CurationConfig, started: str) -> RunReport:
    """The pipeline, the ledger check, then the published outputs; raises LedgerImbalanceError before publishing."""
    staged_conversations = staging_name(paths.conversations_dir)
    staged = replace(paths, shards_staged=True)
    # The stages run in this flow run, their tasks on the run's task runner (flows.execution: why no subflows).
    progress = StageProgress(key="curate-progress", title="curate", stages=CURATE_STAGES)
    listing = list_inputs(inputs)
    input_bytes = sum(f.stat().st_size for f in listing.files)
    runner_kind = chosen_task_runner(config.run, input_bytes=input_bytes, cores=usable_cores())
    run_logger().info(
        "task runner: %s%s",
        runner_kind,
        f" (auto: {input_bytes / 1e6:.1f} MB of input, processes from {config.run.auto_processes_min_mb:g} MB)"
        if config.run.task_runner == "auto"
        else "",
    )
    with run_task_runner(config.run, runner_kind) as runner, tasks_on(runner):
        ingest_parts, ingest_report, input_groups = ingest_stage(listing, paths, config)
        progress.stage_done(ingest_report)
        clean_parts, clean_reports = clean_stage(ingest_parts, paths, config)
        progress.stage_done(*clean_reports)
        # Cleaning (the secrets stage) has read the raw text: nothing later needs it, and a resumed
        # run computes it again, so it is on disk no longer than it must be.
        if not config.run.keep_raw_intermediates:
            paths.remove_raw_intermediates()
        exact_parts, exact_report = dedupe_exact_stage(clean_parts, paths, config)
        progress.stage_done(exact_report)
        near_parts, near_report = dedupe_minhash_stage(exact_parts, paths, config)
        progress.stage_done(near_report)
        checked_parts, contamination_report, contamination_files = contamination_check_stage(near_parts, paths, config)
        progress.stage_done(contamination_report)
        split_parts, split_report, tokenized_parts = split_stage(checked_parts, paths, staged, config)
        progress.stage_done(split_report)
        final_parts = publish_parts(split_parts, staged_conversations)
        staged_manifest, shard_reports = shards_stage(final_parts, staged, config, tokenized=tokenized_parts)
        progress.stage_done(*shard_reports)

    stages = [
        ingest_report,
        *clean_reports,
        exact_report,
        near_report,
        contamination_report,
        split_report,
        *shard_reports,
    ]
    kept, dropped = count_source_records([Path(p) for p in final_parts], sorted(paths.ledger_dir.glob("*.parquet")))
    manifest = str(paths.shards_dir / Path(staged_manifest).name)
    report = RunReport(
        run_id=paths.run_id,
        started_at=started,
        finished_at=_now(),
        inputs=[str(p) for p in inputs],
        config_hash=config.config_hash(),
        code_version=code_version(),
        records_read=ingest_report.inputs,
        kept=kept,
        rows=split_report.rows_out or 0,
        dropped=dropped,
        stages=stages,
        outputs={
            "conversations": str(paths.conversations_dir),
            "ledger": str(paths.ledger_dir),
            "report": str(paths.report_json),
            "lineage": str(paths.lineage_json),
            "shards": manifest,
            "parts": str(len(final_parts)),
            **{f"contamination_{kind}": path for kind, path in contamination_files.items()},
        },
        cache_entries_rejected=rejected_cache_entries(paths),
        task_runner=runner_kind,
    )
    errors = ledger_balance_errors(report)
    if errors:
        raise LedgerImbalanceError("; ".join(errors))
    # Publish: the staged folders renamed into place (clear_outputs removed any of an earlier attempt),
    # then what describes them; report.json, what `runs list` reads, last.
    for folder, final in ((staged_conversations, paths.conversations_dir), (staged.shards_dir, paths.shards_dir)):
        if folder.exists():
            os.replace(folder, final)
    exports = write_configured_exports(paths, config)
    report.outputs.update({f"export_{fmt}": folder for fmt, folder in exports.items()})
    lineage = run_lineage(
        paths=paths,
        inputs=inputs,
        config_hash=report.config_hash,
        input_groups=input_groups,
        input_files=listing.files,
    )
    atomic_write_text(paths.lineage_json, lineage.model_dump_json(indent=2))
    if config.run.explore_page:
        report.outputs["explore"] = str(run_step(explore_page, paths.root, report, config))
    markdown = run_report_markdown(report)
    atomic_write_text(paths.report_md, markdown)
    atomic_write_text(paths.report_json, report.model_dump_json(indent=2))
    _publish_run_artifacts(report, markdown, manifest)
    return report


def _publish_run_artifacts(report: RunReport, markdown: str, manifest: str) -> None:
    """The run report, the stage counts and a link to the shards manifest (the contamination stage links its report)."""
    publish_markdown(markdown=markdown, key="curate-run-report", description="chatsift run report")
    publish_table(
        table=[
            {
                "stage": s.stage,
                "in": s.inputs,
                "kept": s.kept,
                "dropped": s.dropped,
                "rows out": s.kept if s.rows_out is None else s.rows_out,
                "seconds": round(s.seconds, 2),
            }
            for s in report.stages
        ],
        key="curate-stage-counts",
        description="records in, kept and dropped per stage",
    )
    publish_file_link(
        key="curate-shards-manifest",
        path=manifest,
        link_text="shards manifest.json",
        description="the training shards' manifest: files, checksums, tokenizer, schema version",
    )
    if "explore" in report.outputs:
        publish_file_link(
            key="curate-explore",
            path=report.outputs["explore"],
            link_text="explore.html",
            description="the run's data: drops by reason with sampled texts, length distributions",
        )


@task(name="explore-page")
def explore_page(run_dir: Path, report: RunReport, config: CurationConfig) -> Path:
    """explore.html: the run's counts, sampled drops and distributions (curation/runs/explore.py)."""
    return write_explore(run_dir, report, explore_tools(config, embedding_map=config.run.explore_map))
