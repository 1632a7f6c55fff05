"""Tests for curation/dedupe/exact.py.

Small hand-built conversations pin each rule; the real ShareGPT sample is checked against a
plain-Python reference that compares normalized turns directly (no hashes, no polars), and with
planted re-identified copies that must each be found.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from curation.clean.filters import repair_shape
from curation.dedupe import exact as dedupe_exact
from curation.dedupe.common import GPT4_MODEL, keep_rank
from curation.dedupe.exact import (
    EXACT_FINDINGS_SCHEMA,
    EXACT_KEYS_SCHEMA,
    drop_exact_duplicates,
    exact_dedupe_keys,
    find_exact_duplicates,
    prompt_is_evidence,
)
from curation.text import normalize_text
from schemas.config import ExactDedupeConfig, ShapeConfig
from schemas.conversation import Conversation
from schemas.ledger import StageResult
from tests.conftest import REPO_ROOT
from tests.helpers.conversations import alternating, conversation, sharegpt_turns

ON = ExactDedupeConfig()

# --- helpers --------------------------------------------------------------------------------


def sharegpt_conversations(records: list[dict[str, Any]]) -> list[Conversation]:
    return [
        conversation(
            *sharegpt_turns(r["conversations"]), id=r["id"], model=r.get("model"), input_file="sample", record_index=i
        )
        for i, r in enumerate(records)
    ]


def findings(convs: Sequence[Conversation], config: ExactDedupeConfig = ON) -> dict[int, tuple[str, str]]:
    """row -> (reason, duplicate_of) for one part."""
    keys = exact_dedupe_keys(convs, part=0, config=config)
    found = find_exact_duplicates(pl.DataFrame(keys), config=config)
    return {row: (reason, dup) for row, reason, dup in found.select("row", "reason", "duplicate_of").iter_rows()}


def kept_ids(result: StageResult) -> list[str]:
    return [c.id for c in result.kept]


def check_ledger(convs: Sequence[Conversation], result: StageResult) -> None:
    """Every record is kept or dropped once, and every duplicate_of names a kept record."""
    assert len(convs) == len(result.kept) + len(result.dropped)
    kept = {c.id for c in result.kept}
    for d in result.dropped:
        assert d.stage == "dedupe_exact"
        assert d.duplicate_of in kept, d


# --- hashing and keys ------------------------------------------------------------------------


def test_keys_follow_the_schema_with_one_row_per_conversation() -> None:
    convs = [alternating("Hi", "Hello", id="a"), alternating("Q", "A", "Q2", "A2", "Q3", "A3", id="b")]
    keys = exact_dedupe_keys(convs, part=3, config=ON)
    assert keys.schema.equals(EXACT_KEYS_SCHEMA)
    assert keys.column("part").to_pylist() == [3, 3]
    assert keys.column("row").to_pylist() == [0, 1]
    assert keys.column("id").to_pylist() == ["a", "b"]
    # One proper prefix per round but the last.
    assert [len(p) for p in keys.column("prefix_hashes").to_pylist()] == [0, 2]


def test_full_hash_is_blake2b_of_the_documented_encoding() -> None:
    c = conversation(("system", "Be  brief."), ("user", "Straße\tÜBER"), ("assistant", "Ｏｋ\n\n**done**"), id="a")
    encoding = "\x1e".join(t.role + "\x1f" + normalize_text(t.content) for t in c.turns)
    prompts = "\x1e".join(t.role + "\x1f" + normalize_text(t.content) for t in c.turns[:2])
    keys = exact_dedupe_keys([c], part=0, config=ON).to_pylist()[0]
    assert keys["full_hash"] == hashlib.blake2b(encoding.encode(), digest_size=16).hexdigest()
    assert keys["user_hash"] == hashlib.blake2b(prompts.encode(), digest_size=16).hexdigest()


def test_a_prefix_hash_equals_the_full_hash_of_the_opening_rounds() -> None:
    longer = alternating("Q1", "A1", "Q2", "A2", "Q3", "A3", id="long")
    prefix_hashes = exact_dedupe_keys([longer], part=0, config=ON).column("prefix_hashes").to_pylist()[0]
    openings = [alternating("Q1", "A1", id="one"), alternating("Q1", "A1", "Q2", "A2", id="two")]
    assert prefix_hashes == exact_dedupe_keys(openings, part=0, config=ON).column("full_hash").to_pylist()


def test_separators_inside_text_do_not_make_different_turns_collide() -> None:
    # \x1e and \x1f are whitespace to normalize_text, so text cannot forge a turn boundary.
    forged = alternating("Q\x1eassistant\x1fA", "B", id="forged")
    honest = conversation(("user", "Q"), ("assistant", "A"), ("assistant", "B"), id="honest")
    assert findings([forged, honest]) == {}


_SUBPROCESS_SCRIPT = """
import json, sys
from curation.dedupe.exact import exact_dedupe_keys
from schemas.config import ExactDedupeConfig, ShapeConfig
from schemas.conversation import Conversation
convs = [Conversation.model_validate(c) for c in json.load(sys.stdin)]
keys = exact_dedupe_keys(convs, part=0, config=ExactDedupeConfig())
print(json.dumps(keys.select(["full_hash", "user_hash", "prefix_hashes"]).to_pylist()))
"""


def _hash_columns(convs: Sequence[Conversation]) -> list[dict[str, Any]]:
    keys = exact_dedupe_keys(convs, part=0, config=ON)
    rows: list[dict[str, Any]] = keys.select(["full_hash", "user_hash", "prefix_hashes"]).to_pylist()
    return rows


def _hash_columns_in_subprocess(convs: Sequence[Conversation], hash_seed: str) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_SCRIPT],
        input=json.dumps([c.model_dump(mode="json") for c in convs]),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        check=True,
    )
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def test_hashes_are_identical_across_processes_and_runs() -> None:
    convs = [
        alternating("Straße  café", "Ｆｕｌｌ-width **answer**", "again", "and again", id="a"),
        alternating("日本語のテキスト", "答え", id="b"),
        conversation(("system", "sys"), ("user", "hi"), ("assistant", "hello"), id="c"),
    ]
    here = _hash_columns(convs)
    assert here == _hash_columns(convs)
    assert _hash_columns_in_subprocess(convs, "1") == here
    assert _hash_columns_in_subprocess(convs, "2") == here
    # The builtin hash() of the same text does differ between those two processes.
    salted = [
        subprocess.run(
            [sys.executable, "-c", "print(hash('Straße café'))"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
        ).stdout
        for seed in ("1", "2")
    ]
    assert salted[0] != salted[1]


def test_findings_are_identical_across_runs() -> None:
    convs = [alternating("Sort a list", f"A{i % 3}", "Now reverse it", "A2", id=f"c{i}") for i in range(12)] + [
        alternating("Sort a list", "A0", id="p")
    ]
    keys = pl.DataFrame(exact_dedupe_keys(convs, part=0, config=ON))
    first = find_exact_duplicates(keys, config=ON)
    # Shuffled input rows must not change which records are found.
    shuffled = keys.sample(fraction=1.0, shuffle=True, seed=7)
    assert first.equals(find_exact_duplicates(keys, config=ON))
    assert first.equals(find_exact_duplicates(shuffled.lazy(), config=ON))


def test_curation_dedupe_exact_never_calls_the_builtin_hash() -> None:
    tree = ast.parse(open(dedupe_exact.__file__, encoding="utf-8").read())
    calls = [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in {"hash", "__hash__"}
    ]
    names = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "hash"]
    assert not calls and not names, f"builtin hash() used at lines {calls or names}"


def test_the_hash_check_catches_a_call() -> None:
    tree = ast.parse("x = hash('a')\n")
    assert any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "hash" for n in ast.walk(tree))


# --- exact duplicates and the keep rule ----------------------------------------------------------


def test_the_same_conversation_with_other_whitespace_and_case_is_an_exact_duplicate() -> None:
    a = alternating("How do I *sort* a list?", "## Sorting\n\n- Use `sorted(xs)`\n- or **xs.sort()**", id="first")
    b = alternating(
        "how do i  *SORT* a list?\n", "##   sorting\n- use `SORTED(xs)`\n\n\n-  or **XS.sort()**  ", id="second"
    )
    keep = min([a, b], key=keep_rank)
    drop = b if keep is a else a
    result = drop_exact_duplicates([a, b], config=ON)
    assert kept_ids(result) == [keep.id]
    (dropped,) = result.dropped
    assert (dropped.conversation_id, dropped.reason, dropped.duplicate_of) == (drop.id, "exact_duplicate", keep.id)
    assert keep.id in dropped.detail
    check_ledger([a, b], result)


def test_different_text_is_not_a_duplicate() -> None:
    convs = [
        alternating("Sort a list", "sorted(xs)", id="a"),
        alternating("Sort a list", "xs.sort()", "Q", "A", id="b"),
    ]
    assert findings(convs) == {}


def test_the_gpt4_copy_is_kept_over_a_longer_other_copy() -> None:
    plain = alternating("Question here", "Answer   here with   extra spaces", id="a-plain")
    gpt4 = alternating("Question here", "Answer here with extra spaces", id="z-gpt4", model=GPT4_MODEL)
    assert findings([plain, gpt4]) == {0: ("exact_duplicate", "z-gpt4")}


def test_more_turns_are_kept_over_fewer_with_the_same_prompts() -> None:
    # The same user turns; one copy lacks its final answer (3 turns against 4).
    short = alternating("Tell me a story", "A long story " * 20, "Another one", id="a")
    full = alternating("Tell me a story", "Short story.", "Another one", "Short too.", id="z")
    assert findings([short, full]) == {0: ("same_prompts", "z")}


@pytest.mark.parametrize("order", [("b", "a", "c"), ("c", "b", "a")])
def test_ties_keep_the_smallest_id_whatever_the_input_order(order: tuple[str, ...]) -> None:
    convs = [alternating("Same question", "Same answer", id=i) for i in order]
    found = findings(convs)
    assert sorted(found.values()) == [("exact_duplicate", "a"), ("exact_duplicate", "a")]
    assert convs[next(r for r in range(3) if r not in found)].id == "a"


def test_the_polars_order_is_keep_rank_order(sharegpt_sample: list[dict[str, Any]]) -> None:
    convs = sharegpt_conversations(sharegpt_sample[:600])
    convs[5] = convs[5].model_copy(update={"model": GPT4_MODEL})
    convs[77] = convs[77].model_copy(update={"model": GPT4_MODEL})
    keys = pl.DataFrame(exact_dedupe_keys(convs, part=0, config=ON))
    ranked = keys.sort(["rank_gpt4", "rank_turns", "rank_chars", "id", "part", "row"])["row"].to_list()
    assert ranked == sorted(range(len(convs)), key=lambda r: (keep_rank(convs[r]), r))
    assert ranked[:2] == [5, 77] or ranked[:2] == [77, 5]


# --- same prompts, prefixes ----------------------------------------------------------------


def test_a_regenerated_answer_is_same_prompts() -> None:
    best = alternating("Write a haiku about rain", "Rain on the tin roof\nslow drums", "Another", "Fog", id="best")
    regen = alternating("Write a haiku about RAIN ", "Grey sky", "another", "Mist", id="regen")
    assert findings([regen, best]) == {0: ("same_prompts", "best")}


def test_the_same_first_prompt_with_other_follow_ups_is_not_same_prompts() -> None:
    convs = [
        alternating("Hi", "Hello!", "Tell a joke", "...", id="a"),
        alternating("Hi", "Hey", "Weather?", "Sunny", id="b"),
    ]
    assert findings(convs) == {}


def test_the_opening_rounds_of_a_longer_conversation_are_prefix_of_longer() -> None:
    longer = alternating("Plan a trip", "Day 1: museum", "And day 2?", "Day 2: park", "Budget?", "$300", id="long")
    opening = alternating("plan a  trip", "Day 1:\nmuseum", "and day 2?", "day 2: PARK", id="open")
    first_round = alternating("Plan a trip", "Day 1: museum", id="first")
    assert findings([opening, longer, first_round]) == {
        0: ("prefix_of_longer", "long"),
        2: ("prefix_of_longer", "long"),
    }


def test_sharing_only_the_first_user_turn_is_not_a_prefix() -> None:
    longer = alternating("Plan a trip", "Day 1: museum", "And day 2?", "Day 2: park", id="long")
    other_answer = alternating("Plan a trip", "Where to?", id="other")
    # A conversation ending in a user turn opens no round of `long`; it has its prompts, though.
    unanswered = alternating("Plan a trip", "Day 1: museum", "And day 2?", id="unanswered")
    assert findings([longer, other_answer, unanswered]) == {2: ("same_prompts", "long")}
    assert findings([longer, other_answer, unanswered], ExactDedupeConfig(match_user_prompts=False)) == {}


# --- positions, parts, split pieces -----------------------------------------------------------


def test_repeated_ids_with_different_content_are_told_apart_by_position() -> None:
    convs = [
        alternating("Question one", "Answer one", id="dup"),
        conversation(id="dup"),  # the real dumps' empty second copy of an id
        alternating("Question two", "Answer two", id="dup"),
        alternating("QUESTION ONE", "ANSWER ONE", id="dup"),  # ties with row 0 on every rank: row decides
    ]
    result = drop_exact_duplicates(convs, config=ON)
    assert len(result.kept) == 3
    (dropped,) = result.dropped
    assert dropped.record_index == convs[3].provenance.record_index
    found = find_exact_duplicates(pl.DataFrame(exact_dedupe_keys(convs, part=0, config=ON)), config=ON)
    assert found.select("row", "reason").rows() == [(3, "exact_duplicate")]
    assert "row 0" in found["detail"][0]


def test_duplicates_are_found_across_parts_by_part_and_row() -> None:
    part0 = [alternating("Q", "A", id="a"), alternating("Other", "Thing", id="b")]
    part1 = [alternating("Q", "A", id="c"), alternating("Other", "thing", id="a")]
    keys = pl.concat(
        [
            pl.DataFrame(exact_dedupe_keys(part0, part=0, config=ON)),
            pl.DataFrame(exact_dedupe_keys(part1, part=1, config=ON)),
        ]
    )
    found = find_exact_duplicates(keys.lazy(), config=ON)
    assert found.schema == EXACT_FINDINGS_SCHEMA
    assert found.select("part", "row", "reason", "duplicate_of").rows() == [
        (0, 1, "exact_duplicate", "a"),  # "b" loses to the smaller id "a" of part 1
        (1, 0, "exact_duplicate", "a"),
    ]
    assert "(part 1 row 1)" in found["detail"][0] and "(part 0 row 0)" in found["detail"][1]


def test_split_pieces_of_one_conversation_are_not_prefixes_of_each_other() -> None:
    piece0 = alternating("Write chapter 1", "Chapter 1 ...", "continue", "Chapter 1, part 2 ...", id="X_0")
    piece1 = alternating("continue", "Chapter 2 ...", "continue", "Chapter 3 ...", id="X_1")
    assert findings([piece0, piece1]) == {}
    # The unsplit original next to its pieces: only the opening piece is contained in it.
    original = alternating(*[t.content for t in piece0.turns + piece1.turns], id="X")
    assert findings([piece0, piece1, original]) == {0: ("prefix_of_longer", "X")}


def test_later_split_pieces_whose_user_turns_are_all_continue_are_not_same_prompts() -> None:
    # Pieces that start inside a conversation; once the shape stage has cut their leading answer,
    # their user turns ("continue") say nothing about what the answers continue.
    x7 = alternating("continue", "the essay's second half", "continue", "its third half", id="X_7")
    y11 = alternating("continue", "    return result", "continue", "if __name__ == ...", id="Y_11")
    x9 = alternating("continue", "the essay's fourth half", "continue", "the end", id="X_9")
    # The same for chatsift's own split pieces, whatever their source and id.
    ours = [
        alternating("continue", f"chapter {i}", "continue", f"chapter {i}b", id=f"doc--p{i}").model_copy(
            update={"split_index": i, "source": "messages"}
        )
        for i in (1, 2)
    ]
    assert findings([x7, y11, x9, *ours]) == {}
    # The same pieces still count when identical, or when they open a longer piece.
    again = alternating("Continue", "the essay's second half", "continue", "its third half", id="Z_7")
    opening = alternating("continue", "The essay's second half", id="W_5")
    assert findings([x7, again, opening]) == {1: ("exact_duplicate", "X_7"), 2: ("prefix_of_longer", "X_7")}


def test_first_pieces_and_other_sources_with_the_same_prompts_are_same_prompts() -> None:
    a0 = alternating("Explain quantum computing", "Qubits are ...", "continue", "More on qubits ...", id="A_0")
    b0 = alternating("explain quantum computing", "It uses qubits", "continue", "And more", id="B_0")
    assert findings([a0, b0]) == {1: ("same_prompts", "A_0")}
    # The `X_N` naming is the ShareGPT release's: other sources' ids are only ids.
    m3 = alternating("Explain quantum computing", "Short", "continue", "Short", id="m_3").model_copy(
        update={"source": "messages"}
    )
    assert findings([a0, m3]) == {1: ("same_prompts", "A_0")}


def test_a_later_piece_with_the_same_real_prompts_is_same_prompts_whatever_its_id() -> None:
    # The regenerated copy of a piece that starts inside a conversation: its own prompts are evidence.
    piece = alternating("continue", "Chapter 2 ...", "Now rewrite it as a sonnet", "Sonnet one", id="X_7")
    regen = alternating("Continue", "Ch. 2", "now rewrite it as a SONNET", "Sonnet 2", id="copy")
    assert findings([piece, regen]) == {1: ("same_prompts", "X_7")}
    ours = regen.model_copy(update={"id": "doc--p3", "split_index": 3, "source": "messages"})
    assert findings([piece, ours]) == {1: ("same_prompts", "X_7")}


@pytest.mark.parametrize(
    "prompts",
    [
        ("continue", "please continue"),
        ("Continue.", "go on!"),
        ("繼續", "繼續"),  # shorter than min_prompt_chars: "continue" in Chinese
        ("more", ""),
        ("hi", "thank you"),
        # A prompt that opens with a continuation request asks for more of an answer before it.
        ("Continue in Geomancy field: for a quiz of 50 questions from the answers you provided above",) * 2,
        ("continue writing please Please write in English language.", "Keep going, from the last code snippet"),
    ],
)
def test_prompts_that_only_ask_to_continue_are_no_evidence_of_a_regeneration(prompts: tuple[str, ...]) -> None:
    a = alternating(prompts[0], "Quiz questions 11-20 ...", prompts[1], "Quiz questions 21-30 ...", id="A")
    b = alternating(prompts[0], "Quiz questions 31-40 ...", prompts[1], "Quiz questions 41-50 ...", id="B")
    assert findings([a, b]) == {}
    assert exact_dedupe_keys([a, b], part=0, config=ON).column("user_hash").to_pylist() == [None, None]


def test_one_real_prompt_among_continue_requests_is_evidence() -> None:
    a = alternating("Write a short story about a lighthouse", "Story A", "continue", "More of A", id="A")
    b = alternating("write a short story about a lighthouse", "Story B", "continue", "More of B", id="B")
    assert findings([a, b]) == {1: ("same_prompts", "A")}
    # Continue requests stay in the key where they are: other follow-ups are another conversation.
    c = alternating("Write a short story about a lighthouse", "Story C", "shorter", "Short C", id="C")
    assert findings([a, c]) == {}


def test_the_continuation_prompts_and_minimum_length_are_options() -> None:
    a = alternating("Tell me more about it", "About A", id="A")
    b = alternating("tell me more about it", "About B", id="B")
    assert findings([a, b]) == {1: ("same_prompts", "A")}
    assert findings([a, b], ExactDedupeConfig(continuation_prompts=("tell me more",))) == {}
    assert findings([a, b], ExactDedupeConfig(min_prompt_chars=30)) == {}
    # With neither, the rule is the plain one: any identical user turns.
    hi = [alternating("hi", "Hello!", id="h1"), alternating("Hi", "Hey", id="h2")]
    plain = ExactDedupeConfig(continuation_prompts=(), min_prompt_chars=0)
    assert findings(hi) == {}
    assert findings(hi, plain) == {1: ("same_prompts", "h1")}


def test_a_leading_answer_counts_as_context_of_the_prompts() -> None:
    # With shape repair off, a piece keeps its leading answer: it tells pieces apart as well.
    x = alternating(
        "...the first half of a long essay", "Now a summary in one line", "One line", id="x", first="assistant"
    )
    y = alternating("def parse(args): ...", "Now a summary in one line", "It parses", id="y", first="assistant")
    assert findings([x, y]) == {}
    x_regen = alternating(
        "...the first half of a long essay", "now a summary in one line", "Other", id="x-b", first="assistant"
    )
    assert findings([x, y, x_regen]) == {2: ("same_prompts", "x")}


def test_a_piece_starting_with_an_answer_is_no_round_of_a_longer_one() -> None:
    # "Acknowledged." alone (a real split piece) is not a round, so it is not a prefix.
    lone = alternating("Acknowledged.", id="Y_19", first="assistant")
    longer = alternating("Acknowledged.", "Part 9 ...", "Acknowledged, go on.", id="Y_21", first="assistant")
    assert findings([lone, longer]) == {}


# --- chains ------------------------------------------------------------------------------------


def test_an_exact_copy_of_a_prefix_points_at_the_longer_kept_one() -> None:
    b = alternating("Q1", "A1", id="b", model=GPT4_MODEL)  # the best copy of the pair...
    a = alternating("q1", "a1", id="a")
    c = alternating("Q1", "A1", "Q2", "A2", id="c")  # ...is the opening of c
    found = findings([a, b, c])
    assert found == {0: ("exact_duplicate", "c"), 1: ("prefix_of_longer", "c")}
    result = drop_exact_duplicates([a, b, c], config=ON)
    assert kept_ids(result) == ["c"]
    detail = next(d.detail for d in result.dropped if d.conversation_id == "a")
    assert "as b (part 0 row 1)" in detail and "kept: c (part 0 row 2)" in detail
    check_ledger([a, b, c], result)


def test_a_chain_of_all_three_rules_resolves_to_the_kept_record() -> None:
    exact = alternating("name a prime", "answer one", id="a-exact")
    best_copy = alternating("Name a prime", "Answer one", id="b-copy", model=GPT4_MODEL)
    regen_best = alternating("Name a prime", "A longer answer, regenerated", id="c-regen", model=GPT4_MODEL)
    longest = alternating("Name a prime", "A longer answer, regenerated", "Q2", "A2", id="d-long")
    convs = [exact, best_copy, regen_best, longest]
    assert findings(convs) == {
        0: ("exact_duplicate", "d-long"),
        1: ("same_prompts", "d-long"),
        2: ("prefix_of_longer", "d-long"),
    }
    check_ledger(convs, drop_exact_duplicates(convs, config=ON))


def test_nested_prefixes_all_point_at_the_best_longest_one() -> None:
    one = alternating("Q1", "A1", id="1")
    two = alternating("Q1", "A1", "Q2", "A2", id="2")
    three_a = alternating("Q1", "A1", "Q2", "A2", "Q3", "A3", id="3a")
    three_b = alternating("Q1", "A1", "Q2", "A2", "Q3-other", "A3-other", id="3b", model=GPT4_MODEL)
    convs = [one, two, three_a, three_b]
    assert findings(convs) == {0: ("prefix_of_longer", "3b"), 1: ("prefix_of_longer", "3b")}
    check_ledger(convs, drop_exact_duplicates(convs, config=ON))


def test_a_prefix_points_at_the_best_longest_one_not_at_a_better_ranked_middle_one() -> None:
    one = alternating("Q1", "A1", id="1")
    middle = alternating("Q1", "A1", "Q2", "A2", id="2", model=GPT4_MODEL)  # the best-ranked of one's longers
    after_middle = alternating("Q1", "A1", "Q2", "A2", "Q3", "A3", id="3")
    other_branch = alternating("Q1", "A1", "Qx", "Ax", "Qy", "Ay", "Qz", "Az", id="4")  # more turns than "3"
    convs = [one, middle, after_middle, other_branch]
    # "1" opens both "3" and "4", which open nothing: the better-ranked of those two is kept for it.
    assert findings(convs) == {0: ("prefix_of_longer", "4"), 1: ("prefix_of_longer", "3")}


# --- config switches --------------------------------------------------------------------------


def _one_of_each() -> list[Conversation]:
    return [
        alternating("Sort a list", "A", "Now reverse it", "A2", id="exact-a"),
        alternating("sort a list", "a", "now reverse it", "a2", id="exact-b"),
        alternating("Sort a list", "Other answer", "Now reverse it", "A2", id="regen"),
        alternating("Q9", "A9", "Q10", "A10", id="longer"),
        alternating("Q9", "A9", id="opening"),
    ]


def test_all_three_rules_apply_by_default() -> None:
    assert Counter(reason for reason, _ in findings(_one_of_each()).values()) == {
        "exact_duplicate": 1,
        "same_prompts": 1,
        "prefix_of_longer": 1,
    }


def test_disabled_keeps_everything() -> None:
    off = ExactDedupeConfig(enabled=False)
    convs = _one_of_each()
    result = drop_exact_duplicates(convs, config=off)
    assert kept_ids(result) == [c.id for c in convs] and result.dropped == []
    keys = pl.DataFrame(exact_dedupe_keys(convs, part=0, config=ON))
    empty = find_exact_duplicates(keys, config=off)
    assert empty.is_empty() and empty.schema == EXACT_FINDINGS_SCHEMA


def test_without_user_prompt_matching_a_regenerated_answer_is_kept() -> None:
    config = ExactDedupeConfig(match_user_prompts=False)
    found = findings(_one_of_each(), config)
    assert sorted(r for r, _ in found.values()) == ["exact_duplicate", "prefix_of_longer"]
    keys = exact_dedupe_keys(_one_of_each(), part=0, config=config)
    assert keys.column("user_hash").null_count == len(keys)
    # find honours the switch even for keys computed with it on.
    on_keys = pl.DataFrame(exact_dedupe_keys(_one_of_each(), part=0, config=ON))
    assert set(find_exact_duplicates(on_keys, config=config)["reason"]) == {"exact_duplicate", "prefix_of_longer"}


def test_without_prefix_matching_an_opening_is_kept() -> None:
    config = ExactDedupeConfig(match_prefixes=False)
    found = findings(_one_of_each(), config)
    assert sorted(r for r, _ in found.values()) == ["exact_duplicate", "same_prompts"]
    keys = exact_dedupe_keys(_one_of_each(), part=0, config=config)
    assert all(p == [] for p in keys.column("prefix_hashes").to_pylist())
    on_keys = pl.DataFrame(exact_dedupe_keys(_one_of_each(), part=0, config=ON))
    assert set(find_exact_duplicates(on_keys, config=config)["reason"]) == {"exact_duplicate", "same_prompts"}


def test_a_conversation_without_user_turns_has_no_user_hash() -> None:
    keys = exact_dedupe_keys(
        [conversation(id="e"), alternating("Only an answer", id="f", first="assistant")], part=0, config=ON
    )
    assert keys.column("user_hash").to_pylist() == [None, None]
    assert isinstance(keys, pa.Table)


# --- the real sample --------------------------------------------------------------------------


# The release names the piece of share X that starts at turn N `X_N`. The code never reads it; the
# tests use it to pick pieces that start inside a conversation.
_LATER_PIECE_ID = re.compile(r"[A-Za-z0-9]+_[1-9][0-9]*")


def _prompt_side(turns: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...] | None:
    """User turns and whatever precedes the first of them; None without a user turn."""
    if not any(role == "user" for role, _ in turns):
        return None
    first_user = next(i for i, (role, _) in enumerate(turns) if role == "user")
    return tuple(t for i, t in enumerate(turns) if i < first_user or t[0] != "assistant")


def _opens(short: tuple[tuple[str, str], ...], long: tuple[tuple[str, str], ...]) -> bool:
    """Whether `short` is whole rounds at the start of `long`: it ends in an answer after a prompt."""
    return (
        0 < len(short) < len(long)
        and long[: len(short)] == short
        and short[-1][0] == "assistant"
        and any(role == "user" for role, _ in short)
    )


def reference_findings(convs: Sequence[Conversation]) -> dict[int, tuple[str, str]]:
    """The three rules in plain Python over normalized turns, for cross-checking the polars path."""
    norm = [tuple((t.role, normalize_text(t.content)) for t in c.turns) for c in convs]
    by_rank = sorted(range(len(convs)), key=lambda r: (keep_rank(convs[r]), r))
    position = {row: i for i, row in enumerate(by_rank)}
    direct: dict[int, tuple[str, int]] = {}

    best_of_turns: dict[tuple[tuple[str, str], ...], int] = {}
    for row in by_rank:
        keeper = best_of_turns.setdefault(norm[row], row)
        if keeper != row:
            direct[row] = ("exact_duplicate", keeper)

    best_of_prompts: dict[tuple[tuple[str, str], ...], int] = {}
    for row in by_rank:
        evidence = any(prompt_is_evidence(t.content, config=ON) for t in convs[row].turns if t.role == "user")
        prompts = _prompt_side(norm[row]) if evidence else None
        if row in direct or prompts is None:
            continue
        keeper = best_of_prompts.setdefault(prompts, row)
        if keeper != row:
            direct[row] = ("same_prompts", keeper)

    survivors = [row for row in by_rank if row not in direct]
    by_first_turn: dict[tuple[str, str], list[int]] = {}
    for row in survivors:
        if norm[row]:
            by_first_turn.setdefault(norm[row][0], []).append(row)
    longer_of = {
        row: [other for other in by_first_turn.get(norm[row][0], []) if _opens(norm[row], norm[other])]
        for row in survivors
        if norm[row]
    }
    for row, longer in longer_of.items():
        ends = [other for other in longer if not longer_of.get(other)]
        if longer:
            direct[row] = ("prefix_of_longer", min(ends, key=position.__getitem__))

    def kept_in_place_of(row: int) -> int:
        while row in direct:
            row = direct[row][1]
        return row

    return {row: (reason, convs[kept_in_place_of(target)].id) for row, (reason, target) in direct.items()}


@pytest.fixture(scope="module")
def sample_convs(sharegpt_sample: list[dict[str, Any]]) -> list[Conversation]:
    return sharegpt_conversations(sharegpt_sample)


@pytest.mark.slow
@pytest.mark.shared_data
def test_the_real_sample_matches_the_plain_python_reference(sample_convs: list[Conversation]) -> None:
    found = findings(sample_convs)
    assert found == reference_findings(sample_convs)
    counts = Counter(reason for reason, _ in found.values())
    print(f"exact dedupe on {len(sample_convs)} real conversations: {dict(sorted(counts.items()))}")
    # The sample repeats 20 ids, one copy empty; its 21 empty conversations are one group.
    empty_rows = [r for r, c in enumerate(sample_convs) if not c.turns]
    assert sum(r in found for r in empty_rows) == len(empty_rows) - 1
    result = drop_exact_duplicates(sample_convs, config=ON)
    assert len(sample_convs) == len(result.kept) + len(result.dropped)
    assert Counter(d.reason for d in result.dropped) == counts
    # duplicate_of names a kept record: check by position, since ids repeat.
    kept_rows = {r for r in range(len(sample_convs)) if r not in found}
    for reason, dup in found.values():
        assert any(sample_convs[r].id == dup for r in kept_rows), (reason, dup)


def _respaced(text: str, rng: random.Random) -> str:
    """The same text to normalize_text: spaces doubled, newlines doubled, case changed, padded."""
    changed = text.replace(" ", "  ", 3).replace("\n", "\n\n", 2)
    # ASCII letters only: casefold undoes their case change, not every script's (Turkish ı).
    flip = str.upper if rng.random() < 0.5 else str.swapcase
    return " " + "".join(flip(ch) if ch.isascii() else ch for ch in changed) + "\n"


@pytest.mark.slow
@pytest.mark.shared_data
def test_planted_copies_in_the_real_sample_are_each_found(sample_convs: list[Conversation]) -> None:
    rng = random.Random(20240601)
    before = findings(sample_convs)
    id_counts = Counter(c.id for c in sample_convs)
    # A planted opening [u1, a1] must not share its prompts with a conversation other than its own.
    first_turns = Counter(normalize_text(c.turns[0].content) for c in sample_convs if c.turns)
    candidates = [
        r
        for r, c in enumerate(sample_convs)
        if r not in before
        and id_counts[c.id] == 1
        and len(c.turns) >= 4
        and c.id.endswith("_0")  # a first piece: later ones have no prompts of their own
        and c.turns[0].role == "user"
        and c.turns[1].role == "assistant"
        and first_turns[normalize_text(c.turns[0].content)] == 1
        and c.turns[-1].role == "assistant"
        and len(c.turns[-1].content) > 40
    ]
    originals = rng.sample(candidates, 6)
    planted: dict[str, tuple[str, int]] = {}  # planted id -> (kind, original row)
    extra: list[Conversation] = []
    for n, row in enumerate(originals):
        orig = sample_convs[row]
        kind = ("copy", "opening", "regenerated")[n % 3]
        turns = list(orig.turns)
        if kind == "opening":
            turns = turns[:2]
        if kind == "regenerated":
            turns[-1] = turns[-1].model_copy(update={"content": "A short regenerated answer."})
        else:
            turns = [t.model_copy(update={"content": _respaced(t.content, rng)}) for t in turns]
            assert [normalize_text(t.content) for t in turns] == [
                normalize_text(t.content) for t in orig.turns[: len(turns)]
            ]
        new_id = f"planted-{kind}-{n}"
        planted[new_id] = (kind, row)
        extra.append(orig.model_copy(update={"id": new_id, "turns": tuple(turns)}))
    convs = [*sample_convs, *extra]
    found = findings(convs)
    assert found == reference_findings(convs)
    kept_rows = [r for r in range(len(convs)) if r not in found]
    norm = {r: tuple((t.role, normalize_text(t.content)) for t in convs[r].turns) for r in kept_rows}
    for offset, (new_id, (kind, orig_row)) in enumerate(planted.items()):
        new_row = len(sample_convs) + offset
        orig_id = sample_convs[orig_row].id
        if kind == "copy":
            # Exactly one of the pair goes, pointing at the other (respacing may make the copy longer).
            pair = {new_row: orig_id, orig_row: new_id}
            assert [(found[r], dup) for r, dup in pair.items() if r in found] in (
                [(("exact_duplicate", orig_id), orig_id)],
                [(("exact_duplicate", new_id), new_id)],
            )
        elif kind == "regenerated":
            assert found.get(new_row) == ("same_prompts", orig_id) and orig_row not in found
        else:
            reason, dup = found[new_row]
            opening = tuple((t.role, normalize_text(t.content)) for t in convs[new_row].turns)
            assert reason == "prefix_of_longer"
            assert any(convs[r].id == dup and norm[r][: len(opening)] == opening for r in kept_rows)
    result = drop_exact_duplicates(convs, config=ON)
    assert len(convs) == len(result.kept) + len(result.dropped)
    assert len(result.dropped) == len(before) + len(planted)


@pytest.fixture(scope="module")
def shaped_sample(sample_convs: list[Conversation]) -> list[Conversation]:
    """The real sample as dedupe_exact sees it in a run: after shape repair has cut the pieces'
    leading answers."""
    return repair_shape(sample_convs, config=ShapeConfig()).kept


def _user_turns(c: Conversation) -> tuple[str, ...]:
    return tuple(normalize_text(t.content) for t in c.turns if t.role == "user")


def _identical_user_turn_matches(convs: Sequence[Conversation]) -> list[tuple[int, int]]:
    """(row, kept row) pairs that the plain rule (identical user turns, nothing else) makes
    among the records that are no exact duplicate."""
    exact_copies = {row for row, (reason, _) in findings(convs).items() if reason == "exact_duplicate"}
    best: dict[tuple[str, ...], int] = {}
    pairs = []
    for row in sorted(range(len(convs)), key=lambda r: (keep_rank(convs[r]), r)):
        if row in exact_copies or not _user_turns(convs[row]):
            continue
        keeper = best.setdefault(_user_turns(convs[row]), row)
        if keeper != row:
            pairs.append((row, keeper))
    return pairs


# Read off the plain rule's matches on the real sample: user turns that ask for more of an answer
# ("continue", "please continue", "please expand your last response", "繼續", "continue in
# Geomancy field: ..."), or are empty.
_ASKS_TO_CONTINUE = re.compile(r"^$|continue|go on|expand|繼續")


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("view", ["as read", "after shape"])
def test_pieces_whose_prompts_only_ask_to_continue_are_not_same_prompts_in_the_real_sample(
    view: str, sample_convs: list[Conversation], shaped_sample: list[Conversation]
) -> None:
    convs = sample_convs if view == "as read" else shaped_sample
    continue_matches = [
        (row, keeper)
        for row, keeper in _identical_user_turn_matches(convs)
        if all(_ASKS_TO_CONTINUE.search(u) for u in _user_turns(convs[row]))
    ]
    found = findings(convs)
    wrongly_dropped = [
        (convs[r].id, _user_turns(convs[r])[:2])
        for pair in continue_matches
        for r in pair
        if found.get(r, ("",))[0] == "same_prompts"
    ]
    print(f"{view}: {len(continue_matches)} continue matches, {len(wrongly_dropped)} dropped as same_prompts")
    assert len(continue_matches) >= 40
    assert wrongly_dropped == []


@pytest.mark.slow
@pytest.mark.shared_data
def test_regenerated_answers_planted_in_split_parts_of_the_real_sample_are_caught(
    shaped_sample: list[Conversation],
) -> None:
    convs = shaped_sample
    before = findings(convs)
    id_counts = Counter(c.id for c in convs)
    prompt_counts = Counter(_prompt_side(tuple((t.role, normalize_text(t.content)) for t in c.turns)) for c in convs)
    eligible = [
        r
        for r, c in enumerate(convs)
        if r not in before
        and id_counts[c.id] == 1
        and any(t.role == "assistant" for t in c.turns)
        and prompt_counts[_prompt_side(tuple((t.role, normalize_text(t.content)) for t in c.turns))] == 1
    ]
    later = [r for r in eligible if _LATER_PIECE_ID.fullmatch(convs[r].id)]
    first = [r for r in eligible if not _LATER_PIECE_ID.fullmatch(convs[r].id)]
    rng = random.Random(15)
    # As in the issue: 36 of the 60 in later parts (ids `X_N`, N > 0).
    originals = rng.sample(later, 36) + rng.sample(first, 24)
    extra = []
    for n, row in enumerate(originals):
        # The same turns with the answers of another planted original, under an id of no convention.
        donor = convs[originals[(n + 1) % len(originals)]]
        answers = [t for t in donor.turns if t.role == "assistant"]
        turns = list(convs[row].turns)
        assistant_rows = [i for i, t in enumerate(turns) if t.role == "assistant"]
        for k, i in enumerate(assistant_rows):
            turns[i] = answers[k % len(answers)]
        extra.append(convs[row].model_copy(update={"id": f"regenerated-{n}", "turns": tuple(turns)}))
    planted = [*convs, *extra]
    found = findings(planted)
    assert found == reference_findings(planted)
    caught = [
        n
        for n, row in enumerate(originals)
        if found.get(len(convs) + n) == ("same_prompts", convs[row].id)
        or found.get(row) == ("same_prompts", f"regenerated-{n}")
    ]
    print(f"planted regenerations caught: {len(caught)} of 60 ({sum(n < 36 for n in caught)} of 36 in later parts)")
    assert len(caught) >= 54
    # Nothing else moved: the planted records account for every new finding.
    assert {r: f for r, f in found.items() if r < len(convs) and r not in originals} == before
