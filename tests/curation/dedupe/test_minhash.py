"""MinHash LSH near-dedupe: shingles, the detection curve (formula and measured), polars banding
against datasketch's own MinHashLSH, verification, the keep rule, chains, determinism, and
planted near duplicates in the real ShareGPT sample."""

from __future__ import annotations

import hashlib
import json
import random
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from datasketch import MinHash, MinHashLSH

from curation.dedupe import minhash as dedupe_minhash
from curation.dedupe.common import keep_rank
from curation.dedupe.minhash import (
    MINHASH_SIGNATURE_SCHEMA,
    NEAR_DUPLICATE_FINDINGS_SCHEMA,
    RANK_ORDER,
    candidate_components,
    candidate_probability,
    conversation_shingles,
    detection_curve,
    drop_near_duplicates,
    find_near_duplicates,
    jaccard,
    lsh_band_pass,
    lsh_candidate_pairs,
    minhash_signatures,
    minhash_values,
    near_duplicate_removals,
    shingle_hashes32,
    verification_shingles,
)
from curation.parquet import write_conversations
from schemas import Conversation
from schemas.config import MinHashConfig
from tests.conftest import REPO_ROOT
from tests.helpers.conversations import alternating, conversation, sharegpt_turns

CONFIG = MinHashConfig()


def from_sharegpt(record: dict[str, Any], index: int, conv_id: str) -> Conversation:
    turns = sharegpt_turns(record["conversations"])
    return conversation(*turns, id=conv_id, input_file="sample", record_index=index)


def real_conversations(sample: list[dict[str, Any]]) -> list[Conversation]:
    # Re-identified: the real dump repeats some ids, and these tests resolve duplicate_of by id.
    return [from_sharegpt(r, i, f"{i}:{r['id']}") for i, r in enumerate(sample)]


def words_text(tokens: Sequence[str]) -> str:
    return " ".join(tokens)


def pair_set(pairs: pl.DataFrame) -> set[tuple[tuple[int, int], tuple[int, int]]]:
    return {((pa, ra), (pb, rb)) for pa, ra, pb, rb in pairs.iter_rows()}


def datasketch_minhashes(convs: Sequence[Conversation], *, config: MinHashConfig) -> list[MinHash]:
    """datasketch's own MinHash (affine32, config.seed) of each conversation, updated by datasketch with
    the 32-bit shingle hashes: the reference minhash_values must equal."""
    template = MinHash(num_perm=config.bands * config.rows, seed=config.seed, scheme="affine32", hashfunc=int)
    found = []
    for conv in convs:
        minhash = template.copy()
        minhash.update_batch(
            shingle_hashes32(
                np.array(sorted(conversation_shingles(conv, ngram=config.ngram)), dtype=np.uint64)
            ).tolist()
        )
        found.append(minhash)
    return found


# --- shingles ---------------------------------------------------------------------------------


def test_shingles_are_word_ngrams_of_normalized_text() -> None:
    tokens = [f"w{i}" for i in range(12)]
    shingles = conversation_shingles(alternating(words_text(tokens), "ok", id="a"), ngram=5)
    assert len(shingles) == 12 + 1 - 5 + 1  # 13 words across both turns: 9 five-grams
    # Case, spacing and Unicode compatibility forms do not matter (normalize_text) ...
    shouted = alternating("\uff370  " + "  ".join(t.upper() for t in tokens[1:]) + "\n\n", "OK", id="b")  # full-width W
    assert conversation_shingles(shouted, ngram=5) == shingles
    # ... word order does.
    swapped = alternating(words_text(tokens[1:2] + tokens[:1] + tokens[2:]), "ok", id="c")
    assert conversation_shingles(swapped, ngram=5) != shingles
    # No role tags: the same words cut into other turns, or under other roles, are the same text.
    recut = alternating(words_text(tokens[:7]), words_text(tokens[7:]) + " ok", id="d")
    assert conversation_shingles(recut, ngram=5) == shingles
    swapped_roles = recut.model_copy(
        update={
            "turns": tuple(
                t.model_copy(update={"role": "assistant" if t.role == "user" else "user"}) for t in recut.turns
            )
        }
    )
    assert conversation_shingles(swapped_roles, ngram=5) == shingles


def test_short_and_empty_texts() -> None:
    short = conversation_shingles(alternating("Hello there", "hi", id="a"), ngram=5)
    assert len(short) == 1  # fewer words than n: one shingle of all of them
    assert short == conversation_shingles(alternating("hello", "THERE hi", id="b"), ngram=5)
    assert short != conversation_shingles(alternating("hello there", "ho", id="c"), ngram=5)
    assert conversation_shingles(alternating("...", "!!", id="e"), ngram=5) == set()
    table = minhash_signatures(
        [alternating("...", "!!", id="e"), alternating("hello there", "hi", id="f")], part=3, config=CONFIG
    )
    assert [len(b) for b in table.column("band_hashes").to_pylist()] == [0, CONFIG.bands]
    # Records without words are nobody's duplicate; exact copies of a short text are.
    result = drop_near_duplicates(
        [
            alternating("...", "!", id="e1"),
            alternating("...", "!", id="e2"),
            alternating("Hello there", "hi", id="s1"),
            alternating("hello there", "hi", id="s2"),
        ],
        config=CONFIG,
    )
    assert [(d.conversation_id, d.duplicate_of) for d in result.dropped] == [("s2", "s1")]


def test_jaccard() -> None:
    assert jaccard({1, 2, 3}, {2, 3, 4}) == 0.5
    assert jaccard(set(), set()) == 0.0
    assert jaccard({1}, {1}) == 1.0


# --- the detection curve -------------------------------------------------------------------------


def test_detection_curve_of_the_defaults() -> None:
    b, r = CONFIG.bands, CONFIG.rows
    curve = dict(detection_curve(bands=b, rows=r, similarities=(0.5, 0.7, 0.8, 0.85, 0.9)))
    for s, p in curve.items():
        # P(no band agrees) = product over bands of (1 - s^r), computed the long way round.
        miss = 1.0
        for _ in range(b):
            miss *= 1.0 - s**r
        assert p == pytest.approx(1.0 - miss, rel=1e-12)
    assert curve[0.8] >= 0.99 and curve[0.85] >= 0.999 and curve[0.9] >= 0.99999
    assert curve[0.5] < 0.25 < curve[0.7] < curve[0.8]
    # datasketch's automatic choice at 0.8 / 128 permutations (9 x 13) catches ~40% at 0.8.
    assert candidate_probability(0.8, bands=9, rows=13) == pytest.approx(0.40, abs=0.005)


def _word_set_pair(rng: random.Random, tag: str, similarity: float, union: int) -> tuple[Conversation, Conversation]:
    """Two conversations whose distinct words (the shingles with ngram=1) have Jaccard `similarity`."""
    shared = round(similarity * union)
    each = (union - shared) // 2
    vocab = [f"{tag}x{rng.randrange(10**9)}y{k}" for k in range(shared + 2 * each)]
    common, only_a, only_b = vocab[:shared], vocab[shared : shared + each], vocab[shared + each :]
    a, b = common + only_a, common + only_b
    rng.shuffle(a)
    rng.shuffle(b)
    return alternating(words_text(a), id=f"{tag}a"), alternating(words_text(b), id=f"{tag}b")


def test_measured_detection_rate_matches_the_formula() -> None:
    """Real datasketch signatures of synthetic pairs with known Jaccard: the share of pairs that
    share a band agrees with 1 - (1 - s^r)^b, and the MinHash estimate with s."""
    config = CONFIG.model_copy(update={"ngram": 1})
    rng = random.Random(20240607)
    per_similarity = 400
    for similarity in (0.5, 0.7, 0.8, 0.9):
        convs: list[Conversation] = []
        for i in range(per_similarity):
            convs.extend(_word_set_pair(rng, f"s{round(similarity * 100)}p{i}", similarity, union=200))
        a0, b0 = convs[0], convs[1]
        exact = jaccard(conversation_shingles(a0, ngram=1), conversation_shingles(b0, ngram=1))
        assert exact == pytest.approx(similarity, abs=0.005)
        values = minhash_values(convs, config=config)[0]
        estimates = [(values[i] == values[i + 1]).mean() for i in range(0, len(convs), 2)]
        assert sum(estimates) / len(estimates) == pytest.approx(exact, abs=0.01)
        bands = minhash_signatures(convs, part=0, config=config).column("band_hashes").to_pylist()
        hits = sum(any(x == y for x, y in zip(bands[i], bands[i + 1], strict=True)) for i in range(0, len(bands), 2))
        expected = candidate_probability(exact, bands=config.bands, rows=config.rows)
        sd = (expected * (1 - expected) / per_similarity) ** 0.5
        assert abs(hits / per_similarity - expected) <= 4 * sd + 0.01, (similarity, hits, expected)


def test_docs_table_is_the_formula() -> None:
    """docs/minhash.md's comparison table holds computed values: recompute every cell."""
    text = (REPO_ROOT / "docs" / "minhash.md").read_text("utf-8")
    rows = re.findall(r"^\| [^|\n]*\| (\d+) x (\d+) \| \d+ \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \|", text, re.M)
    assert len(rows) >= 3
    pairs = {(int(b), int(r)) for b, r, *_ in rows}
    assert {(CONFIG.bands, CONFIG.rows), (9, 13), (20, 13)} <= pairs
    for b, r, *cells in rows:
        for s, cell in zip((0.7, 0.8, 0.9), cells, strict=True):
            assert float(cell) == pytest.approx(candidate_probability(s, bands=int(b), rows=int(r)), abs=0.00051)


# --- signatures, banding, verification ---------------------------------------------------------


def test_signature_table_sorts_like_keep_rank() -> None:
    convs = [
        alternating("one two", "three", id="b"),
        alternating("one two", "three", id="a"),
        alternating("x", "y", "z", "w", id="z"),
        alternating("short", "q", id="c", model="Model: GPT-4"),
        alternating("a much longer text than the others", "yes", id="d"),
    ]
    table = minhash_signatures(convs, part=7, config=CONFIG)
    assert table.schema == MINHASH_SIGNATURE_SCHEMA
    assert table.schema.metadata == MINHASH_SIGNATURE_SCHEMA.metadata
    ordered = pl.DataFrame(table).sort(RANK_ORDER)
    assert ordered["row"].to_list() == sorted(range(len(convs)), key=lambda i: (keep_rank(convs[i]), i))
    assert set(ordered["part"].to_list()) == {7}


def test_polars_banding_finds_what_datasketch_lsh_finds(sharegpt_sample: list[dict[str, Any]]) -> None:
    """On 500 real conversations and 60 planted edits, datasketch's own MinHashLSH with
    params=(bands, rows) and our polars banding return exactly the same candidate pairs."""
    convs = real_conversations(sharegpt_sample[:500])
    rng = random.Random(7)
    convs += [edit_words(convs[i], rng, edits=rng.randint(1, 12), conv_id=f"plant{i}") for i in range(0, 300, 5)]
    lsh = MinHashLSH(
        threshold=CONFIG.threshold, num_perm=CONFIG.bands * CONFIG.rows, params=(CONFIG.bands, CONFIG.rows)
    )
    minhashes = datasketch_minhashes(convs, config=CONFIG)
    for row, minhash in enumerate(minhashes):
        if not minhash.is_empty():
            lsh.insert(row, minhash)
    theirs = {
        ((0, min(row, other)), (0, max(row, other)))
        for row, minhash in enumerate(minhashes)
        if not minhash.is_empty()
        for other in lsh.query(minhash)
        if other != row
    }
    signatures = pl.DataFrame(minhash_signatures(convs, part=0, config=CONFIG))
    all_pairs = lsh_candidate_pairs(signatures, config=CONFIG, edges="all")
    assert all_pairs.schema == pl.Schema({"part_a": pl.Int32, "row_a": pl.Int32, "part_b": pl.Int32, "row_b": pl.Int32})
    assert len(theirs) >= 60 and pair_set(all_pairs) == theirs
    # Star pairs are fewer but span the same components, so the removals are the same.
    star = lsh_candidate_pairs(signatures.lazy(), config=CONFIG)
    assert pair_set(star) <= theirs
    assert candidate_components(star).equals(candidate_components(all_pairs))
    keys = {k for pair in theirs for k in pair}
    shingles = {k: conversation_shingles(convs[k[1]], ngram=CONFIG.ngram) for k in keys}
    ranks = signatures.drop("band_hashes")
    assert near_duplicate_removals(star, shingles, ranks, config=CONFIG).equals(
        near_duplicate_removals(all_pairs, shingles, ranks, config=CONFIG)
    )


@pytest.mark.parametrize("bucket_records", [10**6, 25])
def test_the_run_wide_step_over_files_removes_what_the_in_memory_one_does(
    sharegpt_sample: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bucket_records: int
) -> None:
    """find_near_duplicates (signature and conversation files of three parts; the candidates' shingles
    held at once, or spilled in buckets of ~25 candidates) removes the same records, for the same kept
    ones, as drop_near_duplicates over one list, and leaves no spill files."""
    monkeypatch.setattr(dedupe_minhash, "_VERIFY_BUCKET_RECORDS", bucket_records)
    convs = [c for c in real_conversations(sharegpt_sample[:300]) if c.turns]
    rng = random.Random(5)
    convs += [edit_words(c, rng, edits=rng.randint(1, 6), conv_id=f"plant{i}") for i, c in enumerate(convs[::4])]
    rng.shuffle(convs)
    parts = [convs[k::3] for k in range(3)]
    signature_files, part_files = [], []
    for index, part in enumerate(parts):
        signature_files.append(str(tmp_path / f"signatures-{index}.parquet"))
        pq.write_table(minhash_signatures(part, part=index, config=CONFIG), signature_files[-1])
        part_files.append(str(tmp_path / f"part-{index}.parquet"))
        write_conversations(Path(part_files[-1]), part)
    found = find_near_duplicates(signature_files, part_files, config=CONFIG)
    by_file = {(parts[p][r].id, kept) for p, r, kept in found.select("part", "row", "duplicate_of").iter_rows()}
    in_memory = {(d.conversation_id, d.duplicate_of) for d in drop_near_duplicates(convs, config=CONFIG).dropped}
    assert len(by_file) >= 60 and by_file == in_memory
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(f).name for f in signature_files + part_files)


def test_verification_shingles_are_the_same_ngrams_as_the_signatures(sharegpt_sample: list[dict[str, Any]]) -> None:
    """The verification's shingles differ from _shingle_hashes only in the word hash: record by record the
    same count in the same order, and one shingle of one maps to one of the other across all records."""
    convs = real_conversations(sharegpt_sample[:400])
    convs += [alternating("Hello there", "hi", id="short"), alternating("...", "!", id="none")]
    records = [[turn.content for turn in conv.turns] for conv in convs]
    assert any(not text.isascii() for record in records for text in record)
    checked = verification_shingles(records, CONFIG.ngram)
    signed = [dedupe_minhash._shingle_hashes(conv, CONFIG.ngram, dedupe_minhash._WordHashes()) for conv in convs]
    assert [len(a) for a in checked] == [len(b) for b in signed] and len(checked[-2]) == 1 and len(checked[-1]) == 0
    pairs = {(a, b) for x, y in zip(checked, signed, strict=True) for a, b in zip(x.tolist(), y.tolist(), strict=True)}
    assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(pairs) > 250_000


def test_pairs_across_parts_and_empty_input() -> None:
    text = words_text([f"t{i}" for i in range(60)])
    parts = [
        minhash_signatures(
            [alternating(text, "ok", id="a"), alternating("nothing alike here at all", "no", id="n")],
            part=0,
            config=CONFIG,
        ),
        minhash_signatures([alternating(text, "ok", id="b")], part=1, config=CONFIG),
    ]
    signatures = pl.concat([pl.DataFrame(t) for t in parts])
    assert lsh_candidate_pairs(signatures, config=CONFIG).rows() == [(0, 0, 1, 0)]
    empty = lsh_candidate_pairs(signatures.clear(), config=CONFIG)
    assert empty.is_empty() and empty.columns == ["part_a", "row_a", "part_b", "row_b"]
    found = near_duplicate_removals(empty, {}, signatures.drop("band_hashes"), config=CONFIG)
    assert found.is_empty() and found.schema == NEAR_DUPLICATE_FINDINGS_SCHEMA


def reference_pairs(signatures: pl.DataFrame, *, edges: str = "star") -> set[tuple[tuple[int, int], tuple[int, int]]]:
    """lsh_candidate_pairs in plain Python: buckets by (band, band hash), all bands at once."""
    buckets: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for part, row, hashes in signatures.select("part", "row", "band_hashes").iter_rows():
        for band, band_hash in enumerate(hashes):
            buckets.setdefault((band, band_hash), []).append((part, row))
    pairs = set()
    for members in buckets.values():
        members.sort()
        if edges == "star":
            pairs |= {(members[0], other) for other in members[1:]}
        else:
            pairs |= {(a, b) for i, a in enumerate(members) for b in members[i + 1 :]}
    return pairs


def one_pair_per_band(bands: int) -> pl.DataFrame:
    """Signatures in two parts where records 2b and 2b + 1 share band b's hash and nothing else,
    for every band b, plus a record without words (no band hashes): a skipped pass loses pairs."""
    rows = []
    for record in range(2 * bands):
        hashes = [1_000_000 * band + record for band in range(bands)]
        hashes[record // 2] = 10**12 + record // 2  # the pair's shared bucket
        rows.append({"part": record % 2, "row": record // 2, "band_hashes": hashes})
    rows.append({"part": 0, "row": bands, "band_hashes": []})
    table = pl.DataFrame(rows, schema={"part": pl.Int32, "row": pl.Int32, "band_hashes": pl.List(pl.UInt64)})
    return table.with_columns(id=pl.format("r{}-{}", "part", "row"), rank_gpt4=1, rank_turns=-2, rank_chars=-10)


@pytest.mark.parametrize("edges", ["star", "all"])
def test_banded_passes_find_every_band_s_pairs(edges: Literal["star", "all"], tmp_path: Path) -> None:
    """Every bands_per_pass, whether it divides the bands or not, and for lazy input from Parquet
    files as well, finds exactly the pairs of a single pass over all bands."""
    signatures = one_pair_per_band(CONFIG.bands)
    expected = {((0, b), (1, b)) for b in range(CONFIG.bands)}
    assert reference_pairs(signatures, edges=edges) == expected
    for part, frame in enumerate(signatures.partition_by("part", maintain_order=True)):
        frame.write_parquet(tmp_path / f"signatures-{part:05d}.parquet")
    scanned = pl.scan_parquet(tmp_path / "*.parquet")
    for bands_per_pass in (1, 5, 7, CONFIG.bands, 100):
        config = CONFIG.model_copy(update={"bands_per_pass": bands_per_pass})
        pairs = lsh_candidate_pairs(signatures, config=config, edges=edges)
        assert pair_set(pairs) == expected, bands_per_pass
        assert pairs.schema == pl.Schema({"part_a": pl.Int32, "row_a": pl.Int32, "part_b": pl.Int32, "row_b": pl.Int32})
        assert lsh_candidate_pairs(scanned, config=config, edges=edges).equals(pairs)


def test_a_skipped_pass_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above fails when one pass is left out (here the second of five)."""
    calls = []
    real_pass = dedupe_minhash.band_pass_query

    def skip_second(*args: Any, **kwargs: Any) -> pl.LazyFrame:
        calls.append(kwargs["start"])
        found = real_pass(*args, **kwargs)
        return found.clear() if len(calls) == 2 else found

    monkeypatch.setattr(dedupe_minhash, "band_pass_query", skip_second)
    config = CONFIG.model_copy(update={"bands_per_pass": 5})
    pairs = pair_set(lsh_candidate_pairs(one_pair_per_band(CONFIG.bands), config=config))
    assert calls == [0, 5, 10, 15, 20]
    assert pairs == {((0, b), (1, b)) for b in range(CONFIG.bands)} - {((0, b), (1, b)) for b in range(5, 10)}


@pytest.mark.shared_data
def test_banded_passes_give_the_same_pairs_on_real_data(sharegpt_sample: list[dict[str, Any]], tmp_path: Path) -> None:
    """1,000 real conversations and 100 planted near copies, in three Parquet parts: the pairs
    are the same for 1, 5 and 24 bands per pass, and equal a plain-Python banding."""
    convs = real_conversations(sharegpt_sample[:1000])
    rng = random.Random(11)
    convs += [edit_words(convs[i], rng, edits=rng.randint(1, 40), conv_id=f"plant{i}") for i in range(0, 1000, 10)]
    parts = [convs[i : i + 400] for i in range(0, len(convs), 400)]
    tables = [minhash_signatures(p, part=i, config=CONFIG) for i, p in enumerate(parts)]
    for i, table in enumerate(tables):
        pq.write_table(table, tmp_path / f"signatures-{i:05d}.parquet")
    signatures = pl.concat([pl.DataFrame(t) for t in tables])
    expected = reference_pairs(signatures)
    assert len(expected) >= 80
    by_pass = {
        bands_per_pass: lsh_candidate_pairs(
            pl.scan_parquet(tmp_path / "*.parquet"), config=CONFIG.model_copy(update={"bands_per_pass": bands_per_pass})
        )
        for bands_per_pass in (1, 5, 24)
    }
    for pairs in by_pass.values():
        assert pairs.equals(by_pass[24]) and pair_set(pairs) == expected
    # Copies with many edits share few bands: every pass of 5 finds pairs that no other pass
    # finds, so leaving out any one pass would change the pairs.
    per_pass = [set(lsh_band_pass(signatures, start=s, stop=s + 5).rows()) for s in range(0, CONFIG.bands, 5)]
    for found in per_pass:
        assert any(sum(pair in other for other in per_pass) == 1 for pair in found)


def test_keep_rule_keeps_the_best_ranked_copy() -> None:
    body = [f"w{i}" for i in range(80)]
    variant = body[:40] + ["changed"] + body[41:]
    convs = [
        alternating(words_text(body), "answer " * 30, id="longest"),  # most characters
        alternating(words_text(variant), "answer", id="gpt4", model="Model: GPT-4"),  # GPT-4 beats length
        alternating(words_text(body), "answer", "and", "more", id="more-turns"),  # turns beat characters
    ]
    result = drop_near_duplicates(convs, config=CONFIG)
    assert [c.id for c in result.kept] == ["gpt4"]
    assert {(d.conversation_id, d.duplicate_of) for d in result.dropped} == {
        ("longest", "gpt4"),
        ("more-turns", "gpt4"),
    }
    without_gpt4 = drop_near_duplicates([convs[0], convs[2]], config=CONFIG)
    assert [c.id for c in without_gpt4.kept] == ["more-turns"]
    # Identical ranks: the smallest id.
    twins = drop_near_duplicates(
        [alternating(words_text(body), id="y"), alternating(words_text(body), id="x")], config=CONFIG
    )
    assert [c.id for c in twins.kept] == ["x"]


def test_chain_removes_only_records_like_a_kept_one() -> None:
    """A~B (0.815) and B~C (0.815) but A, C unlike (0.66): with A best, B goes and C stays;
    with B best, both A and C are like B and go."""
    tokens = [f"w{i}" for i in range(240)]
    a, b, c = (words_text(tokens[k : k + 200]) for k in (0, 20, 40))
    assert jaccard(*(conversation_shingles(alternating(t, id=""), ngram=5) for t in (a, b))) == pytest.approx(176 / 216)
    assert jaccard(*(conversation_shingles(alternating(t, id=""), ngram=5) for t in (a, c))) == pytest.approx(156 / 236)
    # keep_rank: GPT-4 first (then C, which has more characters than B).
    gpt4 = "Model: GPT-4"
    result = drop_near_duplicates(
        [alternating(a, id="A", model=gpt4), alternating(b, id="B"), alternating(c, id="C")], config=CONFIG
    )
    assert sorted(k.id for k in result.kept) == ["A", "C"]
    assert [(d.conversation_id, d.duplicate_of, d.detail) for d in result.dropped] == [
        ("B", "A", "jaccard=0.815 (part 0 row 0)")
    ]
    result = drop_near_duplicates(
        [alternating(a, id="A"), alternating(b, id="B", model=gpt4), alternating(c, id="C")], config=CONFIG
    )
    assert [k.id for k in result.kept] == ["B"]
    assert {d.duplicate_of for d in result.dropped} == {"B"}


def test_disabled_keeps_everything() -> None:
    text = words_text([f"w{i}" for i in range(50)])
    convs = [alternating(text, id="a"), alternating(text, id="b")]
    result = drop_near_duplicates(convs, config=CONFIG.model_copy(update={"enabled": False}))
    assert result.kept == convs and result.dropped == []
    assert len(drop_near_duplicates(convs, config=CONFIG).dropped) == 1


_SIGNATURES_IN_CHILD = """
import json, sys
from curation.dedupe.minhash import minhash_signatures
from schemas.config import MinHashConfig
from tests.curation.dedupe.test_minhash import determinism_corpus
table = minhash_signatures(determinism_corpus(), part=2, config=MinHashConfig())
print(json.dumps(table.column("band_hashes").to_pylist()))
"""


def determinism_corpus() -> list[Conversation]:
    rng = random.Random(3)
    base = [f"w{rng.randrange(500)}" for _ in range(300)]
    return [alternating(words_text(base[: 100 + i * 40]), "Ünïcode ﬁne", id=f"c{i}") for i in range(5)]


def test_signatures_and_removals_are_deterministic() -> None:
    """Same input, same output: across runs and across processes with other hash salts (the
    builtin hash() is salted per process; nothing here may depend on it)."""
    ours = minhash_signatures(determinism_corpus(), part=2, config=CONFIG).column("band_hashes").to_pylist()
    for salt in ("1", "4242"):
        child = subprocess.run(
            [sys.executable, "-c", _SIGNATURES_IN_CHILD],
            cwd=REPO_ROOT,
            env={"PYTHONHASHSEED": salt, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(child.stdout) == ours
    convs = determinism_corpus() + determinism_corpus()[::-1]
    first, second = drop_near_duplicates(convs, config=CONFIG), drop_near_duplicates(convs, config=CONFIG)
    assert first == second and len(first.dropped) >= 5


# --- planted near duplicates in the real sample --------------------------------------------------

_WORD_SPAN = re.compile(r"\w+")


def edit_words(c: Conversation, rng: random.Random, *, edits: int, conv_id: str) -> Conversation:
    """`edits` words replaced by new ones, in turns chosen by length."""
    turns = list(c.turns)
    for n in range(edits):
        weights = [len(t.content) + 1 for t in turns]
        i = rng.choices(range(len(turns)), weights=weights)[0]
        spans = list(_WORD_SPAN.finditer(turns[i].content))
        if not spans:
            continue
        span = rng.choice(spans)
        content = turns[i].content[: span.start()] + f"edit{n}q{rng.randrange(10**6)}" + turns[i].content[span.end() :]
        turns[i] = turns[i].model_copy(update={"content": content})
    return c.model_copy(update={"id": conv_id, "turns": tuple(turns)})


def reformat(c: Conversation, rng: random.Random, *, conv_id: str) -> Conversation:
    """Whitespace and case changes only: the same text after normalize_text."""

    def noisy(text: str) -> str:
        text = text.replace("\n", "\n\n").replace(" ", rng.choice(["  ", " ", "\t"]))
        # ASCII only: str.upper is not undone by casefold for every script (Turkish dotless i).
        return _WORD_SPAN.sub(
            lambda m: m.group().upper() if m.group().isascii() and rng.random() < 0.1 else m.group(), text
        )

    turns = tuple(t.model_copy(update={"content": noisy(t.content)}) for t in c.turns)
    return c.model_copy(update={"id": conv_id, "turns": turns})


def plant(c: Conversation, rng: random.Random, donor: Conversation, conv_id: str) -> tuple[str, Conversation]:
    """One planted near duplicate of `c`: a few words edited, a round added or removed, or a
    whitespace/case change (with or without edits)."""
    words = sum(len(_WORD_SPAN.findall(t.content)) for t in c.turns)
    kind = rng.choice(["edit", "edit", "add_round", "remove_round", "reformat", "reformat_edit"])
    if kind == "remove_round" and len(c.turns) < 4:
        kind = "edit"
    # 0.05% to 5% of the words, log-uniform: each edit changes up to 5 five-grams, so Jaccard
    # spreads over ~0.6..1 with most plants above 0.85.
    edits = max(1, round(words * 10 ** rng.uniform(-3.3, -1.3)))
    if kind == "edit":
        return kind, edit_words(c, rng, edits=edits, conv_id=conv_id)
    if kind == "add_round":
        return kind, c.model_copy(update={"id": conv_id, "turns": c.turns + donor.turns[:2]})
    if kind == "remove_round":
        return kind, c.model_copy(update={"id": conv_id, "turns": c.turns[:-2]})
    if kind == "reformat":
        return kind, reformat(c, rng, conv_id=conv_id)
    return kind, edit_words(reformat(c, rng, conv_id=conv_id), rng, edits=max(1, edits // 3), conv_id=conv_id)


@pytest.mark.slow
@pytest.mark.shared_data
def test_minhash_values_are_datasketch_s_own_affine32_minhash(sharegpt_sample: list[dict[str, Any]]) -> None:
    """Every value minhash_values computes in its vectorized blocks is the one datasketch's MinHash
    (scheme affine32, same seed) computes itself from the 32-bit shingle hashes: 400 real
    conversations, a short one and one without words."""
    convs = real_conversations(sharegpt_sample[:400])
    convs += [alternating("Hello there", "hi", id="short"), alternating("...", "!!", id="empty")]
    values, has_shingles = minhash_values(convs, config=CONFIG)
    theirs = datasketch_minhashes(convs, config=CONFIG)
    assert values.dtype == np.uint32 and values.shape == (len(convs), CONFIG.bands * CONFIG.rows)
    for row, minhash in enumerate(theirs):
        assert (minhash.hashvalues == values[row]).all(), row
        assert has_shingles[row] == (not minhash.is_empty()), row
    assert has_shingles[-2] and not has_shingles[-1] and has_shingles.sum() > 390


def affine64_signatures(convs: Sequence[Conversation], *, config: MinHashConfig) -> pl.DataFrame:
    """The signatures of the hash family before the 32-bit one: datasketch's affine64 MinHash of the
    64-bit shingle hashes, banded with blake2b-64 of each band's 8-byte values."""
    template = MinHash(num_perm=config.bands * config.rows, seed=config.seed, scheme="affine64", hashfunc=int)
    bands: list[list[int]] = []
    for conv in convs:
        shingles = conversation_shingles(conv, ngram=config.ngram)
        if not shingles:
            bands.append([])
            continue
        minhash = template.copy()
        minhash.update_batch(sorted(shingles))
        data, step = np.asarray(minhash.hashvalues, dtype="<u8").tobytes(), config.rows * 8
        digests = (
            hashlib.blake2b(data[i * step : (i + 1) * step], digest_size=8).digest() for i in range(config.bands)
        )
        bands.append([int.from_bytes(d, "little") for d in digests])
    ours = pl.DataFrame(minhash_signatures(convs, part=0, config=config))
    return ours.with_columns(band_hashes=pl.Series(bands, dtype=pl.List(pl.UInt64)))


def test_the_32_bit_hash_family_removes_what_the_64_bit_one_did(sharegpt_sample: list[dict[str, Any]]) -> None:
    """The change from affine64 to affine32 (docs/minhash.md) moves candidates at the margin, which
    verification rejects anyway: on 1,000 real conversations and 200 planted edits of them, both
    families remove exactly the same records for the same reasons."""
    convs = real_conversations(sharegpt_sample[:1000])
    rng = random.Random(11)
    convs += [edit_words(convs[i], rng, edits=rng.randint(1, 40), conv_id=f"plant{i}") for i in range(0, 1000, 5)]
    found = []
    for signatures in (
        affine64_signatures(convs, config=CONFIG),
        pl.DataFrame(minhash_signatures(convs, part=0, config=CONFIG)),
    ):
        pairs = lsh_candidate_pairs(signatures, config=CONFIG)
        keys = {(p, r) for p, r, *_ in pairs.iter_rows()} | {(p, r) for _, _, p, r in pairs.iter_rows()}
        shingles = {k: conversation_shingles(convs[k[1]], ngram=CONFIG.ngram) for k in keys}
        found.append(near_duplicate_removals(pairs, shingles, signatures.drop("band_hashes"), config=CONFIG))
    assert len(found[0]) >= 100  # 122: most plants, and the sample's own near copies
    assert found[1].equals(found[0])


def test_planted_near_duplicates_in_the_real_sample(sharegpt_sample: list[dict[str, Any]]) -> None:
    """MUST-SHOW: recall >= 0.95 on planted pairs with Jaccard >= 0.85, and not one removal,
    planted or among the untouched real conversations, whose true Jaccard with the record it
    names is below 0.7 (by construction it is >= the threshold, which is checked too)."""
    originals = real_conversations(sharegpt_sample)
    rng = random.Random(1234)
    word_counts = [sum(len(_WORD_SPAN.findall(t.content)) for t in c.turns) for c in originals]
    eligible = [i for i, n in enumerate(word_counts) if n >= 100]
    assert len(eligible) > 2500
    chosen = rng.sample(eligible, 450)
    planted: list[tuple[str, Conversation, Conversation]] = []  # (kind, original, plant)
    for j, i in enumerate(chosen):
        kind, copy = plant(originals[i], rng, originals[rng.choice(eligible)], f"plant{j}:{originals[i].id}")
        planted.append((kind, originals[i], copy))
    corpus = originals + [p for _, _, p in planted]
    rng.shuffle(corpus)

    result = drop_near_duplicates(corpus, config=CONFIG)

    by_id = {c.id: c for c in corpus}
    dropped_ids = {d.conversation_id for d in result.dropped}
    kept_ids = {c.id for c in result.kept}
    assert len(kept_ids) + len(dropped_ids) == len(corpus)
    shingles = lambda c: conversation_shingles(c, ngram=CONFIG.ngram)  # noqa: E731

    truth = [(kind, jaccard(shingles(o), shingles(p)), o.id, p.id) for kind, o, p in planted]
    high = [t for t in truth if t[1] >= 0.85]
    caught = [t for t in high if t[2] in dropped_ids or t[3] in dropped_ids]
    assert len(high) >= 200, "the plants must mostly be near duplicates"
    assert {k for k, *_ in high} >= {"edit", "add_round", "remove_round", "reformat", "reformat_edit"}
    band = [t for t in truth if CONFIG.threshold <= t[1] < 0.85]
    low = [t for t in truth if t[1] < CONFIG.threshold]
    planted_ids = {t[3] for t in truth} | {t[2] for t in truth}
    print(
        f"planted {len(truth)}: Jaccard >= 0.85: {len(caught)}/{len(high)} caught; "
        f"[{CONFIG.threshold}, 0.85): {sum(t[2] in dropped_ids or t[3] in dropped_ids for t in band)}/{len(band)}; "
        f"below {CONFIG.threshold}: {sum(t[2] in dropped_ids or t[3] in dropped_ids for t in low)}/{len(low)} removed; "
        f"removals among untouched real conversations: {len(dropped_ids - planted_ids)}; removals: {len(dropped_ids)}"
    )
    assert len(caught) / len(high) >= 0.95
    assert all(j == 1.0 for kind, j, *_ in truth if kind == "reformat")
    # Spread: the plants also include pairs below the threshold (which must not all go).
    assert sum(1 for t in truth if t[1] < CONFIG.threshold) >= 20

    # Every removal: the record it names is kept, ranks better, and is truly similar.
    lowest = 1.0
    for d in result.dropped:
        assert d.reason == "near_duplicate" and d.stage == "dedupe_minhash"
        assert d.duplicate_of in kept_ids
        removed, kept = by_id[d.conversation_id], by_id[d.duplicate_of]
        assert keep_rank(kept) < keep_rank(removed)
        similarity = jaccard(shingles(removed), shingles(kept))
        assert similarity >= 0.7, (d.conversation_id, d.duplicate_of, similarity)
        assert similarity >= CONFIG.threshold
        lowest = min(lowest, similarity)
        assert d.detail.startswith(f"jaccard={similarity:.3f} (part 0 row ")
    print(f"{len(result.dropped)} removals checked; lowest true Jaccard with the named kept record: {lowest:.3f}")


def test_blocks_of_any_size_give_the_same_values(monkeypatch: pytest.MonkeyPatch) -> None:
    # minhash_values takes conversations in blocks of _MINHASH_BLOCK shingles to bound memory; a
    # conversation longer than a block is one of its own. The values must not depend on the cut.
    rng = random.Random(3)
    convs = [
        conversation(("user", "q"), ("assistant", " ".join(f"w{rng.randrange(900)}" for _ in range(n))))
        for n in (5_000, 3, 700, 0, 1_200, 64)
    ]
    config = MinHashConfig()
    monkeypatch.setattr(dedupe_minhash, "_MINHASH_BLOCK", 10**9)
    whole, has_whole = minhash_values(convs, config=config)
    for block in (512, 1_000, 1):
        monkeypatch.setattr(dedupe_minhash, "_MINHASH_BLOCK", block)
        blocked, has_blocked = minhash_values(convs, config=config)
        assert (blocked == whole).all() and (has_blocked == has_whole).all(), block
    assert has_whole.tolist() == [True, True, True, True, True, True]  # "q" alone is a word
