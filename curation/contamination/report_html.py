"""The contamination report for reviewers: one self-contained HTML page and a CSV of flagged pairs.

The page needs no network. Its tables and charts are HTML; the flagged pairs are data in the page (JSON in a
<script type="application/json"> block, every "<" written as \\u003c so no text can close it) that the page's
own script renders a page at a time, as text nodes, never as markup: filters by benchmark, category, source and
score, sorting by score, the whole conversation of each pair, and keep/remove choices exported as a decisions
CSV that contamination.decisions_file reads as is. Training turns hold raw HTML, even <script> tags: they only
ever reach the page as text.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path

from schemas.contamination import CATEGORIES, ContaminationReport, FlaggedPair

CSV_COLUMNS = (
    "conversation_id",
    "source",
    "turn_index",
    "role",
    "benchmark",
    "item_id",
    "score",
    "ngram_coverage",
    "fuzzy_containment",
    "rephrase_view",
    "rephrase_anchor_share",
    "category",
    "action",
    "decision",
    "turn_text",
    "item_text",
)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;
padding:1rem 1.5rem;color:#1d1d1f;background:#fff;line-height:1.4}
h1{font-size:1.5rem;margin:.2rem 0}h2{border-bottom:2px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;
vertical-align:top}th{background:#f3f3f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.5rem 0}
dl.meta dt{font-weight:600}dl.meta dd{margin:0}
.pair{border:1px solid #ccc;border-left:6px solid #999;border-radius:4px;margin:1rem 0;padding:.5rem .8rem}
.pair.near_verbatim{border-left-color:#c62828}.pair.rephrased{border-left-color:#ef6c00}
.pair.similar{border-left-color:#f9a825}.pair .head{margin-bottom:.4rem}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:.8rem}.side h4{margin:.2rem 0;font-size:.9rem;color:#444}
.text{white-space:pre-wrap;overflow-wrap:anywhere;max-height:22rem;overflow:auto;border:1px solid #e0e0e0;
background:#fafafa;padding:.5rem;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85rem;margin:0}
mark{background:#ffe066;padding:0 1px}
.badge{display:inline-block;border-radius:3px;padding:0 .4rem;font-size:.85rem;background:#eee;margin-right:.3rem}
.badge.near_verbatim{background:#ffcdd2}.badge.rephrased{background:#ffe0b2}.badge.similar{background:#fff9c4}
.muted{color:#666}.calib{white-space:pre-wrap}svg text{font-family:inherit}
.filters{display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:end;background:#f3f3f6;padding:.5rem .8rem;
border-radius:4px}.filters label{display:flex;flex-direction:column;font-size:.85rem}
.pager{margin:.5rem 0;display:flex;gap:.8rem;align-items:center}
dl.evidence{display:flex;flex-wrap:wrap;gap:.1rem .9rem;margin:.2rem 0 .5rem}dl.evidence dt{color:#555}
dl.evidence dt::after{content:":"}dl.evidence dd{margin:0 0 0 -.6rem;font-weight:600}
details.conversation{margin:.5rem 0}.turn{border-left:3px solid #ddd;padding-left:.5rem;margin:.3rem 0}
.turn.flagged{border-left-color:#c62828;background:#fff5f5}.turn.removed{opacity:.55}
.turn .who{font-size:.8rem;color:#555}.cut{border-top:2px dashed #c62828;color:#c62828;font-size:.85rem;margin:.4rem 0}
.decide{display:flex;flex-wrap:wrap;gap:.4rem;align-items:center;margin-top:.4rem}
button.decision[aria-pressed="true"]{outline:3px solid #1d1d1f;font-weight:700}.decide .note{min-width:16rem}
"""

# What the page's script reads beside the pairs; the pairs' own fields are FlaggedPair's.
PAGE_SIZE = 50
DECISION_COLUMNS = ("conversation_id", "benchmark", "item_id", "decision", "reviewer", "note")
DECISIONS_FILE_NAME = "decisions.csv"
# Context turns are cut to this many characters in the page (report.json keeps them whole), so thousands of
# pairs stay a page that opens; the flagged turn is always whole.
CONTEXT_TURN_CHARS = 4000
_SCRIPT = (Path(__file__).with_name("report_page.js")).read_text(encoding="utf-8")


def merge_spans(spans: Iterable[Sequence[int]], length: int) -> list[tuple[int, int]]:
    """Clamp [start, end) spans to [0, length], drop empty ones, and merge overlapping or touching ones."""
    clamped = sorted((max(0, min(s, length)), max(0, min(e, length))) for s, e in spans)
    merged: list[tuple[int, int]] = []
    for start, end in clamped:
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{escape(str(c))}</td>' if isinstance(c, int | float) else f"<td>{escape(str(c))}</td>"
            for c in row
        )
        body.append(f"<tr>{cells}</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}" class="muted">none</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def score_histogram_svg(
    bins: Sequence[float], counts: Sequence[int], threshold: float, flagged: Sequence[int] = ()
) -> str:
    """An inline SVG bar chart of best scores; bar heights scale with log(1 + count), labels show counts; the
    flagged turns' share of a bar is drawn in red over the unflagged in blue."""
    n = min(len(bins), len(counts))
    if n == 0:
        return '<p class="muted">No score histogram in this report.</p>'
    width = bins[1] - bins[0] if n > 1 else 0.05
    lo, hi = min(bins[0], threshold), max(bins[n - 1] + width, threshold)
    w, h, left, right, top, bottom = 960, 260, 40, 20, 24, 36
    plot_w, plot_h = w - left - right, h - top - bottom

    def x(v: float) -> float:
        return left + (v - lo) / ((hi - lo) or 1.0) * plot_w

    peak = math.log1p(max(max(counts[:n]), 1))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="Histogram of best scores">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{w - right}" y2="{top + plot_h}" stroke="#444"/>',
    ]
    for i in range(n):
        edge, count = bins[i], counts[i]
        nxt = bins[i + 1] if i + 1 < n else edge + width
        x0, x1 = x(edge), x(nxt)
        bar = math.log1p(count) / peak * plot_h
        red = bar * (flagged[i] / count if i < len(flagged) and count else 0.0)
        label = f"{edge:.3f}-{nxt:.3f}: {count} turns" + (f", {flagged[i]} flagged" if i < len(flagged) else "")
        base = top + plot_h - bar
        for y, height, colour in ((base + red, bar - red, "#5c7cfa"), (base, red, "#c62828")):
            if height > 0:
                parts.append(
                    f'<rect x="{x0 + 1:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 2, 1):.1f}" '
                    f'height="{height:.1f}" fill="{colour}"><title>{label}</title></rect>'
                )
        if count:
            parts.append(
                f'<text x="{(x0 + x1) / 2:.1f}" y="{top + plot_h - bar - 4:.1f}" font-size="10" '
                f'text-anchor="middle">{count}</text>'
            )
        if n <= 25 or i % math.ceil(n / 20) == 0:
            parts.append(
                f'<text x="{x0:.1f}" y="{top + plot_h + 14}" font-size="10" text-anchor="middle">{edge:.2f}</text>'
            )
    tx = x(threshold)
    parts.append(
        f'<line x1="{tx:.1f}" y1="{top - 10}" x2="{tx:.1f}" y2="{top + plot_h}" stroke="#000" '
        f'stroke-width="2" stroke-dasharray="5,3"/>'
        f'<text x="{tx + 4:.1f}" y="{top - 2}" font-size="12">threshold {threshold:.2f}</text>'
        f'<text x="{left + plot_w / 2:.1f}" y="{h - 4}" font-size="12" text-anchor="middle">'
        f"best cosine score per checked turn (log scale; numbers are turn counts; red: flagged)</text></svg>"
    )
    return "".join(parts)


def sorted_pairs(pairs: Iterable[FlaggedPair]) -> list[FlaggedPair]:
    """Pairs in category order (near_verbatim, rephrased, similar), highest score first within each."""
    return sorted(pairs, key=lambda p: (CATEGORIES.index(p.category), -p.score, p.conversation_id, p.turn_index))


def _page_pair(p: FlaggedPair, order: int) -> dict[str, object]:
    """One pair as the page's script reads it: spans merged and clamped, context turns cut."""

    def cut(text: str) -> str:
        more = len(text) - CONTEXT_TURN_CHARS
        return text if more <= 0 else f"{text[:CONTEXT_TURN_CHARS]}… ({more} more characters in report.json)"

    return {
        **p.model_dump(mode="json", exclude={"conversation", "turn_spans", "item_spans"}),
        "order": order,
        "turn_spans": merge_spans(p.turn_spans, len(p.turn_text)),
        "item_spans": merge_spans(p.item_spans, len(p.item_text)),
        "conversation": [[t.role, t.text if k == p.turn_index else cut(t.text)] for k, t in enumerate(p.conversation)],
    }


def _json_for_script(data: object) -> str:
    """JSON that no text in it can end the <script> block holding it: <, > and & as \\u escapes (JSON reads
    them back as the same characters), and the two line separators JavaScript once treated as line ends."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def _calibration_html(r: ContaminationReport) -> str:
    """This run's figures, then what the defaults measured on real data."""
    unflagged, flagged = r.unflagged_score_quantiles, r.flagged_score_quantiles

    def figures(q: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.3f}" for k, v in q.items()) or "none"

    rows = [
        ("Threshold (cosine)", f"{r.threshold:.3f}"),
        ("Turns checked", str(r.turns_checked)),
        ("Flagged turns", f"{r.flagged_turns} ({r.flagged_turns / r.turns_checked:.2%})" if r.turns_checked else "0"),
        ("Best score, unflagged turns", figures(unflagged)),
        ("Best score, flagged turns", figures(flagged)),
        (f"Unflagged turns in [{r.threshold - 0.05:.2f}, {r.threshold:.2f})", str(r.unflagged_near_threshold)),
    ]
    table = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    measured = f'<h3>Measured on real data</h3><p class="calib">{escape(r.calibration)}</p>' if r.calibration else ""
    return (
        '<h2 id="calibration">Calibration</h2><h3>This run</h3><dl class="meta">'
        + table
        + '</dl><p class="muted">The histogram above splits each score bin into flagged (red) and unflagged (blue) '
        "turns; the unflagged turns just under the threshold are the ones a lower threshold would add first.</p>"
        + measured
    )


def contamination_report_html(report: ContaminationReport) -> str:
    """The whole report as one self-contained HTML5 page (inline CSS and script, no external URLs)."""
    r = report
    meta = [
        ("Run", r.run_id),
        ("Created", r.created_at),
        ("Model", r.model),
        ("Device", r.device),
        ("Threshold", f"{r.threshold:.3f}"),
        (
            "Category bands",
            f"near_verbatim ≥ {r.near_verbatim_score:.3f}; rephrased ≥ {r.rephrased_score:.3f}; "
            f"similar ≥ {r.threshold:.3f}",
        ),
        ("N-gram tier", f"n = {r.ngram_n}, min coverage {r.ngram_min_coverage:.2f}"),
        ("Action", r.action),
        ("Remove categories", ", ".join(r.remove_categories) or "(none)"),
    ]
    meta_html = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in meta)
    totals = [
        ("Conversations checked", r.conversations_checked),
        ("Turns checked", r.turns_checked),
        ("Flagged turns", r.flagged_turns),
        ("Flagged conversations", r.flagged_conversations),
        ("Conversations removed", r.removed_conversations),
        ("Conversations cut", r.cut_conversations),
    ]
    counts = sorted(r.counts, key=lambda c: (c.benchmark, c.source))
    counts_rows = [
        (c.benchmark, c.source, c.flagged_turns, c.flagged_conversations, c.removed_conversations, c.cut_conversations)
        for c in counts
    ]
    pairs = sorted_pairs(r.pairs)
    data = {
        "pairs": [_page_pair(p, k) for k, p in enumerate(pairs)],
        "categories": list(CATEGORIES),
        "page_size": PAGE_SIZE,
        "decision_columns": list(DECISION_COLUMNS),
        "decisions_file_name": DECISIONS_FILE_NAME,
    }
    histogram = score_histogram_svg(r.score_bins, r.score_counts, r.threshold, r.score_counts_flagged)
    decision_rows = [
        (
            a.decision.conversation_id,
            a.decision.benchmark,
            a.decision.item_id,
            a.decision.decision,
            a.decision.reviewer,
            a.decision.note,
            "yes" if a.applied else "no",
            a.effect,
        )
        for a in r.decisions
    ]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Contamination report {escape(r.run_id)}</title><style>{_CSS}</style></head>
<body>
<header><h1>Contamination report</h1><dl class="meta">{meta_html}</dl>
<p class="muted">Sections: <a href="#totals">totals</a> · <a href="#counts">per benchmark and source</a> ·
<a href="#histogram">scores</a> · <a href="#calibration">calibration</a> · <a href="#pairs">flagged pairs</a> ·
<a href="#decisions">reviewer decisions</a> · <a href="#act">how to act on this</a></p></header>
<h2 id="totals">Totals</h2>{_table(("", "count"), totals)}
<h2 id="counts">Per benchmark and source</h2>
{_table(("benchmark", "source", "flagged turns", "flagged conversations", "removed", "cut"), counts_rows)}
<h3>Items indexed per benchmark</h3>{_table(("benchmark", "items indexed"), sorted(r.benchmarks.items()))}
<h2 id="histogram">Best scores</h2>{histogram}
{_calibration_html(r)}
<h2 id="pairs">Flagged pairs ({len(pairs)})</h2>
<p class="muted">Each pair: the training turn beside the benchmark item (highlighted: the word n-grams they share
verbatim), the item's reference answer, every tier's evidence, and the whole conversation (collapsed; for a cut
conversation, where it is cut). Decide keep or remove, then export the decisions for the next run.</p>
<form class="filters" onsubmit="return false">
<label>Benchmark <select id="f-benchmark"><option value="">all</option></select></label>
<label>Category <select id="f-category"><option value="">all</option></select></label>
<label>Source <select id="f-source"><option value="">all</option></select></label>
<label>Score at least <input id="f-min" type="number" min="0" max="1" step="0.01" value="0"></label>
<label>Sort <select id="f-sort"><option value="desc">score, highest first</option>
<option value="asc">score, lowest first</option></select></label>
<label>Reviewer <input id="reviewer" type="text" placeholder="your name"></label>
<button id="export" type="button">Export decisions CSV</button>
<span><span id="decided">0</span> decided</span>
</form>
<p id="exported" class="muted"></p>
<div class="pager"><button id="prev" type="button">Previous</button><span id="page-of"></span>
<button id="next" type="button">Next</button><span id="showing" class="muted"></span></div>
<noscript><p>The pairs are listed by this page's script; without JavaScript, read flagged_pairs.csv.</p></noscript>
<div id="pair-list"></div>
<script type="application/json" id="pairs-data">{_json_for_script(data)}</script>
<script>{_SCRIPT}</script>
<h2 id="decisions">Reviewer decisions ({len(r.decisions)})</h2>
{_table(("conversation", "benchmark", "item", "decision", "reviewer", "note", "applied", "effect"), decision_rows)}
<h2 id="act">How to act on this</h2>
<p>Read each pair side by side, with its conversation. A pair that is not contamination (a false positive) is
cleared by <b>Keep</b>; <b>Remove</b> removes a pair whatever its score. <b>Export decisions CSV</b> writes
{DECISIONS_FILE_NAME} (columns {", ".join(DECISION_COLUMNS)}): name it in <code>contamination.decisions_file</code>
and the next run honours it and lists it above as applied. A row
<code>conversation_id,benchmark,item_id,keep</code> added by hand does the same; flagged_pairs.csv, with the same
first columns, serves as a template.</p>
</body></html>
"""


def flagged_pairs_csv(report: ContaminationReport) -> str:
    """One CSV row per flagged pair, in the page's order; doubles as a decisions-file template."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for p in sorted_pairs(report.pairs):
        writer.writerow(
            [
                p.conversation_id,
                p.source,
                p.turn_index,
                p.role,
                p.benchmark,
                p.item_id,
                f"{p.score:.6f}",
                f"{p.ngram_coverage:.6f}",
                f"{p.fuzzy_containment:.6f}",
                p.rephrase_view or "",
                f"{p.rephrase_anchor_share:.6f}",
                p.category,
                p.action,
                p.decision or "",
                p.turn_text,
                p.item_text,
            ]
        )
    return buf.getvalue()
