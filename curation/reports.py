"""Stage reports: counts per stage and reason, summed over batches, rendered for people."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from schemas import Dropped, RunReport, StageReport


def stage_report(
    stage: str,
    *,
    inputs: int,
    kept: int,
    dropped: Sequence[Dropped],
    changed: Mapping[str, int] | None = None,
    seconds: float = 0.0,
) -> StageReport:
    return StageReport(
        stage=stage,
        inputs=inputs,
        kept=kept,
        dropped=len(dropped),
        dropped_by_reason=dict(Counter(d.reason for d in dropped)),
        changed={k: v for k, v in (changed or {}).items() if v},
        seconds=seconds,
    )


def merge_stage_reports(reports: Sequence[StageReport]) -> list[StageReport]:
    """Sum per-batch reports into one report per stage, in first-seen stage order."""
    merged: dict[str, StageReport] = {}
    for r in reports:
        m = merged.setdefault(r.stage, StageReport(stage=r.stage))
        m.inputs += r.inputs
        m.kept += r.kept
        m.dropped += r.dropped
        m.seconds += r.seconds
        for k, v in r.dropped_by_reason.items():
            m.dropped_by_reason[k] = m.dropped_by_reason.get(k, 0) + v
        for k, v in r.changed.items():
            m.changed[k] = m.changed.get(k, 0) + v
    return list(merged.values())


def ledger_balance_errors(report: RunReport) -> list[str]:
    """Every way the run lost or invented records; empty when nothing was lost.

    Checks records_read == kept + dropped for the run, inputs == kept + dropped for each stage,
    and that each stage's inputs are the previous stage's kept.
    """
    errors: list[str] = []
    if report.records_read != report.kept + report.dropped:
        errors.append(f"run: read {report.records_read} != kept {report.kept} + dropped {report.dropped}")
    previous_kept: int | None = None
    for s in report.stages:
        if s.inputs != s.kept + s.dropped:
            errors.append(f"{s.stage}: inputs {s.inputs} != kept {s.kept} + dropped {s.dropped}")
        if sum(s.dropped_by_reason.values()) != s.dropped:
            errors.append(f"{s.stage}: reasons sum to {sum(s.dropped_by_reason.values())}, dropped {s.dropped}")
        if previous_kept is not None and s.inputs != previous_kept:
            errors.append(f"{s.stage}: inputs {s.inputs} != previous stage's kept {previous_kept}")
        previous_kept = s.kept
    return errors


def run_report_markdown(report: RunReport) -> str:
    """The run report as markdown: a table per stage of kept, dropped by reason, and changes."""
    lines = [
        f"# chatsift run `{report.run_id}`",
        "",
        f"Read **{report.records_read}** records from {len(report.inputs)} input(s); "
        f"kept **{report.kept}**, dropped **{report.dropped}**.",
        "",
        f"config `{report.config_hash}` · code `{report.code_version}` · {report.started_at} → {report.finished_at}",
        "",
        "| stage | in | kept | dropped | reasons | changes | seconds |",
        "|---|---:|---:|---:|---|---|---:|",
    ]
    for s in report.stages:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(s.dropped_by_reason.items())) or "-"
        changes = ", ".join(f"{k} {v}" for k, v in sorted(s.changed.items())) or "-"
        lines.append(f"| {s.stage} | {s.inputs} | {s.kept} | {s.dropped} | {reasons} | {changes} | {s.seconds:.2f} |")
    if report.outputs:
        lines += ["", "Outputs:", ""] + [f"- {k}: `{v}`" for k, v in sorted(report.outputs.items())]
    return "\n".join(lines) + "\n"
