"""The `curate` flow: every stage in order, then the run report and the ledger check."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import flow

from curation.runs.lineage import code_version, run_lineage
from curation.runs.stage_reports import count_source_records, ledger_balance_errors, run_report_markdown
from flows.clean import clean_flow
from flows.contamination import contamination_check_flow
from flows.dedupe import dedupe_exact_flow, dedupe_minhash_flow
from flows.execution import publish_link, publish_markdown, publish_table, run_logger, run_subflow, subflows_on
from flows.ingest import ingest_flow
from flows.resources import check_inputs, check_resources
from flows.runners import task_runners
from flows.shards import shards_flow
from flows.split import split_flow
from flows.stage_cache import StageCache
from schemas import RunReport
from schemas.config import CurationConfig
from schemas.errors import ChatsiftError
from schemas.files import atomic_write_text
from schemas.run_layout import RunPaths, new_run_id, publish_parts, run_record_json


class LedgerImbalanceError(ChatsiftError, RuntimeError):
    """Records were lost or invented: a bug in chatsift, never a property of the input."""


@flow(name="curate", log_prints=True)
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
    started = datetime.now(UTC).isoformat(timespec="seconds")
    # A run id used before (a resumed run) starts from a clean folder: finished work comes back
    # from the stage cache, so nothing an earlier attempt wrote can be left over twice.
    paths.clear_outputs()
    removed = StageCache(paths.cache_root).remove_temporaries()
    atomic_write_text(paths.config_json, config.model_dump_json(indent=2))
    atomic_write_text(paths.run_json, run_record_json(paths.run_id, inputs, out_dir, started))
    logger = run_logger()
    if removed:
        logger.info("removed %d unfinished cache entries left by a killed run", removed)

    # The pipeline, in order; each stage is a subflow on the run's task runner.
    with task_runners(config.run) as on_runner, subflows_on(on_runner):
        ingest_parts, ingest_report, input_groups = run_subflow(ingest_flow, inputs, paths, config)
        clean_parts, clean_reports = run_subflow(clean_flow, ingest_parts, paths, config)
        exact_parts, exact_report = run_subflow(dedupe_exact_flow, clean_parts, paths, config)
        near_parts, near_report = run_subflow(dedupe_minhash_flow, exact_parts, paths, config)
        checked_parts, contamination_report, contamination_files = run_subflow(
            contamination_check_flow, near_parts, paths, config
        )
        split_parts, split_report = run_subflow(split_flow, checked_parts, paths, config)
        final_parts = publish_parts(split_parts, paths.conversations_dir)
        manifest, shard_reports = run_subflow(shards_flow, final_parts, paths, config)

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
    report = RunReport(
        run_id=paths.run_id,
        started_at=started,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
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
    )
    atomic_write_text(paths.report_json, report.model_dump_json(indent=2))
    lineage = run_lineage(paths=paths, inputs=inputs, config_hash=report.config_hash, input_groups=input_groups)
    atomic_write_text(paths.lineage_json, lineage.model_dump_json(indent=2))
    markdown = run_report_markdown(report)
    atomic_write_text(paths.report_md, markdown)
    _publish_run_artifacts(report, markdown, manifest, contamination_files)
    errors = ledger_balance_errors(report)
    if errors:
        raise LedgerImbalanceError("; ".join(errors))
    logger.info(
        "run %s: read %d, kept %d, dropped %d → %s",
        report.run_id,
        report.records_read,
        report.kept,
        report.dropped,
        paths.root,
    )
    return report


def _publish_run_artifacts(
    report: RunReport, markdown: str, manifest: str, contamination_files: dict[str, str]
) -> None:
    """The run report, the stage counts and links to the shards manifest and the contamination report."""
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
    publish_link(
        link=Path(manifest).resolve().as_uri(),
        link_text="shards manifest.json",
        key="curate-shards-manifest",
        description="the training shards' manifest: files, checksums, tokenizer, schema version",
    )
    if "html" in contamination_files:
        publish_link(
            link=Path(contamination_files["html"]).resolve().as_uri(),
            link_text="contamination report",
            key="curate-contamination-report",
            description="the reviewers' contamination report (offline HTML)",
        )
