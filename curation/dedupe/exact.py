"""Exact duplicates: stable hashes of normalized, role-tagged turns, matched globally in polars.

Two steps so the matching can run over every part at once, as one streaming polars query:
`exact_dedupe_keys` turns one part's conversations into a small Arrow table of hashes and
keep_rank components; `find_exact_duplicates` reads the keys of all parts and lists what to drop.

Three rules, applied in order, each record getting at most one reason:
1. exact_duplicate: the same normalized, role-tagged turns as a better-ranked record;
2. same_prompts: among the survivors, the same user turns (and any turns before the first of
   them) as a better-ranked one: a regenerated answer. Only when a user turn is evidence of one
   (prompt_is_evidence): user turns that all ask to "continue", or are short, match nothing;
3. prefix_of_longer: among the survivors, its turns are the opening rounds of a longer one.

Chains are resolved so `duplicate_of` always names a record that is kept (see
`find_exact_duplicates`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import polars as pl
import pyarrow as pa

from curation.dedupe.common import FINDINGS_SCHEMA, RANK_ORDER, Removal, ranked_record, remove_listed
from curation.stage import Stage
from curation.text import normalize_text, words
from schemas import Conversation, StageResult
from schemas.arrow import EXACT_KEYS_SCHEMA
from schemas.config import ExactDedupeConfig
from schemas.ledger import DropReason

EXACT_FINDINGS_SCHEMA = FINDINGS_SCHEMA

# Separators between a turn's role and text, and between turns. Both are whitespace to
# normalize_text (str.isspace), which collapses them to a space inside the text, so they never
# occur in normalized content and the encoding is unambiguous.
_ROLE_SEP = "\x1f"
_TURN_SEP = b"\x1e"
# 128-bit digests: a collision among even 10^9 records has probability ~1e-21.
_DIGEST_BYTES = 16

_REASONS: dict[str, DropReason] = {
    "exact_duplicate": "exact_duplicate",
    "same_prompts": "same_prompts",
    "prefix_of_longer": "prefix_of_longer",
}
_DETAIL_OPENING = {
    "exact_duplicate": "same normalized turns as",
    "same_prompts": "same user turns, other answers, as",
    "prefix_of_longer": "opening rounds of the longer",
}


def _new_hasher() -> hashlib.blake2b:
    # hashlib.blake2b, never the builtin hash(): that is salted per process (OpenChat's bug).
    return hashlib.blake2b(digest_size=_DIGEST_BYTES)


@lru_cache(maxsize=8)
def _continuation_openers(prompts: tuple[str, ...]) -> tuple[frozenset[tuple[str, ...]], int]:
    """The continuation prompts as word tuples, and the longest one's length in words."""
    openers = frozenset(tuple(words(p)) for p in prompts) - {()}
    return openers, max(map(len, openers), default=0)


def prompt_is_evidence(text: str, *, config: ExactDedupeConfig) -> bool:
    """Whether a user turn can show that two conversations are one prompt answered twice.

    Not when it is shorter than config.min_prompt_chars ("hi", "thank you", "繼續"), nor when its
    words are, or begin with, one of config.continuation_prompts ("Continue.", "continue in
    Geomancy field: for a quiz ..."): such a turn asks for more of an answer before it, so pieces
    of one long output, and of unrelated ones, share it without being regenerations. On the real
    sample, counting them took same_prompts to ~42 such false matches after the shape stage.
    """
    prompt_words = words(text)
    if len(" ".join(prompt_words)) < config.min_prompt_chars:
        return False
    openers, longest = _continuation_openers(config.continuation_prompts)
    return not any(tuple(prompt_words[:n]) in openers for n in range(1, min(longest, len(prompt_words)) + 1))


def conversation_hashes(conv: Conversation, *, config: ExactDedupeConfig) -> tuple[str, str | None, list[str]]:
    """(full_hash, user_hash, prefix_hashes) of one conversation, as hex.

    full_hash: blake2b-128 of `role \\x1f normalize_text(content)` per turn, joined by \\x1e.
    user_hash: the same over the user turns and whatever precedes the first of them (a system
    prompt, or the leading assistant turn of a split piece), None when match_user_prompts is
    off or when no user turn is evidence (prompt_is_evidence). Every user turn stays in the hash,
    "continue" included, so other follow-ups make another conversation; the rule reads content
    only, never ids, so it holds for split pieces of any source.
    prefix_hashes: the full_hash that each proper prefix ending after an assistant turn would
    have (rounds 1..k for k < the number of rounds); empty when match_prefixes is off.
    """
    full = _new_hasher()
    prompt = _new_hasher()
    n_user = 0
    has_evidence = False
    prefixes: list[str] = []
    last = len(conv.turns) - 1
    for i, turn in enumerate(conv.turns):
        encoded = (turn.role + _ROLE_SEP + normalize_text(turn.content)).encode("utf-8")
        if i:
            full.update(_TURN_SEP)
        full.update(encoded)
        # Everything but the answers: what the answers were conditioned on.
        if turn.role != "assistant" or not n_user:
            if i:
                prompt.update(_TURN_SEP)
            prompt.update(encoded)
        if turn.role == "user":
            n_user += 1
            has_evidence = has_evidence or prompt_is_evidence(turn.content, config=config)
        # The hasher's state after turn i is exactly the full_hash of turns[:i + 1]. A boundary
        # counts once a user turn was seen, so a prefix holds at least one whole round.
        if config.match_prefixes and turn.role == "assistant" and n_user and i < last:
            prefixes.append(full.copy().hexdigest())
    user_hash = prompt.hexdigest() if config.match_user_prompts and has_evidence else None
    return full.hexdigest(), user_hash, prefixes


def exact_dedupe_keys(convs: Sequence[Conversation], *, part: int, config: ExactDedupeConfig) -> pa.Table:
    """One EXACT_KEYS_SCHEMA row per conversation of part `part`, `row` being its position."""
    columns: dict[str, list[Any]] = {name: [] for name in EXACT_KEYS_SCHEMA.names}
    for row, conv in enumerate(convs):
        full_hash, user_hash, prefix_hashes = conversation_hashes(conv, config=config)
        record = ranked_record(part, row, conv) | {
            "full_hash": full_hash,
            "user_hash": user_hash,
            "prefix_hashes": prefix_hashes,
        }
        for name, value in record.items():
            columns[name].append(value)
    return pa.Table.from_pydict(columns, schema=EXACT_KEYS_SCHEMA)


def _losers_to_best(frame: pl.LazyFrame, key: str) -> pl.LazyFrame:
    """(order, target) for every record of `frame` that is not the best-ranked of its `key` group;
    target is the best one's order."""
    best = frame.group_by(key).agg(pl.col("order").min().alias("target"))
    return frame.join(best, on=key).filter(pl.col("order") != pl.col("target")).select("order", "target")


def _prefix_losers(survivors: pl.LazyFrame) -> pl.LazyFrame:
    """(order, target) for every survivor whose full_hash is a prefix hash of another survivor.

    Being a prefix is transitive (A opens B and B opens C, so A opens C), so every such record
    also opens a longer one that opens nothing: the target is the best-ranked of those, which is
    itself kept.
    """
    prefixes = (
        survivors.select(pl.col("order").alias("longer"), pl.col("prefix_hashes").alias("prefix_hash"))
        .explode("prefix_hash")
        .filter(pl.col("prefix_hash").is_not_null())
    )
    pairs = (
        survivors.select("order", "full_hash")
        .join(prefixes, left_on="full_hash", right_on="prefix_hash")
        .filter(pl.col("order") != pl.col("longer"))
        .select("order", "longer")
    )
    openers = pairs.select("order").unique()
    return (
        pairs.join(openers, left_on="longer", right_on="order", how="anti")
        .group_by("order")
        .agg(pl.col("longer").min().alias("target"))
    )


def find_exact_duplicates(keys: pl.LazyFrame | pl.DataFrame, *, config: ExactDedupeConfig) -> pl.DataFrame:
    """The records to drop among `keys` (EXACT_KEYS_SCHEMA rows of any number of parts), sorted by
    (part, row), as EXACT_FINDINGS_SCHEMA columns.

    Chains: a record's direct match may itself be dropped by a later rule (A is an exact copy of
    B, B has the same prompts as C, C opens the longer D). Then duplicate_of names the record that
    is finally kept in its place (D), and detail names both the direct match and the kept one.
    A chain is at most exact -> same_prompts -> prefix -> kept, and a prefix target is always
    kept, so two hops resolve every chain.
    """
    if not config.enabled:
        return pl.DataFrame(schema=EXACT_FINDINGS_SCHEMA)
    # The query is lazy end to end and runs on polars' streaming engine, every node a native
    # streaming one (polars 2.1's physical plan shows no in-memory fallback). That bounds what
    # flows through, not what the blocking nodes keep: the global sort that numbers `order`, the
    # group-bys, the build sides of the joins and the caches hold the key columns of every record
    # at once (hashes, ranks, id; no text) plus the far smaller removal tables, in memory (polars
    # does not spill them to disk). So this step is not out of core: its memory grows with the
    # run's records (~0.5 KB a record on 1M synthetic keys). Each `.cache()` marks a frame that
    # several later frames read: without them polars planned every use anew, ~90 copies of the
    # global sort (1M synthetic keys: 121 s and 4.1 GB peak RSS before; 5 s and 0.6 GB now).
    # `order` is the global rank position: the smaller, the better the copy to keep.
    ranked = (
        keys.lazy()
        .select("part", "row", "id", "full_hash", "user_hash", "prefix_hashes", *RANK_ORDER[:3])
        .sort(RANK_ORDER)
        .with_row_index("order")
        .cache()
    )

    def rule(losers: pl.LazyFrame, reason: str) -> pl.LazyFrame:
        # The detail's opening as a literal: replace_strict would run outside the streaming engine.
        return losers.with_columns(reason=pl.lit(reason), opening=pl.lit(_DETAIL_OPENING[reason])).cache()

    exact = rule(_losers_to_best(ranked, "full_hash"), "exact_duplicate")
    survivors = ranked.join(exact, on="order", how="anti").cache()
    removed = [exact]
    if config.match_user_prompts:
        same = rule(_losers_to_best(survivors.filter(pl.col("user_hash").is_not_null()), "user_hash"), "same_prompts")
        removed.append(same)
        survivors = survivors.join(same, on="order", how="anti").cache()
    if config.match_prefixes:
        removed.append(rule(_prefix_losers(survivors), "prefix_of_longer"))

    direct = pl.concat(removed).with_columns(pl.col("target").alias("direct")).cache()
    resolved = direct
    for _ in range(2):
        hop = direct.select(pl.col("order").alias("target"), pl.col("target").alias("next"))
        resolved = (
            resolved.join(hop, on="target", how="left")
            .with_columns(pl.coalesce("next", "target").alias("target"))
            .drop("next")
        )

    position = ranked.select("order", "part", "row", "id")
    found = (
        resolved.join(position, on="order")
        .join(position.rename(lambda c: f"direct_{c}"), left_on="direct", right_on="direct_order")
        .join(position.rename(lambda c: f"kept_{c}"), left_on="target", right_on="kept_order")
        .with_columns(
            detail=pl.format("{} {} (part {} row {})", "opening", "direct_id", "direct_part", "direct_row")
            + pl.when(pl.col("target") != pl.col("direct"))
            .then(pl.format(", itself dropped; kept: {} (part {} row {})", "kept_id", "kept_part", "kept_row"))
            .otherwise(pl.lit(""))
        )
        .select(
            pl.col("part").cast(pl.Int32),
            pl.col("row").cast(pl.Int32),
            "reason",
            pl.col("kept_id").alias("duplicate_of"),
            "detail",
        )
        .sort("part", "row")
    )
    return found.collect(engine="streaming")


def drop_exact_duplicates(convs: Sequence[Conversation], *, config: ExactDedupeConfig) -> StageResult:
    """In-memory exact dedupe of one list of conversations (as part 0)."""
    if not config.enabled:
        return StageResult(kept=list(convs), dropped=[], changed={})
    keys = pl.DataFrame(exact_dedupe_keys(convs, part=0, config=config))
    found = find_exact_duplicates(keys, config=config)
    removals = {
        row: Removal(reason=_REASONS[reason], duplicate_of=kept_id, detail=detail)
        for row, reason, kept_id, detail in found.select("row", "reason", "duplicate_of", "detail").iter_rows()
    }
    return remove_listed(convs, removals, stage="dedupe_exact")


# Per part: the hashes and ranks of each record.
EXACT_KEYS = Stage("dedupe_exact-keys", exact_dedupe_keys, config="dedupe_exact")
# Run-wide: which records repeat another (over every part's keys).
EXACT_DUPLICATES = Stage("dedupe_exact", find_exact_duplicates, config="dedupe_exact")
