"""The contamination report for reviewers: one self-contained HTML page and a CSV of flagged pairs.

The page needs no network and no JavaScript. Every string that comes from the data (training
turns hold raw HTML, even <script> tags) is escaped before it reaches the page.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from html import escape

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
"""


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


def highlight(text: str, spans: Iterable[Sequence[int]]) -> str:
    """The text, HTML-escaped, with the character spans wrapped in <mark>."""
    out: list[str] = []
    pos = 0
    for start, end in merge_spans(spans, len(text)):
        out.append(escape(text[pos:start]))
        out.append(f"<mark>{escape(text[start:end])}</mark>")
        pos = end
    out.append(escape(text[pos:]))
    return "".join(out)


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


def score_histogram_svg(bins: Sequence[float], counts: Sequence[int], threshold: float) -> str:
    """An inline SVG bar chart of best scores; bar heights scale with log(1 + count), labels show counts."""
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
        colour = "#c62828" if edge >= threshold else "#5c7cfa"
        parts.append(
            f'<rect x="{x0 + 1:.1f}" y="{top + plot_h - bar:.1f}" width="{max(x1 - x0 - 2, 1):.1f}" '
            f'height="{bar:.1f}" fill="{colour}"><title>{edge:.3f}-{nxt:.3f}: {count}</title></rect>'
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
        f"best cosine score per checked turn (bar height: log scale; numbers are turn counts)</text></svg>"
    )
    return "".join(parts)


def sorted_pairs(pairs: Iterable[FlaggedPair]) -> list[FlaggedPair]:
    """Pairs in category order (near_verbatim, rephrased, similar), highest score first within each."""
    return sorted(pairs, key=lambda p: (CATEGORIES.index(p.category), -p.score, p.conversation_id, p.turn_index))


def _pair_html(p: FlaggedPair) -> str:
    decision = p.decision or "none"
    return (
        f'<div class="pair {escape(p.category)}"><div class="head">'
        f'<span class="badge {escape(p.category)}">{escape(p.category)}</span>'
        f"score <b>{p.score:.3f}</b> · n-gram coverage <b>{p.ngram_coverage:.2f}</b> · "
        f"fuzzy containment <b>{p.fuzzy_containment:.2f}</b> · "
        + (
            f"rephrase tier: the item's {escape(p.rephrase_view)} at this score, "
            f"<b>{p.rephrase_anchor_share:.0%}</b> of its anchor terms (numbers, names, rare words) in the turn · "
            if p.rephrase_view
            else ""
        )
        + f"action <b>{escape(p.action)}</b> · reviewer decision <b>{escape(decision)}</b></div>"
        f'<div class="sides"><div class="side"><h4>Training turn: conversation '
        f"<code>{escape(p.conversation_id)}</code> · source {escape(p.source)} · turn {p.turn_index} · "
        f'{escape(p.role)}</h4><pre class="text">{highlight(p.turn_text, p.turn_spans)}</pre></div>'
        f'<div class="side"><h4>Benchmark item: {escape(p.benchmark)} · item <code>{escape(p.item_id)}</code>'
        f'</h4><pre class="text">{highlight(p.item_text, p.item_spans)}</pre></div></div></div>'
    )


def contamination_report_html(report: ContaminationReport) -> str:
    """The whole report as one self-contained HTML5 page (inline CSS, no scripts, no external URLs)."""
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
    groups = []
    for cat in CATEGORIES:
        in_cat = [p for p in pairs if p.category == cat]
        if in_cat:
            groups.append(
                f'<h3 id="cat-{cat}">{escape(cat)} ({len(in_cat)})</h3>' + "".join(_pair_html(p) for p in in_cat)
            )
    pairs_html = "".join(groups) or '<p class="muted">No flagged pairs: nothing matched a benchmark item.</p>'
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
    calibration = (
        f'<h2 id="calibration">Calibration</h2><p class="calib">{escape(r.calibration)}</p>' if r.calibration else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Contamination report {escape(r.run_id)}</title><style>{_CSS}</style></head>
<body>
<header><h1>Contamination report</h1><dl class="meta">{meta_html}</dl>
<p class="muted">Sections: <a href="#totals">totals</a> · <a href="#counts">per benchmark and source</a> ·
<a href="#histogram">scores</a> · <a href="#pairs">flagged pairs</a> · <a href="#decisions">reviewer
decisions</a> · <a href="#act">how to act on this</a></p></header>
<h2 id="totals">Totals</h2>{_table(("", "count"), totals)}
<h2 id="counts">Per benchmark and source</h2>
{_table(("benchmark", "source", "flagged turns", "flagged conversations", "removed", "cut"), counts_rows)}
<h3>Items indexed per benchmark</h3>{_table(("benchmark", "items indexed"), sorted(r.benchmarks.items()))}
<h2 id="histogram">Best scores</h2>{score_histogram_svg(r.score_bins, r.score_counts, r.threshold)}
<h2 id="pairs">Flagged pairs ({len(pairs)})</h2>
<p class="muted">Highlighted: the word n-grams the training turn shares verbatim with the benchmark item.</p>
{pairs_html}
<h2 id="decisions">Reviewer decisions ({len(r.decisions)})</h2>
{_table(("conversation", "benchmark", "item", "decision", "reviewer", "note", "applied", "effect"), decision_rows)}
<h2 id="act">How to act on this</h2>
<p>Read each pair side by side. A pair that is not contamination (a false positive) is cleared by adding
a row <code>conversation_id,benchmark,item_id,keep</code> to the decisions file named by
<code>contamination.decisions_file</code> (a CSV with columns conversation_id, benchmark, item_id,
decision, reviewer, note; <code>remove</code> removes a pair whatever its score). The next run honours it
and lists it above as applied. The CSV export of the flagged pairs has the same first columns and serves
as a template.</p>
{calibration}
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
