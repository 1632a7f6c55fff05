"""The contamination summary a Prefect artifact shows: the report's numbers, the top flagged pairs as a
markdown table that no turn text can break or inject into, and links to the report files."""

from __future__ import annotations

import html

from curation.contamination.report import (
    SUMMARY_EXCERPT_CHARS,
    SUMMARY_TOP_PAIRS,
    contamination_summary_markdown,
    top_pair_rows,
)
from tests.helpers.contamination_report import SCRIPT, sample_report

LINKS = {
    "html": "http://127.0.0.1:4311/chatsift/files/runs/r1/contamination/report.html",
    "csv": "file:///runs/r1/contamination/flagged_pairs.csv",
}


def _table_rows(markdown: str) -> list[list[str]]:
    """The cells of each table row, split on unescaped pipes as a markdown renderer does."""
    rows = []
    for line in markdown.splitlines():
        if line.startswith("| "):
            cells = line.replace("\\|", "\0").strip("|").split("|")
            rows.append([c.strip().replace("\0", "|") for c in cells])
    return rows


def test_summary_holds_the_numbers_the_pairs_and_the_links() -> None:
    report = sample_report()
    markdown = contamination_summary_markdown(report, LINKS)
    assert f"**{report.flagged_turns}** flagged turns" in markdown
    assert f"**{report.removed_conversations}** conversations removed" in markdown
    assert "[report.html](http://127.0.0.1:4311/chatsift/files/runs/r1/contamination/report.html)" in markdown
    assert "[flagged_pairs.csv](file:///runs/r1/contamination/flagged_pairs.csv)" in markdown
    header, *rows = _table_rows(markdown)
    assert header == ["score", "category", "item", "action", "conversation", "turn text"]
    # one row per pair, highest score first, every row as wide as the header
    by_score = sorted(report.pairs, key=lambda p: -p.score)
    assert [r[4] for r in rows] == [p.conversation_id for p in by_score]
    assert [r[2] for r in rows] == [f"{p.benchmark}/{p.item_id}" for p in by_score]
    assert [float(r[0]) for r in rows] == [round(p.score, 3) for p in by_score] != [p.score for p in report.pairs]
    assert all(len(r) == len(header) for r in rows)


def test_turn_text_cannot_break_the_table_or_inject_html() -> None:
    report = sample_report()
    first = report.pairs[0].model_copy(update={"turn_text": f"a | b\n\n{SCRIPT} " + "x" * 500})
    report = report.model_copy(update={"pairs": [first, *report.pairs[1:]]})
    markdown = contamination_summary_markdown(report, LINKS)
    assert SCRIPT not in markdown and "&lt;script&gt;" in markdown
    [row] = [r for r in _table_rows(markdown) if r[4] == first.conversation_id]
    assert row[-1].startswith("a | b &lt;script&gt;") and row[-1].endswith("…")
    # cut to the summary's excerpt length (its escapes aside), so the table fits beside the UI's side panel
    assert len(html.unescape(row[-1])) == SUMMARY_EXCERPT_CHARS


def test_only_the_top_pairs_are_shown_and_the_count_says_so() -> None:
    report = sample_report()
    many = [report.pairs[0].model_copy(update={"conversation_id": f"c{i}", "score": 0.99 - i / 100}) for i in range(25)]
    report = report.model_copy(update={"pairs": many})
    markdown = contamination_summary_markdown(report, LINKS)
    assert f"the top {SUMMARY_TOP_PAIRS} of 25" in markdown
    assert len(_table_rows(markdown)) == 1 + SUMMARY_TOP_PAIRS
    assert [r["conversation"] for r in top_pair_rows(report, 3)] == ["c0", "c1", "c2"]


def test_a_clean_run_has_no_table() -> None:
    markdown = contamination_summary_markdown(sample_report(pairs=False), LINKS)
    assert "**0** flagged turns" in markdown and "| score" not in markdown
