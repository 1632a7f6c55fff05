"""The reviewers' contamination report, built from the findings files of a run."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from curation.contamination.check import cut_index
from curation.contamination.report_html import contamination_report_html, flagged_pairs_csv
from curation.parquet import atomic_write_table, read_conversations_parquet
from curation.stage import Stage
from schemas.arrow import FINDINGS_SCHEMA
from schemas.config import ContaminationConfig
from schemas.contamination import (
    AppliedDecision,
    BenchmarkItem,
    BenchmarkSourceCount,
    ContaminationReport,
    ContextTurn,
    FlaggedPair,
    ReviewerDecision,
    TurnFinding,
)
from schemas.conversation import Conversation
from schemas.files import atomic_write_text

# Shown in every report: what the defaults measured on real data (docs/contamination.md).
CALIBRATION = (
    "Measured with the default settings (bench/contamination.py, docs/contamination.md): recall 99-100% on real "
    "benchmark questions planted verbatim and 100% on light edits inside real ShareGPT conversations; on 2,952 "
    "untouched real conversations 25 (0.85%) were flagged, of which 6 near-verbatim copies, 10 rephrased "
    "(7 of them one generic prompt) and 9 similar-only (same topic, different question): review the "
    "'similar' pairs first. GPT-4 rephrasings (rephrased_dev, held out from calibration): 98% of GSM8K, 82% of MMLU "
    "and 80% of HumanEval found; the rephrase tier adds at most 12 flagged turns of 10,099 (same-topic quiz "
    "questions): check its pairs' anchor share."
)
# Lower edges of the score histogram's bins: 0.00, 0.05, ..., 0.95.
SCORE_BINS = [round(i * 0.05, 2) for i in range(20)]


def write_findings(path: Path, findings: Sequence[TurnFinding]) -> int:
    """Every checked turn's finding, as Parquet with the explicit schema."""
    rows = [f.model_dump(mode="python") for f in findings]
    atomic_write_table(path, pa.Table.from_pylist(rows, schema=FINDINGS_SCHEMA), schema=FINDINGS_SCHEMA)
    return len(rows)


def rephrase_matched(row: Mapping[str, object]) -> bool:
    """Whether a findings row's rephrase-tier match is the pair shown to reviewers."""
    return row["rephrase_item_id"] is not None and (row["rephrase_benchmark"], row["rephrase_item_id"]) == (
        row["matched_benchmark"],
        row["matched_item_id"],
    )


def _flagged_conversations(flagged: pl.DataFrame, part: Path) -> dict[tuple[str, int, str], Conversation]:
    """The conversations of a part's flagged rows, keyed (id, turn index, turn text) of each row: the id
    alone may repeat within a part, the flagged turn's text tells such conversations apart."""
    wanted = set(flagged["conversation_id"].to_list())
    ids = pq.read_table(part, columns=["id"])["id"].to_pylist()
    rows = [k for k, conversation_id in enumerate(ids) if conversation_id in wanted]
    convs = read_conversations_parquet(part, rows)
    found: dict[tuple[str, int, str], Conversation] = {}
    for r in flagged.iter_rows(named=True):
        turn, text = r["turn_index"], r["turn_text"] or ""
        for conv in convs:
            if conv.id == r["conversation_id"] and turn < len(conv.turns) and conv.turns[turn].content == text:
                found[(conv.id, turn, text)] = conv
                break
    return found


def _quantiles(scores: pl.Series) -> dict[str, float]:
    if scores.len() == 0:
        return {}
    values = scores.cast(pl.Float64).to_numpy()
    return {name: round(float(np.quantile(values, q)), 4) for name, q in (("p50", 0.5), ("p99", 0.99))} | {
        "min": round(float(values.min()), 4),
        "max": round(float(values.max()), 4),
    }


def _histogram(scores: pl.Series) -> list[int]:
    counts = [0] * len(SCORE_BINS)
    if scores.len():
        for row in (scores.clip(0.0, 0.9999) / 0.05).floor().cast(pl.Int32).value_counts().iter_rows():
            counts[row[0]] += row[1]
    return counts


def build_contamination_report(
    findings_files: Sequence[Path],
    items: Sequence[BenchmarkItem],
    *,
    config: ContaminationConfig,
    run_id: str,
    created_at: str,
    device: str,
    conversations_checked: int,
    decisions: Sequence[ReviewerDecision],
    decisions_applied: Mapping[tuple[str, str, str], str],
    checked_parts: Sequence[Path] = (),
    answers: Mapping[tuple[str, str], str] | None = None,
    calibration: str = CALIBRATION,
) -> ContaminationReport:
    """Counts, the score histogram and every flagged pair beside its item, for reviewers.

    `checked_parts[k]` is the conversations part `findings_files[k]` checked: each pair then shows its whole
    conversation and, where cut, the cut point. `answers`: each question's reference answer, keyed
    (benchmark, item id) (curation.contamination.benchmarks.reference_answers)."""
    frames = [pl.read_parquet(p) for p in findings_files]
    empty = pl.from_arrow(FINDINGS_SCHEMA.empty_table())
    assert isinstance(empty, pl.DataFrame)
    findings = pl.concat(frames) if frames else empty
    findings = findings.with_columns(source=pl.col("input_file").str.split("/").list.last())
    flagged = findings.filter(pl.col("flagged"))
    conv_key = pl.struct("input_file", "record_index", "conversation_id")
    counts = (
        flagged.group_by("matched_benchmark", "source")
        .agg(
            flagged_turns=pl.len(),
            flagged_conversations=conv_key.n_unique(),
            removed_conversations=conv_key.filter(pl.col("action") == "removed").n_unique(),
            cut_conversations=conv_key.filter(pl.col("action") == "cut").n_unique(),
        )
        .sort("matched_benchmark", "source")
    )
    conversations: dict[tuple[str, int, str], Conversation] = {}
    for frame, part in zip(frames, checked_parts, strict=False):
        part_flagged = frame.filter(pl.col("flagged"))
        if part_flagged.height:
            conversations |= _flagged_conversations(part_flagged, part)
    texts = {(i.benchmark, i.item_id): i.text for i in items}
    answers = answers or {}
    rows = list(flagged.sort("matched_score", descending=True).iter_rows(named=True))
    # a cut conversation is cut before the first of its turns whose action is "cut"
    cuts: dict[tuple[str, str], int] = {}
    for r in sorted(rows, key=lambda r: r["turn_index"]):
        conv = conversations.get((r["conversation_id"], r["turn_index"], r["turn_text"] or ""))
        if r["action"] == "cut" and conv is not None:
            cuts.setdefault((r["input_file"], r["conversation_id"]), cut_index(conv, r["turn_index"]))
    pairs = []
    for r in rows:
        conv = conversations.get((r["conversation_id"], r["turn_index"], r["turn_text"] or ""))
        embedding_matched = (r["best_benchmark"], r["best_item_id"]) == (r["matched_benchmark"], r["matched_item_id"])
        pairs.append(
            FlaggedPair(
                conversation_id=r["conversation_id"],
                source=r["source"],
                turn_index=r["turn_index"],
                role=r["role"],
                turn_text=r["turn_text"] or "",
                benchmark=r["matched_benchmark"],
                item_id=r["matched_item_id"],
                item_text=texts.get((r["matched_benchmark"], r["matched_item_id"]), ""),
                score=r["matched_score"],
                ngram_coverage=r["ngram_coverage"] if r["ngram_item_id"] == r["matched_item_id"] else 0.0,
                category=r["category"],
                fuzzy_containment=r["fuzzy_containment"] if r["fuzzy_item_id"] == r["matched_item_id"] else 0.0,
                rephrase_view=r["rephrase_view"] if rephrase_matched(r) else None,
                rephrase_anchor_share=r["rephrase_anchor_share"] if rephrase_matched(r) else 0.0,
                action=r["action"],
                decision=r["decision"],
                turn_spans=tuple(tuple(s) for s in r["turn_spans"]),
                item_spans=tuple(tuple(s) for s in r["item_spans"]),
                embedding_score=r["best_score"] if embedding_matched else 0.0,
                embedding_unit=r["best_unit"] if embedding_matched else "",
                item_answer=answers.get((r["matched_benchmark"], r["matched_item_id"]), ""),
                conversation_title=(conv.title or "") if conv else "",
                conversation=tuple(ContextTurn(role=t.role, text=t.content) for t in conv.turns) if conv else (),
                cut_at=cuts.get((r["input_file"], r["conversation_id"])) if r["action"] == "cut" else None,
            )
        )
    applied = [
        AppliedDecision(
            decision=d,
            applied=(d.conversation_id, d.benchmark, d.item_id) in decisions_applied,
            effect=decisions_applied.get((d.conversation_id, d.benchmark, d.item_id), "no conversation with this id"),
        )
        for d in decisions
    ]
    per_benchmark: dict[str, int] = {}
    for i in items:
        per_benchmark[i.benchmark] = per_benchmark.get(i.benchmark, 0) + 1
    conv_actions = flagged.group_by(conv_key).agg(pl.col("action"))
    unflagged = findings.filter(~pl.col("flagged"))["best_score"]
    return ContaminationReport(
        run_id=run_id,
        created_at=created_at,
        model=config.model,
        device=device,
        threshold=config.threshold,
        near_verbatim_score=config.near_verbatim_score,
        rephrased_score=config.rephrased_score,
        ngram_n=config.ngram_n,
        ngram_min_coverage=config.ngram_min_coverage,
        action=config.action,
        remove_categories=tuple(config.remove_categories),
        benchmarks=per_benchmark,
        conversations_checked=conversations_checked,
        turns_checked=findings.height,
        flagged_turns=flagged.height,
        flagged_conversations=conv_actions.height,
        removed_conversations=sum("removed" in a for a in conv_actions["action"].to_list()),
        cut_conversations=sum("cut" in a for a in conv_actions["action"].to_list()),
        counts=[BenchmarkSourceCount(benchmark=r.pop("matched_benchmark"), **r) for r in counts.iter_rows(named=True)],
        score_bins=SCORE_BINS,
        score_counts=_histogram(findings["best_score"]),
        score_counts_flagged=_histogram(flagged["best_score"]),
        unflagged_score_quantiles=_quantiles(unflagged),
        flagged_score_quantiles=_quantiles(flagged["best_score"]),
        unflagged_near_threshold=int(((unflagged >= config.threshold - 0.05) & (unflagged < config.threshold)).sum()),
        pairs=pairs,
        decisions=applied,
        calibration=calibration,
    )


def write_contamination_report(report: ContaminationReport, folder: Path) -> dict[str, str]:
    """report.json, flagged_pairs.csv and report.html (one offline file) in `folder`."""
    paths = {
        "json": folder / "report.json",
        "csv": folder / "flagged_pairs.csv",
        "html": folder / "report.html",
    }
    atomic_write_text(paths["json"], report.model_dump_json(indent=2))
    atomic_write_text(paths["csv"], flagged_pairs_csv(report))
    atomic_write_text(paths["html"], contamination_report_html(report))
    return {k: str(v) for k, v in paths.items()}


# The flagged pairs an artifact shows itself: the strongest first, enough to judge the run at a glance
# (the full list is in report.html and flagged_pairs.csv).
SUMMARY_TOP_PAIRS = 10
_EXCERPT_CHARS = 90
# The summary's table shares the page with the UI's side panel: short excerpts keep it within the page.
SUMMARY_EXCERPT_CHARS = 36


def _cell(text: str, chars: int = _EXCERPT_CHARS) -> str:
    """One markdown table cell: one line, cut to an excerpt, then pipes and HTML escaped (a turn may hold
    a <script>; the UI's markdown must show it as text)."""
    flat = " ".join(text.split())
    excerpt = flat if len(flat) <= chars else flat[: chars - 1] + "…"
    return html.escape(excerpt, quote=False).replace("|", "\\|")


def top_pair_rows(
    report: ContaminationReport, limit: int, excerpt_chars: int = _EXCERPT_CHARS
) -> list[dict[str, str | float | int]]:
    """The `limit` highest-scored flagged pairs as flat rows (for the table artifact and the summary)."""
    return [
        {
            "score": round(p.score, 3),
            "category": p.category,
            "benchmark": p.benchmark,
            "item": p.item_id,
            "action": p.action,
            "conversation": p.conversation_id,
            "turn": p.turn_index,
            "turn text": _cell(p.turn_text, excerpt_chars),
            "benchmark text": _cell(p.item_text, excerpt_chars),
        }
        for p in sorted(report.pairs, key=lambda p: -p.score)[:limit]
    ]


def contamination_summary_markdown(report: ContaminationReport, links: Mapping[str, str]) -> str:
    """What a Prefect markdown artifact shows: the numbers, the top flagged pairs and links to the report files."""
    lines = [
        "# Contamination check",
        "",
        f"Checked **{report.conversations_checked}** conversations ({report.turns_checked} turns) against "
        f"**{sum(report.benchmarks.values())}** benchmark items: **{report.flagged_turns}** flagged turns in "
        f"{report.flagged_conversations} conversations, **{report.removed_conversations}** conversations removed, "
        f"**{report.cut_conversations}** cut (threshold {report.threshold}, model {report.model}, {report.device}).",
        "",
        "Files: " + ", ".join(f"[{Path(link).name}]({link})" for _, link in sorted(links.items())),
    ]
    # benchmark and item in one cell: a column fewer, so the table fits beside the UI's side panel
    rows = [
        {**r, "item": f"{r['benchmark']}/{r['item']}"}
        for r in top_pair_rows(report, SUMMARY_TOP_PAIRS, SUMMARY_EXCERPT_CHARS)
    ]
    if rows:
        columns = ["score", "category", "item", "action", "conversation", "turn text"]
        shown = "all" if len(rows) == len(report.pairs) else f"the top {len(rows)} of {len(report.pairs)}"
        lines += [
            "",
            f"## Flagged pairs ({shown}, highest score first)",
            "",
            "| " + " | ".join(columns) + " |",
            "|" + "---|" * len(columns),
            *("| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows),
        ]
    return "\n".join(lines) + "\n"


# Run-wide: the reviewers' report over every part's findings.
CONTAMINATION_REPORT = Stage("contamination-report", build_contamination_report, config="contamination")
