"""Training turns checked against benchmark items: embeddings (Platypus) plus verbatim n-grams.

Platypus (Lee et al. 2023, arXiv:2308.07317) removes training questions whose embedding has
cosine similarity >= 0.8 with a benchmark question. chatsift does that for every checked turn,
and for the turn's paragraphs and windows too (one embedding of a long turn is diluted, and
all-MiniLM-L6-v2 reads only its first 256 word pieces), and adds a verbatim tier of long word
n-grams that catches a copy inside any turn, a fuzzy tier for retyped questions and a rephrase
tier for rewritten ones (curation.contamination.rephrase). Every checked turn's best match is
reported, flagged or not; reviewer decisions clear false positives or force removals.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import faiss
import numpy as np

from curation.contamination.embedding_cache import CachedEmbeddings
from curation.contamination.ngram_overlap import (
    NgramIndex,
    best_overlap,
    build_ngram_index,
    char_containment,
    overlap_evidence,
)
from curation.contamination.rephrase import anchor_share, code_prose, item_views, signatures_agree
from curation.contamination.vector_search import flat_ip_index, search_top
from curation.stage import Stage
from curation.text import word_spans, words
from schemas import Conversation, Dropped
from schemas.config import ContaminationConfig
from schemas.contamination import BenchmarkItem, Category, ReviewerDecision, TurnAction, TurnFinding

EmbedUnits = Callable[[list[str]], CachedEmbeddings]
DecisionKey = tuple[str, str, str]  # (conversation id, benchmark, item id)

# Room for a request phrase around a short question ("Can you help me with this question? ...").
_FUZZY_SLACK_CHARS = 40
# Room for a request phrase around a rewritten question, in words.
_REPHRASE_SLACK_WORDS = 10
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_TOKEN = re.compile(r"\S+")


@dataclass(frozen=True)
class BenchmarkIndex:
    """The benchmark items with their normalized vectors, a FAISS index over them and their n-grams."""

    items: tuple[BenchmarkItem, ...]
    vectors: np.ndarray
    search: faiss.Index
    ngrams: NgramIndex
    # words per item (curation.text.word_spans), for the fuzzy tier's minimum
    word_counts: tuple[int, ...]
    # The items' second views (benchmark_views: item row, view, text) and an index of their vectors, searched by the
    # rephrase tier only, so the other tiers see the items' texts alone.
    views: tuple[tuple[int, str, str], ...] = ()
    view_search: faiss.Index | None = None


def benchmark_views(items: Sequence[BenchmarkItem], config: ContaminationConfig) -> list[tuple[int, str, str]]:
    """The second views of the items (curation.contamination.rephrase.item_views) whose vectors
    build_benchmark_index takes as view_vectors, in order."""
    return item_views(items, min_words=config.min_unit_words)


def build_benchmark_index(
    items: Sequence[BenchmarkItem],
    vectors: np.ndarray,
    *,
    config: ContaminationConfig,
    gpu: bool,
    view_vectors: np.ndarray | None = None,
) -> BenchmarkIndex:
    """Index items (vectors: one normalized row per item, in order) for every tier.

    view_vectors: one row per benchmark_views(items, config), in order; None: no second views.
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    views = benchmark_views(items, config) if view_vectors is not None else []
    if view_vectors is not None and len(view_vectors) != len(views):
        raise ValueError(f"view_vectors has {len(view_vectors)} rows for {len(views)} benchmark_views")
    return BenchmarkIndex(
        items=tuple(items),
        vectors=vectors,
        search=flat_ip_index(vectors, gpu=gpu),
        ngrams=build_ngram_index([i.text for i in items], n=config.ngram_n, min_words=config.ngram_min_words),
        word_counts=tuple(len(word_spans(i.text)) for i in items),
        views=tuple(views),
        view_search=flat_ip_index(view_vectors, gpu=gpu) if views and view_vectors is not None else None,
    )


def turn_units(text: str, *, window_words: int, max_units: int, min_words: int = 1) -> list[tuple[str, str]]:
    """(label, text) units a turn is embedded as: the whole turn, then each paragraph of a turn
    with several, and half-overlapping windows of `window_words` words over a longer paragraph,
    and last the prose of its docstrings when it holds code (compared with code items' docstrings).
    Paragraphs of fewer than `min_words` words are no units of their own."""
    units = _text_units(text, window_words=window_words, max_units=max_units, min_words=min_words)
    prose = code_prose(text)
    if prose and len(_TOKEN.findall(prose)) >= min_words:
        units = units[: max_units - 1] + [("docstrings", prose)] if max_units > 1 else units
    return units


def _text_units(text: str, *, window_words: int, max_units: int, min_words: int) -> list[tuple[str, str]]:
    units = [("turn", text)]
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(text) if p.strip()]
    stride = max(window_words // 2, 1)
    for k, paragraph in enumerate(paragraphs, start=1):
        tokens = [m.span() for m in _TOKEN.finditer(paragraph)]
        if len(tokens) <= window_words:
            if len(paragraphs) > 1 and len(tokens) >= min_words:
                units.append((f"paragraph {k}", paragraph))
            continue
        start, w = 0, 1
        while True:
            chunk = tokens[start : start + window_words]
            units.append((f"paragraph {k} window {w}", paragraph[chunk[0][0] : chunk[-1][1]]))
            if start + window_words >= len(tokens) or len(units) >= max_units:
                break
            start, w = start + stride, w + 1
        if len(units) >= max_units:
            break
    return units[:max_units]


def category_of(
    score: float, coverage: float, containment: float, config: ContaminationConfig, *, rephrase: bool = False
) -> Category:
    """The reviewer category of a match: word n-gram coverage, character containment (fuzzy tier),
    cosine score and the rephrase tier each vote, and the strongest wins.

    Near verbatim: most of the item's n-grams, or nearly all its characters (>= 0.9), or a score
    in the top band. Rephrased: a verbatim, fuzzy or rephrase-tier match, or a score in the middle band.
    """
    if (
        coverage >= config.ngram_near_verbatim_coverage
        or containment >= max(config.fuzzy_min_containment, 0.9)
        or score >= config.near_verbatim_score
    ):
        return "near_verbatim"
    if (
        coverage >= config.ngram_min_coverage
        or containment >= config.fuzzy_min_containment
        or score >= config.rephrased_score
        or rephrase
    ):
        return "rephrased"
    return "similar"


class ContaminationResult(NamedTuple):
    kept: list[Conversation]
    dropped: list[Dropped]
    changed: dict[str, int]
    findings: list[TurnFinding]
    # The decisions that named a conversation of this batch, and what each did.
    decisions_applied: dict[DecisionKey, str]


@dataclass
class _Turn:
    """Scores for one checked turn while a batch is scored."""

    conv: int
    turn: int
    units: list[int]
    best_row: int = -1
    best_score: float = -1.0
    best_unit: str = "turn"
    fuzzy_row: int = -1
    fuzzy_containment: float = 0.0
    rephrase_row: int = -1
    rephrase_score: float = 0.0
    rephrase_share: float = 0.0
    rephrase_view: str = ""


def _score_turns(
    convs: Sequence[Conversation], index: BenchmarkIndex, embed: EmbedUnits, config: ContaminationConfig
) -> tuple[list[_Turn], CachedEmbeddings]:
    """Embed every checked turn's units, then keep each turn's best match and best fuzzy match."""
    turns: list[_Turn] = []
    texts: list[str] = []
    labels: list[str] = []
    for ci, conv in enumerate(convs):
        for ti, turn in enumerate(conv.turns):
            if turn.role not in config.roles:
                continue
            units = turn_units(
                turn.content,
                window_words=config.window_words,
                max_units=config.max_units_per_turn,
                min_words=config.min_unit_words,
            )
            turns.append(_Turn(ci, ti, list(range(len(texts), len(texts) + len(units)))))
            labels += [label for label, _ in units]
            texts += [text for _, text in units]
    cached = embed(texts)
    scores, rows = search_top(
        index.search,
        cached.vectors,
        k=max(config.fuzzy_candidates, config.rephrase_candidates, 1),
        batch_size=config.search_batch_size,
    )
    for t in turns:
        best = max(t.units, key=lambda u: (float(scores[u, 0]), -u))
        t.best_row, t.best_score, t.best_unit = int(rows[best, 0]), float(scores[best, 0]), labels[best]
        for u in t.units:
            for score, row in zip(
                scores[u, : config.fuzzy_candidates], rows[u, : config.fuzzy_candidates], strict=True
            ):
                if row < 0 or score < config.fuzzy_min_score:
                    break
                item_text = index.items[row].text
                if index.word_counts[row] < config.fuzzy_min_item_words:
                    continue
                if len(texts[u]) > config.fuzzy_max_length_ratio * len(item_text) + _FUZZY_SLACK_CHARS:
                    continue
                containment = char_containment(item_text, texts[u])
                if containment > t.fuzzy_containment:
                    t.fuzzy_row, t.fuzzy_containment = int(row), containment
    if config.rephrase_candidates and config.rephrase_rules:
        _rephrase_tier(turns, texts, cached.vectors, (scores, rows), index, config)
    return turns, cached


def _rephrase_tier(
    turns: list[_Turn],
    texts: list[str],
    vectors: np.ndarray,
    by_text: tuple[np.ndarray, np.ndarray],
    index: BenchmarkIndex,
    config: ContaminationConfig,
) -> None:
    """Each turn's best rephrase-tier match: a unit and a near item (by its text or its second
    view) with the cosine floor of the item's benchmark rule and its share of the anchor terms."""
    rules = {r.benchmark: r for r in config.rephrase_rules}
    k = config.rephrase_candidates
    unit_words: dict[int, int] = {}
    # (scores, item rows, view rows or None) per unit: the nearest items by text, then by second view.
    searches: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = [(by_text[0][:, :k], by_text[1][:, :k], None)]
    if index.view_search is not None:
        view_scores, view_rows = search_top(index.view_search, vectors, k=k, batch_size=config.search_batch_size)
        item_of_view = np.array([row for row, _, _ in index.views] + [-1], dtype=np.int64)
        searches.append((view_scores, item_of_view[view_rows], view_rows))
    for t in turns:
        for u in t.units:
            for scores, rows, hit_views in searches:
                for j in range(scores.shape[1]):
                    row, score = int(rows[u, j]), float(scores[u, j])
                    if row < 0:
                        break
                    rule = rules.get(index.items[row].benchmark)
                    if rule is None or score < rule.min_score or score <= t.rephrase_score:
                        continue
                    view, compared = "text", index.items[row].text
                    if hit_views is not None:
                        _, view, compared = index.views[int(hit_views[u, j])]
                    if u not in unit_words:
                        unit_words[u] = len(words(texts[u]))
                    # A rewrite is about as long as its original; a long window holds many words of any short item.
                    if unit_words[u] > config.rephrase_max_length_ratio * len(words(compared)) + _REPHRASE_SLACK_WORDS:
                        continue
                    share, anchors = anchor_share(compared, texts[u])
                    if (
                        anchors >= rule.min_anchors
                        and share >= rule.min_anchor_share
                        # The whole turn's defs (its first unit): a window or docstring unit holds none.
                        and signatures_agree(index.items[row].text, texts[t.units[0]])
                    ):
                        t.rephrase_row, t.rephrase_score, t.rephrase_share, t.rephrase_view = row, score, share, view


def _finding(
    conv: Conversation,
    t: _Turn,
    unit_vectors: np.ndarray,
    index: BenchmarkIndex,
    config: ContaminationConfig,
    decisions: Sequence[ReviewerDecision],
) -> tuple[TurnFinding, int | None]:
    """The turn's finding (action still "none") and the matched item's row when it is flagged."""
    text = conv.turns[t.turn].content
    overlap = best_overlap(text, index.ngrams)
    best_item = index.items[t.best_row] if t.best_row >= 0 else None
    verbatim = overlap.item is not None and overlap.coverage >= config.ngram_min_coverage
    fuzzy = t.fuzzy_row >= 0 and t.fuzzy_containment >= config.fuzzy_min_containment
    embedded = t.best_score >= config.threshold
    rephrase = t.rephrase_row >= 0
    matched = (
        overlap.item
        if verbatim
        else t.fuzzy_row
        if fuzzy
        else t.rephrase_row
        if rephrase and not embedded
        else (t.best_row if t.best_row >= 0 else None)
    )
    score = t.best_score
    if matched is not None and matched != t.best_row:
        score = float(np.max(unit_vectors[t.units] @ index.vectors[matched]))
    if matched is not None and matched == t.rephrase_row:
        score = max(score, t.rephrase_score)  # the second view's cosine, where that is the higher
    coverage = overlap.coverage if matched is not None and matched == overlap.item else 0.0
    containment = t.fuzzy_containment if matched is not None and matched == t.fuzzy_row else 0.0
    flagged = verbatim or fuzzy or embedded or rephrase
    decision = None
    if flagged and matched is not None:
        key = (index.items[matched].benchmark, index.items[matched].item_id)
        decision = next((d for d in decisions if (d.benchmark, d.item_id) == key), None)
    else:
        # A reviewer's "remove" reaches turns under the threshold too: its item may be either best match.
        for row in (r for r in (t.best_row, overlap.item, t.fuzzy_row, t.rephrase_row) if r is not None and r >= 0):
            key = (index.items[row].benchmark, index.items[row].item_id)
            decision = next((d for d in decisions if d.decision == "remove" and (d.benchmark, d.item_id) == key), None)
            if decision is not None:
                matched = row
                score = float(np.max(unit_vectors[t.units] @ index.vectors[row]))
                coverage = overlap.coverage if row == overlap.item else 0.0
                containment = t.fuzzy_containment if row == t.fuzzy_row else 0.0
                break
    item = index.items[matched] if matched is not None else None
    shown = flagged or decision is not None
    spans: tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]] = ((), ())
    if shown and item is not None:
        spans = overlap_evidence(text, item.text, n=config.ngram_n, min_words=config.ngram_min_words)
    overlap_item = index.items[overlap.item] if overlap.item is not None else None
    finding = TurnFinding(
        conversation_id=conv.id,
        input_file=conv.provenance.input_file,
        record_index=conv.provenance.record_index,
        turn_index=t.turn,
        role=conv.turns[t.turn].role,
        best_benchmark=best_item.benchmark if best_item else None,
        best_item_id=best_item.item_id if best_item else None,
        best_score=max(t.best_score, 0.0),
        best_unit=t.best_unit,
        ngram_benchmark=overlap_item.benchmark if overlap_item else None,
        ngram_item_id=overlap_item.item_id if overlap_item else None,
        ngram_coverage=overlap.coverage,
        fuzzy_benchmark=index.items[t.fuzzy_row].benchmark if t.fuzzy_row >= 0 else None,
        fuzzy_item_id=index.items[t.fuzzy_row].item_id if t.fuzzy_row >= 0 else None,
        fuzzy_containment=t.fuzzy_containment,
        rephrase_benchmark=index.items[t.rephrase_row].benchmark if rephrase else None,
        rephrase_item_id=index.items[t.rephrase_row].item_id if rephrase else None,
        rephrase_score=t.rephrase_score,
        rephrase_anchor_share=t.rephrase_share,
        rephrase_view=t.rephrase_view or None,
        flagged=shown,
        category=category_of(score, coverage, containment, config, rephrase=rephrase and matched == t.rephrase_row)
        if shown
        else None,
        matched_benchmark=item.benchmark if shown and item else None,
        matched_item_id=item.item_id if shown and item else None,
        matched_score=max(score, 0.0) if shown else 0.0,
        decision=decision.decision if decision else None,
        turn_text=text if shown else None,
        turn_spans=spans[0],
        item_spans=spans[1],
    )
    return finding, matched if shown else None


def _removes(f: TurnFinding, config: ContaminationConfig) -> TurnAction:
    if not f.flagged:
        return "none"
    if f.decision == "keep":
        return "kept_by_reviewer"
    if f.decision == "remove" or f.category in config.remove_categories:
        return "removed"
    return "kept_by_config"


def cut_index(conv: Conversation, turn: int) -> int:
    """Where to cut so the contaminated turn's whole round goes: at its user turn."""
    role = conv.turns[turn].role
    if role == "assistant" and turn > 0 and conv.turns[turn - 1].role == "user":
        return turn - 1
    return 0 if role == "system" else turn


def _detail(f: TurnFinding, more: int) -> str:
    detail = (
        f"benchmark={f.matched_benchmark} item={f.matched_item_id} score={f.matched_score:.3f} "
        f"ngram_coverage={f.ngram_coverage:.2f} fuzzy_containment={f.fuzzy_containment:.2f} "
        f"category={f.category} turn={f.turn_index}"
    )
    if f.rephrase_item_id is not None and f.rephrase_item_id == f.matched_item_id:
        detail += f" rephrase_view={f.rephrase_view} anchor_share={f.rephrase_anchor_share:.2f}"
    if f.decision == "remove":
        detail += " reviewer=remove"
    return detail + (f" (+{more} more contaminated turns)" if more else "")


def check_contamination(
    convs: Sequence[Conversation],
    *,
    index: BenchmarkIndex,
    embed: EmbedUnits,
    config: ContaminationConfig,
    decisions: Mapping[str, Sequence[ReviewerDecision]],
) -> ContaminationResult:
    """Score every checked turn, then drop or cut each conversation with a contaminated turn.

    `decisions` maps conversation id -> that conversation's reviewer decisions.
    """
    turns, cached = _score_turns(convs, index, embed, config)
    by_conv: defaultdict[int, list[_Turn]] = defaultdict(list)
    for t in turns:
        by_conv[t.conv].append(t)
    kept: list[Conversation] = []
    dropped: list[Dropped] = []
    findings: list[TurnFinding] = []
    changed: Counter[str] = Counter(units_embedded=cached.embedded, units_from_cache=cached.reused)
    applied: dict[DecisionKey, str] = {}
    for ci, conv in enumerate(convs):
        conv_decisions = decisions.get(conv.id, ())
        conv_findings = []
        for t in by_conv.get(ci, []):
            f, _ = _finding(conv, t, cached.vectors, index, config, conv_decisions)
            conv_findings.append(f.model_copy(update={"action": _removes(f, config)}))
        changed["flagged_turns"] += sum(f.flagged for f in conv_findings)
        changed["kept_by_reviewer"] += sum(f.action == "kept_by_reviewer" for f in conv_findings)
        changed["kept_by_config"] += sum(f.action == "kept_by_config" for f in conv_findings)
        contaminated = [f for f in conv_findings if f.action == "removed"]
        unmatched_removes = [
            d
            for d in conv_decisions
            if d.decision == "remove"
            and not any((f.matched_benchmark, f.matched_item_id) == (d.benchmark, d.item_id) for f in conv_findings)
        ]
        for f in conv_findings:
            if f.decision is not None:
                applied[(conv.id, f.matched_benchmark or "", f.matched_item_id or "")] = (
                    f"turn {f.turn_index}: {'cleared' if f.decision == 'keep' else 'removed'}"
                )
        for d in conv_decisions:
            applied.setdefault(
                (conv.id, d.benchmark, d.item_id),
                "conversation removed (no turn matched the item)"
                if d in unmatched_removes
                else "no turn of this conversation matched the item",
            )
        if unmatched_removes:
            d = unmatched_removes[0]
            dropped.append(
                Dropped.of(
                    conv,
                    stage="contamination",
                    reason="benchmark_contamination",
                    detail=f"benchmark={d.benchmark} item={d.item_id} reviewer=remove (no turn matched the item)",
                )
            )
            findings += [f.model_copy(update={"action": "removed"}) if f.flagged else f for f in conv_findings]
            continue
        if not contaminated:
            kept.append(conv)
            findings += conv_findings
            continue
        first = contaminated[0]
        cut = cut_index(conv, first.turn_index) if config.action == "cut_before_turn" else 0
        remaining = conv.turns[:cut]
        if not any(turn.role == "assistant" for turn in remaining):
            dropped.append(
                Dropped.of(
                    conv,
                    stage="contamination",
                    reason="benchmark_contamination",
                    detail=_detail(first, len(contaminated) - 1),
                )
            )
            findings += conv_findings
            continue
        kept.append(conv.model_copy(update={"turns": remaining}))
        changed["conversations_cut"] += 1
        dropped.append(
            Dropped.of(
                conv,
                stage="contamination",
                reason="contaminated_rounds_cut",
                detail=f"cut at turn {cut} of {len(conv.turns)}: " + _detail(first, len(contaminated) - 1),
                scope="round",
            )
        )
        findings += [f.model_copy(update={"action": "cut"}) if f.action == "removed" else f for f in conv_findings]
    return ContaminationResult(kept, dropped, dict(changed), findings, applied)


# Run-wide: the FAISS index of the benchmark items' vectors (and their n-gram and fuzzy tiers).
BENCHMARK_INDEX = Stage("contamination-benchmarks", build_benchmark_index, config="contamination")
# Per part: every checked turn against the benchmark index; the flow adds the benchmark items'
# digest and the decisions file's to the key.
CONTAMINATION = Stage("contamination", check_contamination, config="contamination")
