"""`chatsift runs show RUN`: one offline page to look at a run's data, RUN/explore.html.

What it shows, all read from the run's own files:
- the counts per stage and reason (report.json), each reason with a sample of its dropped conversations as text,
  beside the ledger's detail. The text is the conversation as the last stage output that still holds it saw it
  (stages/<stage>/); where none does (a record dropped while it was read or cleaned: stages/ingest/ is deleted
  once cleaning has read it), the raw bytes of the input at the ledger's byte offset, when the file is there;
- histograms of turns and characters per conversation and of characters per turn by role, before curation
  (the earliest stage output the run kept) and after (conversations/), of tokens per conversation and per turn by
  role before and after (a sample tokenized with the run's tokenizer), and of tokens per conversation in shards/;
- an embedding map of the kept, dropped and contaminated conversations (curation/runs/explore_map.py).

Samples are drawn by a hash of the conversation id, so a page is the same each time it is made, and capped
per reason, so the page stays small whatever the run's size. Every text from the data is HTML-escaped: the page
holds no script at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
import polars as pl
from pydantic import ValidationError

from curation.clean.secrets import redact_text
from curation.dedupe.minhash import conversation_shingles, jaccard
from curation.parquet import read_conversations_parquet
from curation.runs.explore_map import kept_layer, ledger_layers, map_html
from schemas.arrow import LEDGER_SCHEMA
from schemas.config import CurationConfig
from schemas.config.clean import SecretsConfig
from schemas.conversation import Conversation
from schemas.files import atomic_write_text
from schemas.ledger import RunReport
from schemas.run_layout import CONVERSATIONS_DIR, LEDGER_DIR, REPORT_NAME

EXPLORE_NAME = "explore.html"
# Stage outputs of conversations under stages/, in pipeline order: a dropped record is still in the ones before
# its stage (stages/tokenize/ holds token ids).
STAGE_OUTPUTS = ("ingest", "clean", "dedupe_exact", "dedupe_minhash", "contamination", "split")
# Dropped conversations shown per (stage, reason), and the characters shown of each turn.
SAMPLES_PER_REASON = 5
TURN_CHARS = 1500
RAW_CHARS = 3000


@dataclass(frozen=True)
class DroppedSample:
    """One dropped conversation as the page shows it."""

    conversation_id: str
    stage: str
    reason: str
    detail: str
    where: str  # where the text shown comes from
    conversation: Conversation | None  # as the last stage output holding it saw it
    raw: str  # else the input's raw bytes from the record's offset, "" when they cannot be read


def _ledger_sample(run_dir: Path, rows: pl.Expr, per: int) -> pl.DataFrame:
    """Up to `per` of the ledger's `rows` for each (stage, reason), drawn by a hash of the conversation id, so the
    same run always shows the same ones."""
    ledger_files = sorted((run_dir / LEDGER_DIR).glob("*.parquet"))
    if not ledger_files:
        return pl.from_arrow(LEDGER_SCHEMA.empty_table())  # type: ignore[return-value]
    return (
        pl.scan_parquet(ledger_files)
        .filter(rows)
        .with_columns(order=pl.col("conversation_id").hash(seed=7))
        .sort("stage", "reason", "order")
        .group_by("stage", "reason", maintain_order=True)
        .head(per)
        .collect()
    )


# The stage outputs' conversations by (id, input file, record index), with the stage that held each.
_Found = dict[tuple[str, str | None, int | None], tuple[str, Conversation]]


def _key(row: dict) -> tuple[str, str | None, int | None]:
    return row["conversation_id"], row["input_file"], row["record_index"]


def sampled_drops(ledger: pl.DataFrame, found: _Found, secrets: SecretsConfig) -> list[DroppedSample]:
    """The sampled ledger rows with their text: from the stage outputs (`found`), else the input's raw bytes."""
    samples = []
    for r in ledger.iter_rows(named=True):
        stored = found.get(_key(r))
        if stored is not None:
            stage, conv = stored
            samples.append(
                DroppedSample(r["conversation_id"], r["stage"], r["reason"], r["detail"], f"stages/{stage}/", conv, "")
            )
            continue
        raw = _raw_excerpt(r["input_file"], r["byte_offset"], secrets)
        where = f"{r['input_file']} at byte {r['byte_offset'] or 0}" if raw else "not kept by the run"
        samples.append(DroppedSample(r["conversation_id"], r["stage"], r["reason"], r["detail"], where, None, raw))
    return samples


def _stage_parts(run_dir: Path, stage: str) -> list[Path]:
    """The parts of one stage output (stages/<stage>/), in order."""
    return sorted((run_dir / "stages" / stage).glob("part-*.parquet"))


def _stage_conversations(run_dir: Path, ids: Sequence[str]) -> _Found:
    """(id, input file, record index) -> (stage, conversation) from the last stage output holding it."""
    found: _Found = {}
    wanted = set(ids)
    for stage in STAGE_OUTPUTS:
        for part in _stage_parts(run_dir, stage):
            names = pl.read_parquet(part, columns=["id"])["id"].to_list()
            rows = [k for k, name in enumerate(names) if name in wanted]
            for conv in read_conversations_parquet(part, rows) if rows else []:
                found[(conv.id, conv.provenance.input_file, conv.provenance.record_index)] = (stage, conv)
    return found


def _raw_excerpt(input_file: str | None, byte_offset: int | None, secrets: SecretsConfig) -> str:
    """The input's bytes from the record's offset, with the secrets the run's secrets stage redacts redacted (the
    run keeps no secret anywhere, this page included). Redacted over four times what is shown, then cut, so that
    no secret is cut in two before it is redacted."""
    if not input_file:
        return ""
    try:
        with open(input_file, "rb") as f:
            f.seek(byte_offset or 0)
            chunk = f.read(RAW_CHARS * 4).decode("utf-8", errors="replace")
    except OSError:
        return ""
    return redact_text(chunk, config=secrets)[0][:RAW_CHARS]


def run_config(run_dir: Path) -> CurationConfig:
    """The run's config.json; the defaults where it cannot be read as today's config (another code version)."""
    try:
        return CurationConfig.model_validate_json((run_dir / "config.json").read_bytes())
    except (OSError, ValidationError):
        return CurationConfig()


# --- duplicates and splits -------------------------------------------------------------------

# The reasons whose ledger rows name the kept copy (duplicate_of).
DUPLICATE_REASONS = ("exact_duplicate", "prefix_of_longer", "same_prompts", "near_duplicate")


@dataclass(frozen=True)
class DuplicatePair:
    """A dropped duplicate beside the copy the run kept, with their word n-gram Jaccard."""

    reason: str
    detail: str
    dropped: Conversation
    kept: Conversation
    jaccard: float


def duplicate_pairs(rows: pl.DataFrame, found: _Found, ngram: int) -> list[DuplicatePair]:
    """The sampled duplicate ledger rows beside their kept copy, both from the stage outputs (`found`)."""
    by_id = {conv.id: conv for _, conv in found.values()}
    pairs = []
    for r in rows.iter_rows(named=True):
        stored, kept = found.get(_key(r)), by_id.get(r["duplicate_of"])
        if stored is None or kept is None:
            continue
        dropped = stored[1]
        similarity = jaccard(conversation_shingles(dropped, ngram=ngram), conversation_shingles(kept, ngram=ngram))
        pairs.append(DuplicatePair(r["reason"], r["detail"], dropped, kept, similarity))
    return pairs


def split_pieces(run_dir: Path, limit: int = SAMPLES_PER_REASON) -> list[list[Conversation]]:
    """Up to `limit` split conversations (by a hash of their id), each as its pieces in order."""
    parts = sorted((run_dir / CONVERSATIONS_DIR).glob("*.parquet"))
    if not parts:
        return []
    index = (
        pl.concat(
            [
                pl.read_parquet(part, columns=["parent_id", "split_index"])
                .with_row_index("row")
                .with_columns(part=pl.lit(k))
                for k, part in enumerate(parts)
            ]
        )
        .filter(pl.col("parent_id").is_not_null())
        .with_columns(order=pl.col("parent_id").hash(seed=7))
    )
    chosen = index.select("parent_id", "order").unique().sort("order").head(limit)["parent_id"].to_list()
    rows = index.filter(pl.col("parent_id").is_in(chosen)).sort("order", "split_index")
    pieces: dict[str, list[Conversation]] = {}
    for k, part in enumerate(parts):
        mine = rows.filter(pl.col("part") == k)
        for conv in read_conversations_parquet(part, mine["row"].to_list()) if mine.height else []:
            pieces.setdefault(conv.parent_id or "", []).append(conv)
    return [sorted(pieces[p], key=lambda c: c.split_index or 0) for p in chosen if p in pieces]


def _marked_diff(a: str, b: str) -> tuple[str, str]:
    """Both texts escaped, the words only one of them has wrapped in <del> (in a) and <ins> (in b)."""
    import difflib
    import re

    if a == b:  # most turns of a near-duplicate pair: no diff to run
        return escape(a), escape(b)
    wa, wb = re.findall(r"\S+|\s+", a), re.findall(r"\S+|\s+", b)
    out_a, out_b = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, wa, wb, autojunk=False).get_opcodes():
        left, right = escape("".join(wa[i1:i2])), escape("".join(wb[j1:j2]))
        if op == "equal":
            out_a.append(left)
            out_b.append(right)
            continue
        if left:
            out_a.append(f"<del>{left}</del>")
        if right:
            out_b.append(f"<ins>{right}</ins>")
    return "".join(out_a), "".join(out_b)


def _pair_html(pair: DuplicatePair) -> str:
    rows = []
    for k in range(max(len(pair.dropped.turns), len(pair.kept.turns))):
        a = pair.dropped.turns[k] if k < len(pair.dropped.turns) else None
        b = pair.kept.turns[k] if k < len(pair.kept.turns) else None
        left, right = _marked_diff(_cut(a.content, TURN_CHARS) if a else "", _cut(b.content, TURN_CHARS) if b else "")
        rows.append(
            f'<tr><td><div class="who">turn {k} · {escape(a.role) if a else "none"}</div><pre>{left}</pre></td>'
            f'<td><div class="who">turn {k} · {escape(b.role) if b else "none"}</div><pre>{right}</pre></td></tr>'
        )
    return (
        f'<div class="drop"><code>{escape(pair.reason)}</code> · Jaccard {pair.jaccard:.3f} · {escape(pair.detail)}'
        f'<table class="pair"><thead><tr><th>dropped: {escape(pair.dropped.id)}</th><th>kept: {escape(pair.kept.id)}'
        f"</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _split_html(pieces: list[Conversation]) -> str:
    items = "".join(
        f"<details><summary>piece {c.split_index} · {escape(c.id)} · {len(c.turns)} turns</summary>"
        + "".join(
            f'<div class="turn"><div class="who">{escape(t.role)}</div><pre>{escape(_cut(t.content, TURN_CHARS))}</pre>'
            "</div>"
            for t in c.turns
        )
        + "</details>"
        for c in pieces
    )
    return f'<div class="drop split"><b>{escape(pieces[0].parent_id or "")}</b> · {len(pieces)} pieces{items}</div>'


# --- distributions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Distribution:
    """Per-conversation and per-turn lengths of one set of conversations."""

    turns: np.ndarray  # turns per conversation
    chars: np.ndarray  # characters per conversation
    chars_by_role: dict[str, np.ndarray]  # characters per turn, by role


def distribution(parts: Sequence[Path]) -> Distribution | None:
    """The lengths of the conversations in `parts`, computed by polars from the columns (no conversation objects,
    and no text held beyond a row group at a time)."""
    if not parts:
        return None
    scan = pl.scan_parquet(list(parts)).select("turns")
    content = pl.element().struct.field("content").str.len_chars()
    per_conversation = scan.select(
        turns=pl.col("turns").list.len(), chars=pl.col("turns").list.eval(content).list.sum()
    ).collect(engine="streaming")
    per_turn = (
        scan.select(pl.col("turns").explode().alias("turn"))
        .select(role=pl.col("turn").struct.field("role"), chars=pl.col("turn").struct.field("content").str.len_chars())
        .drop_nulls()
        .collect(engine="streaming")
    )
    by_role = {
        role: per_turn.filter(pl.col("role") == role)["chars"].to_numpy() for role in sorted(per_turn["role"].unique())
    }
    return Distribution(
        per_conversation["turns"].to_numpy(), per_conversation["chars"].fill_null(0).to_numpy(), by_role
    )


@dataclass(frozen=True)
class ExploreTools:
    """What the page needs beyond the run's files, built by the caller from the run's config (flows/resources.py
    loads the tokenizer and the embedding model; this module loads neither). None leaves that part out."""

    count_tokens: Callable[[Sequence[str]], list[int]] | None = None  # tokens of each text, the run's tokenizer
    embed: Callable[[list[str]], np.ndarray] | None = None  # a unit vector per text, the contamination model's


@dataclass(frozen=True)
class TokenDistribution:
    """Tokens (turn contents, no chat template) of a sample of conversations: per conversation and per turn by role."""

    per_conversation: np.ndarray
    by_role: dict[str, np.ndarray]
    sampled: int
    total: int


def token_distribution(
    parts: Sequence[Path], count_tokens: Callable[[Sequence[str]], list[int]], limit: int
) -> TokenDistribution | None:
    """Up to `limit` conversations of `parts`, drawn by a hash of the id (a piece's: its parent's, so that
    the samples before and after a split hold the same conversations), tokenized in one batch."""
    if not parts:
        return None
    scan = pl.scan_parquet(list(parts)).select("id", "parent_id", "turns")
    total = scan.select(pl.len()).collect().item()
    order = pl.coalesce("parent_id", "id").hash(seed=7)
    sample = scan.with_columns(order=order).sort("order", "id").head(limit).collect()
    turns = (
        sample.with_row_index("conversation")
        .select("conversation", "turns")
        .explode("turns")
        .select("conversation", role=pl.col("turns").struct.field("role"), text=pl.col("turns").struct.field("content"))
        .drop_nulls()
    )
    tokens = turns.with_columns(tokens=pl.Series(count_tokens(turns["text"].to_list()), dtype=pl.Int64))
    per_conversation = tokens.group_by("conversation").agg(pl.col("tokens").sum())["tokens"].to_numpy()
    by_role = {
        role: tokens.filter(pl.col("role") == role)["tokens"].to_numpy() for role in sorted(tokens["role"].unique())
    }
    return TokenDistribution(per_conversation, by_role, min(limit, total), total)


def counting_each_text_once(count_tokens: Callable[[Sequence[str]], list[int]]) -> Callable[[Sequence[str]], list[int]]:
    """`count_tokens` that counts only texts it has not seen: the samples before and after curation
    share most of their turns (1.9 of 2.6 s of the page's tokenization on the real sample)."""
    known: dict[str, int] = {}

    def count(texts: Sequence[str]) -> list[int]:
        unseen = list(dict.fromkeys(t for t in texts if t not in known))
        if unseen:
            known.update(zip(unseen, count_tokens(unseen), strict=True))
        return [known[t] for t in texts]

    return count


def token_histograms(before: TokenDistribution | None, after: TokenDistribution) -> list[str]:
    """Tokens per conversation and per turn of each role, before and after curation."""
    charts = [
        histogram_svg(
            "tokens per conversation (turn text)", before.per_conversation if before else None, after.per_conversation
        )
    ]
    for role, lengths in after.by_role.items():
        charts.append(histogram_svg(f"tokens per {role} turn", before.by_role.get(role) if before else None, lengths))
    return charts


def _sample_note(name: str, tokens: TokenDistribution | None) -> str:
    if tokens is None:
        return ""
    if tokens.sampled == tokens.total:
        return f"{name}: all {tokens.total} conversations"
    drawn = "drawn by a hash of the id (a piece: its parent's)"
    return f"{name}: {tokens.sampled} of {tokens.total} conversations, {drawn}"


def shard_tokens(run_dir: Path) -> np.ndarray:
    """Tokens per conversation in the run's shards (packed: each conversation's length in its row)."""
    files = sorted((run_dir / "shards").glob("*.parquet"))
    if not files:
        return np.zeros(0, np.int64)
    columns = pl.read_parquet_schema(files[0])
    if "seq_lengths" in columns:
        return pl.scan_parquet(files).select(pl.col("seq_lengths").explode()).collect().to_series().to_numpy()
    return pl.scan_parquet(files).select(pl.col("input_ids").list.len()).collect().to_series().to_numpy()


def _log_bins(*series: np.ndarray) -> np.ndarray:
    """Bin edges 1, 2, 4, ... covering every value (lengths span orders of magnitude)."""
    top = max((int(s.max()) for s in series if len(s)), default=1)
    return np.array([0, *(2**k for k in range(max(1, math.ceil(math.log2(top + 1))) + 1))])


def histogram_svg(title: str, before: np.ndarray | None, after: np.ndarray) -> str:
    """Two series (before, after) over log-spaced bins as one inline SVG of paired bars."""
    series = [(s, colour, name) for s, colour, name in ((before, "#adb5bd", "before"), (after, "#4263eb", "after"))]
    present = [(s, c, n) for s, c, n in series if s is not None and len(s)]
    if not present:
        return f'<p class="muted">{escape(title)}: no data.</p>'
    edges = _log_bins(*(s for s, _, _ in present))
    counts = [(np.histogram(s, bins=edges)[0], c, n) for s, c, n in present]
    width, height, left, bottom, top = 720, 200, 40, 34, 18
    plot_w, plot_h = width - left - 10, height - top - bottom
    slot = plot_w / (len(edges) - 1)
    peak = max(int(c.max()) for c, _, _ in counts) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(title)}"><text x="{left}" y="12" font-size="12">{escape(title)}</text>'
    ]
    for k, (values, colour, name) in enumerate(counts):
        for i, count in enumerate(values):
            bar = count / peak * plot_h
            x = left + i * slot + 1 + k * (slot - 2) / len(counts)
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - bar:.1f}" width="{(slot - 2) / len(counts):.1f}" '
                f'height="{bar:.1f}" fill="{colour}"><title>{name}: {count} in [{edges[i]}, {edges[i + 1]})</title>'
                "</rect>"
            )
    # One legend, ended at the right edge: labels at fixed places overlapped once counts ran to 4 digits.
    keys = (f'<tspan fill="{c}" dx="{12 if k else 0}">■ {n} ({len(s)})</tspan>' for k, (s, c, n) in enumerate(present))
    parts.append(f'<text x="{width - 10}" y="12" font-size="11" text-anchor="end">{"".join(keys)}</text>')
    for i, edge in enumerate(edges[:-1]):
        if len(edges) <= 16 or i % 2 == 0:
            parts.append(f'<text x="{left + i * slot:.1f}" y="{top + plot_h + 14}" font-size="10">{edge}</text>')
    parts.append("</svg>")
    return "".join(parts)


# --- the page ---------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:1rem 1.5rem;color:#1d1d1f;line-height:1.4}
h2{border-bottom:2px solid #ddd;margin-top:2rem}table{border-collapse:collapse}th,td{border:1px solid #ccc;
padding:.2rem .6rem;text-align:left;vertical-align:top}td.n{text-align:right}.muted{color:#666}
.drop{border:1px solid #ccc;border-left:5px solid #e8590c;border-radius:4px;margin:.6rem 0;padding:.4rem .7rem}
.turn{margin:.2rem 0}.who{font-size:.8rem;color:#555}pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:0;
background:#fafafa;border:1px solid #eee;padding:.3rem;max-height:14rem;overflow:auto;font-size:.85rem}
.charts{display:flex;flex-wrap:wrap;gap:1rem}table.pair{width:100%;table-layout:fixed;margin-top:.3rem}
del{background:#ffc9c9}ins{background:#b2f2bb}details{margin:.2rem 0}
.map{border:1px solid #ddd;background:#fff;display:block;margin-top:.4rem}.map circle{fill:#adb5bd;
fill-opacity:.75}.map .d{fill:#212529}.map .x{fill:none;stroke:#e03131;
stroke-width:1.5px;r:5px}.legend{display:none;flex-wrap:wrap;gap:.3rem 1rem;font-size:.85rem;margin-top:.3rem}
.map-box label{margin-right:.6rem}.layer-d{color:#212529}.layer-x{color:#e03131}
"""


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def _drop_html(sample: DroppedSample) -> str:
    conv = sample.conversation
    if conv is not None:
        body = "".join(
            f'<div class="turn"><div class="who">turn {k} · {escape(t.role)}</div>'
            f"<pre>{escape(_cut(t.content, TURN_CHARS))}</pre></div>"
            for k, t in enumerate(conv.turns)
        )
        if conv.title:
            body = f'<div class="who">title: {escape(conv.title)}</div>' + body
    elif sample.raw:
        body = f'<div class="who">the input\'s raw bytes</div><pre>{escape(sample.raw)}</pre>'
    else:
        body = '<p class="muted">The run kept no text of it, and its input file is not there.</p>'
    detail = escape(sample.detail) if sample.detail else '<span class="muted">no detail</span>'
    return (
        f'<div class="drop"><b>{escape(sample.conversation_id)}</b> · <code>{escape(sample.stage)}: '
        f"{escape(sample.reason)}</code> · {detail}"
        f' <span class="muted">(text from {escape(sample.where)})</span>{body}</div>'
    )


def explore_html(run_dir: Path, report: RunReport | None = None, tools: ExploreTools | None = None) -> str:
    """The run's page: counts, sampled drops with their text, and the length distributions. `report`: the run's
    report, when it is not on disk yet (curate writes the page before report.json, which marks a run finished).
    `tools`: the tokenizer's counts for the token histograms."""
    tools = tools or ExploreTools()
    report = report or RunReport.model_validate_json((run_dir / REPORT_NAME).read_bytes())
    config = run_config(run_dir)
    drops = _ledger_sample(run_dir, pl.col("scope") == "conversation", SAMPLES_PER_REASON)
    duplicate_rows = _ledger_sample(
        run_dir, pl.col("reason").is_in(DUPLICATE_REASONS) & pl.col("duplicate_of").is_not_null(), SAMPLES_PER_REASON
    )
    # one pass over the stage outputs for every text the page shows
    found = _stage_conversations(
        run_dir, [*drops["conversation_id"], *duplicate_rows["conversation_id"], *duplicate_rows["duplicate_of"]]
    )
    samples = sampled_drops(drops, found, config.secrets)
    pairs = duplicate_pairs(duplicate_rows, found, config.dedupe_minhash.ngram)
    rows = []
    for s in report.stages:
        reasons = sorted(s.dropped_by_reason.items()) or [("", 0)]
        for k, (reason, count) in enumerate(reasons):
            link = f'<a href="#drop-{escape(s.stage)}-{escape(reason)}">{escape(reason)}</a>' if reason else ""
            head = (
                f"<td>{escape(s.stage)}</td><td class=n>{s.inputs}</td><td class=n>{s.kept}</td>"
                f"<td class=n>{s.dropped}</td>"
                if k == 0
                else "<td></td><td></td><td></td><td></td>"
            )
            rows.append(f"<tr>{head}<td>{link}</td><td class=n>{count or ''}</td></tr>")
    sections = []
    order = {s.stage: k for k, s in enumerate(report.stages)}
    grouped = sorted(_grouped(samples).items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0][1]))
    for (stage, reason), group in grouped:
        total = next((s.dropped_by_reason.get(reason, 0) for s in report.stages if s.stage == stage), len(group))
        sections.append(
            f'<h3 id="drop-{escape(stage)}-{escape(reason)}">{escape(stage)}: {escape(reason)} '
            f'<span class="muted">({len(group)} of {total} shown)</span></h3>' + "".join(_drop_html(s) for s in group)
        )
    before_parts = _earliest_stage_parts(run_dir)
    after_parts = sorted((run_dir / CONVERSATIONS_DIR).glob("*.parquet"))
    before, after = distribution(before_parts), distribution(after_parts)
    charts = []
    if after is not None:
        charts += [
            histogram_svg("turns per conversation", before.turns if before else None, after.turns),
            histogram_svg("characters per conversation", before.chars if before else None, after.chars),
            *(
                histogram_svg(
                    f"characters per {role} turn", before.chars_by_role.get(role) if before else None, lengths
                )
                for role, lengths in after.chars_by_role.items()
            ),
        ]
    tokens_after = tokens_before = None
    if tools.count_tokens is not None and after_parts:
        limit, count_tokens = config.run.explore_token_sample, counting_each_text_once(tools.count_tokens)
        tokens_after = token_distribution(after_parts, count_tokens, limit)
        tokens_before = token_distribution(before_parts, count_tokens, limit)
    if tokens_after is not None:
        charts += token_histograms(tokens_before, tokens_after)
    charts.append(histogram_svg("tokens per conversation (shards, chat template in)", None, shard_tokens(run_dir)))
    before_from = f"stages/{before_parts[0].parent.name}/" if before_parts else "no stage output kept"
    embedding_map = (
        _map_section(run_dir, tools.embed, config.run.explore_map_points)
        if tools.embed is not None
        else '<p class="muted">Not drawn: <code>chatsift runs show RUN</code> draws it (without --no-map), and curate'
        " with [run] explore_map.</p>"
    )
    token_samples = (_sample_note("before", tokens_before), _sample_note("after", tokens_after))
    token_note = (
        f"Token histograms: the turns' text by the run's tokenizer ({escape(config.tokenizer.spec)}), without the chat "
        f"template; {'; '.join(n for n in token_samples if n)}."
        if tokens_after is not None
        else "No token histograms of the turns' text: no tokenizer was given."
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Run {escape(report.run_id)}</title><style>{_CSS}</style></head>
<body><h1>Run {escape(report.run_id)}</h1>
<p>read {report.records_read} · kept {report.kept} · dropped {report.dropped} ·
<a href="#drops">drops by reason</a> · <a href="#duplicates">duplicates</a> · <a href="#splits">splits</a> ·
<a href="#distributions">distributions</a> · <a href="#map">map</a></p>
<h2 id="counts">Counts per stage and reason</h2>
<table><thead><tr><th>stage</th><th>in</th><th>kept</th><th>dropped</th><th>reason</th><th>dropped</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
<h2 id="drops">Dropped conversations, by reason</h2>
<p class="muted">Up to {SAMPLES_PER_REASON} of each reason, drawn by a hash of the conversation id; the ledger
(ledger/*.parquet) lists every one.</p>
{"".join(sections) or '<p class="muted">Nothing was dropped.</p>'}
<h2 id="duplicates">Duplicates beside the copy kept</h2>
<p class="muted">Up to {SAMPLES_PER_REASON} pairs of each duplicate reason; words only one side has are marked
(<del>struck</del> in the dropped copy, <ins>underlined</ins> in the kept one). Jaccard of their word
{config.dedupe_minhash.ngram}-grams.</p>
{"".join(_pair_html(p) for p in pairs) or '<p class="muted">No duplicates were dropped.</p>'}
<h2 id="splits">Split conversations and their pieces</h2>
{"".join(_split_html(p) for p in split_pieces(run_dir)) or '<p class="muted">No conversation was split.</p>'}
<h2 id="distributions">Distributions</h2>
<p class="muted">Before: {escape(before_from)}; after: conversations/ and shards/. Log-spaced bins
(0, 1, 2, 4, 8, ...). Turns and characters count every conversation. {token_note}</p>
<div class="charts">{"".join(charts)}</div>
<h2 id="map">Embedding map</h2>
<p class="muted">Each point is a conversation, placed by UMAP over the {escape(config.contamination.model)} vector of
its first user turn (the contamination check's cached vectors, where it embedded them). Hover a point for its id and
the start of that turn; near points ask about the same things.</p>
{embedding_map}
</body></html>
"""


def _map_section(run_dir: Path, embed: Callable[[list[str]], np.ndarray], limit: int) -> str:
    """The embedding map of the kept, dropped and contaminated conversations (curation/runs/explore_map.py)."""
    stage_outputs = [part for stage in STAGE_OUTPUTS for part in _stage_parts(run_dir, stage)]
    dropped, contaminated = ledger_layers(run_dir, stage_outputs, limit)
    return map_html([kept_layer(run_dir, limit), dropped, contaminated], embed, limit)


def _grouped(samples: Sequence[DroppedSample]) -> dict[tuple[str, str], list[DroppedSample]]:
    grouped: dict[tuple[str, str], list[DroppedSample]] = {}
    for s in samples:
        grouped.setdefault((s.stage, s.reason), []).append(s)
    return grouped


def _earliest_stage_parts(run_dir: Path) -> list[Path]:
    for stage in STAGE_OUTPUTS:
        parts = _stage_parts(run_dir, stage)
        if parts:
            return parts
    return []


def write_explore(run_dir: Path, report: RunReport | None = None, tools: ExploreTools | None = None) -> Path:
    """RUN/explore.html, written atomically."""
    path = run_dir / EXPLORE_NAME
    atomic_write_text(path, explore_html(run_dir, report, tools))
    return path
