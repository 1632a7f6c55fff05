"""The run report's markdown (report.md and the curate-run-report artifact): a narrow table of counts,
and every drop reason and change listed below it, where long lists wrap."""

from __future__ import annotations

from curation.runs.stage_reports import run_report_markdown
from schemas import RunReport
from schemas.ledger import StageReport

CONTAMINATION = StageReport(
    stage="contamination",
    inputs=14,
    kept=13,
    dropped=1,
    dropped_by_reason={"benchmark_contamination": 1},
    changed={"benchmark_items_embedded": 0, "conversations_cut": 1, "flagged_turns": 2, "units_from_cache": 20},
    seconds=0.061,
    parts=1,
)
REPORT = RunReport(
    run_id="r1",
    started_at="2026-12-07T09:08:01+00:00",
    inputs=["in"],
    config_hash="c",
    code_version="v",
    records_read=14,
    kept=13,
    dropped=1,
    stages=[StageReport(stage="model", inputs=14, kept=14, parts=1, parts_reused=1), CONTAMINATION],
)


def test_the_table_holds_counts_only_and_the_reasons_and_changes_follow_it() -> None:
    markdown = run_report_markdown(REPORT)
    table = [line for line in markdown.splitlines() if line.startswith("|")]
    assert table[0] == "| stage | in | kept | dropped | reused | seconds |"
    assert table[2:] == ["| model | 14 | 14 | 0 | 1/1 | 0.00 |", "| contamination | 14 | 13 | 1 | 0/1 | 0.06 |"]
    # The widest row of the demo's table was ~190 characters; a row of counts stays short.
    assert max(map(len, table)) <= 60
    assert (
        "- **contamination**: dropped: benchmark_contamination 1; changed: benchmark_items_embedded 0, "
        "conversations_cut 1, flagged_turns 2, units_from_cache 20"
    ) in markdown.splitlines()
    assert "**model**" not in markdown  # nothing dropped or changed: no line
