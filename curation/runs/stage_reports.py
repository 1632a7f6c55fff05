"""Stage reports: counts per stage and reason, summed over batches, rendered for people."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from schemas import Dropped, RunReport, StageReport


def stage_report(
    stage: str,
    *,
    inputs: int,
    kept: int,
    dropped: Sequence[Dropped],
    changed: Mapping[str, int] | None = None,
    seconds: float = 0.0,
    rows_out: int | None = None,
) -> StageReport:
    """A stage's counts; round-scope drops (a round cut from a kept conversation) are not
    dropped records, so they are left out of `dropped` and counted by the stage in `changed`."""
    records = [d for d in dropped if d.scope == "conversation"]
    return StageReport(
        stage=stage,
        inputs=inputs,
        kept=kept,
        rows_out=rows_out,
        dropped=len(records),
        dropped_by_reason=dict(Counter(d.reason for d in records)),
        changed={k: v for k, v in (changed or {}).items() if v},
        seconds=seconds,
    )


def passthrough_report(parts: Sequence[str], stage: str) -> StageReport:
    """The report of a stage that is switched off: every row of `parts` kept, counted from metadata."""
    rows = sum(pq.read_metadata(p).num_rows for p in parts)
    return stage_report(stage, inputs=rows, kept=rows, dropped=[])


def merge_stage_reports(reports: Sequence[StageReport]) -> list[StageReport]:
    """Sum per-batch reports into one report per stage, in first-seen stage order."""
    merged: dict[str, StageReport] = {}
    for r in reports:
        m = merged.setdefault(r.stage, StageReport(stage=r.stage))
        m.inputs += r.inputs
        m.kept += r.kept
        if r.rows_out is not None:
            m.rows_out = (m.rows_out or 0) + r.rows_out
        m.dropped += r.dropped
        m.seconds += r.seconds
        m.parts += r.parts
        m.parts_reused += r.parts_reused
        for k, v in r.dropped_by_reason.items():
            m.dropped_by_reason[k] = m.dropped_by_reason.get(k, 0) + v
        for k, v in r.changed.items():
            m.changed[k] = m.changed.get(k, 0) + v
    return list(merged.values())


def ledger_balance_errors(report: RunReport) -> list[str]:
    """Every way the run lost or invented records; empty when nothing was lost.

    Checks records_read == kept + dropped for the run (as counted from the files by
    `count_source_records`), inputs == kept + dropped for each stage, and that each stage's
    inputs are the rows the previous stage wrote.
    """
    errors: list[str] = []
    if report.records_read != report.kept + report.dropped:
        errors.append(f"run: read {report.records_read} != kept {report.kept} + dropped {report.dropped}")
    previous_rows: int | None = None
    for s in report.stages:
        if s.inputs != s.kept + s.dropped:
            errors.append(f"{s.stage}: inputs {s.inputs} != kept {s.kept} + dropped {s.dropped}")
        if sum(s.dropped_by_reason.values()) != s.dropped:
            errors.append(f"{s.stage}: reasons sum to {sum(s.dropped_by_reason.values())}, dropped {s.dropped}")
        if previous_rows is not None and s.inputs != previous_rows:
            errors.append(f"{s.stage}: inputs {s.inputs} != rows the previous stage wrote {previous_rows}")
        previous_rows = s.kept if s.rows_out is None else s.rows_out
    return errors


def count_source_records(conversation_files: Sequence[Path], ledger_files: Sequence[Path]) -> tuple[int, int]:
    """(kept, dropped) input records, counted from the run's files.

    An input record is identified by where it was read (input file, record index), since ids
    repeat in real dumps and split pieces share their parent's provenance. Kept: it has at least
    one row in the output. Dropped: it has ledger rows and no output row (a round cut out of a
    kept conversation leaves it kept).
    """
    kept = (
        pl.scan_parquet(list(conversation_files))
        .select(pl.col("provenance").struct.field("input_file"), pl.col("provenance").struct.field("record_index"))
        .unique()
        .collect()
        if conversation_files
        else pl.DataFrame(schema={"input_file": pl.String, "record_index": pl.Int64})
    )
    if not ledger_files:
        return kept.height, 0
    dropped = (
        pl.scan_parquet(list(ledger_files))
        .select("input_file", "record_index")
        .unique()
        .collect()
        .join(kept, on=["input_file", "record_index"], how="anti", nulls_equal=True)
    )
    return kept.height, dropped.height


def reuse_line(report: RunReport) -> str:
    """One sentence on what the run took from the stage cache instead of computing it again."""
    parts = sum(s.parts for s in report.stages)
    reused = sum(s.parts_reused for s in report.stages)
    if not reused:
        return f"Computed all {parts} task parts (nothing reused from the stage cache)."
    stages = ", ".join(f"{s.stage} {s.parts_reused}/{s.parts}" for s in report.stages if s.parts_reused)
    return f"Reused {reused} of {parts} task parts from the stage cache ({stages}); the global steps ran again."


def rejected_lines(report: RunReport) -> list[str]:
    """The damaged stage-cache entries the run replaced, one bullet each after a summary line; none: no lines."""
    rejected = report.cache_entries_rejected
    if not rejected:
        return []
    return [
        f"Found {len(rejected)} damaged stage-cache entries; they were removed and their parts computed again:",
        "",
        *(f"- {r.stage} `{r.key[:12]}`: {r.reason}" for r in rejected),
        "",
    ]


def run_report_markdown(report: RunReport) -> str:
    """The run report as markdown: a table of counts per stage, then each stage's drop reasons and
    changes as a list. The lists are not table columns: their long comma lists made the table too
    wide for the Prefect UI's artifact page, which cut it off before the last columns."""
    lines = [
        f"# chatsift run `{report.run_id}`",
        "",
        f"Read **{report.records_read}** records from {len(report.inputs)} input(s); "
        f"kept **{report.kept}** (as {report.rows} rows), dropped **{report.dropped}**.",
        "",
        f"config `{report.config_hash}` · code `{report.code_version}` · {report.started_at} → {report.finished_at}",
        "",
        reuse_line(report),
        "",
        *rejected_lines(report),
        "| stage | in | kept | dropped | reused | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    details = []
    for s in report.stages:
        reused = f"{s.parts_reused}/{s.parts}" if s.parts else "-"
        lines.append(f"| {s.stage} | {s.inputs} | {s.kept} | {s.dropped} | {reused} | {s.seconds:.2f} |")
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(s.dropped_by_reason.items()))
        changes = ", ".join(f"{k} {v}" for k, v in sorted(s.changed.items()))
        if reasons or changes:
            said = [f"dropped: {reasons}" if reasons else "", f"changed: {changes}" if changes else ""]
            details.append(f"- **{s.stage}**: " + "; ".join(part for part in said if part))
    if details:
        lines += ["", "Drop reasons and changes by stage:", "", *details]
    if report.outputs:
        lines += ["", "Outputs:", ""] + [f"- {k}: `{v}`" for k, v in sorted(report.outputs.items())]
    return "\n".join(lines) + "\n"
