"""The contamination check's parts with the real embedder (all-MiniLM-L6-v2) and real FAISS."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from curation.contamination.check import (
    BenchmarkIndex,
    build_benchmark_index,
    category_of,
    check_contamination,
    turn_units,
)
from curation.contamination.decisions import DecisionsFileError, decisions_by_conversation, read_decisions
from curation.contamination.embedding_cache import cached_embeddings, model_cache_dir
from curation.contamination.ngram_overlap import best_overlap, build_ngram_index, char_containment, overlap_evidence
from curation.contamination.report_html import flagged_pairs_csv
from curation.contamination.vector_search import DeviceUnavailableError, faiss_gpu_count, flat_ip_index, search_top
from schemas import Conversation
from schemas.config import ContaminationConfig
from schemas.contamination import BenchmarkItem, ReviewerDecision
from tests.helpers.contamination_report import sample_report
from tests.helpers.conversations import alternating

# Benchmark-style items written for these tests.
ITEMS = [
    BenchmarkItem(
        benchmark="toy_math",
        item_id="q1",
        text="A bakery sells muffins in boxes of 6. If Priya buys 4 boxes and gives away 7 muffins, "
        "how many muffins does she have left?",
    ),
    BenchmarkItem(benchmark="toy_qa", item_id="q2", text="Who signed the Louisiana Purchase?"),
    BenchmarkItem(
        benchmark="toy_qa", item_id="q3", text="Explain why the sky appears blue during the day but red at sunset."
    ),
    BenchmarkItem(
        benchmark="toy_code",
        item_id="q4",
        text="Write a function that returns the second largest distinct integer in a list, or None if there is none.",
    ),
]
UNRELATED = "How do I configure nginx as a reverse proxy for a Node.js app listening on port 3000?"
ANSWER = "Here is a careful answer to that."


@pytest.fixture(scope="module")
def toy_index(embed_units: Any) -> BenchmarkIndex:
    vectors = embed_units([i.text for i in ITEMS]).vectors
    return build_benchmark_index(ITEMS, vectors, config=ContaminationConfig(), gpu=False)


def run(convs: list[Conversation], index: BenchmarkIndex, embed: Any, decisions: dict | None = None, **options: Any):
    return check_contamination(
        convs, index=index, embed=embed, config=ContaminationConfig(**options), decisions=decisions or {}
    )


# --- units, n-grams, fuzzy containment, categories


def test_turn_units_add_paragraphs_and_overlapping_windows() -> None:
    assert turn_units("one short question?", window_words=8, max_units=10) == [("turn", "one short question?")]
    units = turn_units("first para here\n\n  second para  \n", window_words=8, max_units=10)
    assert [label for label, _ in units] == ["turn", "paragraph 1", "paragraph 2"]
    assert units[2][1] == "second para"
    words = " ".join(f"w{i}" for i in range(20))
    windows = turn_units(words, window_words=8, max_units=10)[1:]
    assert [t.split()[0] for _, t in windows] == ["w0", "w4", "w8", "w12"]
    assert windows[-1][1].endswith("w19")  # the windows cover every word
    assert len(turn_units(words, window_words=8, max_units=3)) == 3
    # a one-word paragraph (a quiz's answer option) is no unit of its own
    quiz = "Where are histones found in the cell nucleus?\n\nhistones\n\nIn the mitochondria"
    assert [label for label, _ in turn_units(quiz, window_words=8, max_units=10, min_words=5)] == [
        "turn",
        "paragraph 1",
    ]


def test_ngram_tier_finds_a_verbatim_copy_inside_a_long_turn_and_locates_it() -> None:
    index = build_ngram_index([i.text for i in ITEMS], n=13, min_words=8)
    assert index.gram_counts[1] == 0  # 5 words: left to the embeddings
    long_turn = "Lots of context. " * 50 + ITEMS[0].text.upper() + " And more text after it." * 20
    overlap = best_overlap(long_turn, index)
    assert overlap.item == 0 and overlap.coverage == 1.0
    turn_spans, item_spans = overlap_evidence(long_turn, ITEMS[0].text, n=13, min_words=8)
    assert [long_turn[a:b] for a, b in turn_spans] == [ITEMS[0].text.upper()[:-1]]  # the final "?" is not a word
    assert item_spans == ((0, len(ITEMS[0].text) - 1),)
    # an item shorter than n is matched whole: one changed word breaks the match
    code = ITEMS[3].text
    assert best_overlap("please: " + code, index).coverage == 1.0
    assert best_overlap(code.replace("largest", "smallest"), index).coverage < 0.5


def test_short_items_are_left_out_of_the_fuzzy_tier(embed_units: Any) -> None:
    items = [BenchmarkItem(benchmark="toy", item_id="nmap", text="What is Nmap?")]
    config = ContaminationConfig()
    index = build_benchmark_index(items, embed_units([items[0].text]).vectors, config=config, gpu=False)
    turn = alternating("what is nmap -p U:53 <ip?", ANSWER, id="scan")
    [finding] = check_contamination([turn], index=index, embed=embed_units, config=config, decisions={}).findings
    assert char_containment("What is Nmap?", "what is nmap -p U:53 <ip?") >= 0.8  # what the tier would see
    assert finding.fuzzy_containment == 0.0 and not finding.flagged


def test_char_containment_survives_typos_but_not_other_questions() -> None:
    assert char_containment("Who signed the Louisiana Purchase?", "who signed the luoisiana purchase") >= 0.8
    assert char_containment("Who signed the Louisiana Purchase?", "Who bought the Alaska territory?") < 0.5


def test_categories_follow_coverage_then_score_bands() -> None:
    c = ContaminationConfig()
    assert category_of(0.5, 0.9, 0.0, c) == "near_verbatim"
    assert category_of(0.5, 0.0, 0.95, c) == "near_verbatim"
    assert category_of(0.96, 0.0, 0.0, c) == "near_verbatim"
    assert category_of(0.9, 0.0, 0.0, c) == "rephrased"
    assert category_of(0.5, 0.6, 0.0, c) == "rephrased"
    assert category_of(0.5, 0.0, 0.85, c) == "rephrased"
    assert category_of(0.82, 0.0, 0.6, c) == "similar"


def test_config_rejects_bands_out_of_order_and_hub_less_presets() -> None:
    with pytest.raises(ValidationError, match="threshold <= rephrased_score"):
        ContaminationConfig(threshold=0.9, rephrased_score=0.85)
    with pytest.raises(ValidationError, match="presets_dir"):
        ContaminationConfig(presets=("vicuna_bench",))
    assert ContaminationConfig(presets=("vicuna_bench",), presets_dir="/b").benchmark_specs()[0].path == (
        "/b/vicuna_bench_question.jsonl"
    )


# --- FAISS


def test_flat_index_search_equals_brute_force_cosine() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(500, 32)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = rng.normal(size=(300, 32)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    index = flat_ip_index(base, gpu=False)
    best_scores, best_rows = search_top(index, queries, k=1, batch_size=64)
    scores, rows = best_scores[:, 0], best_rows[:, 0]
    brute = queries @ base.T
    assert (rows == brute.argmax(axis=1)).all()
    np.testing.assert_allclose(scores, brute.max(axis=1), atol=1e-5)
    top_scores, top_rows = search_top(index, queries, k=3, batch_size=100)
    assert (top_rows[:, 0] == rows).all() and (np.diff(top_scores, axis=1) <= 1e-6).all()


@pytest.mark.skipif(faiss_gpu_count() > 0, reason="a GPU is present: the GPU test below runs instead")
def test_gpu_index_without_a_gpu_says_how_to_fix_it() -> None:
    with pytest.raises(DeviceUnavailableError, match="faiss-gpu"):
        flat_ip_index(np.eye(4, dtype=np.float32), gpu=True)


@pytest.mark.skipif(faiss_gpu_count() == 0, reason="needs faiss-gpu and a CUDA device (the gpu extra)")
def test_gpu_and_cpu_indexes_find_the_same_neighbours() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(20000, 384)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = base[rng.choice(20000, 2000)] + rng.normal(scale=0.05, size=(2000, 384)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    cpu = search_top(flat_ip_index(base, gpu=False), queries, k=1, batch_size=512)
    gpu = search_top(flat_ip_index(base, gpu=True), queries, k=1, batch_size=512)
    assert (cpu[1] == gpu[1]).all()
    np.testing.assert_allclose(cpu[0], gpu[0], atol=1e-4)


# --- the check and its actions


def test_verbatim_copy_is_removed_and_every_turn_keeps_its_best_match(toy_index: BenchmarkIndex, embed_units: Any):
    copied = alternating("Context first.\n\n" + ITEMS[0].text + "\n\nThanks!", ANSWER, id="copy")
    clean = alternating(UNRELATED, ANSWER, id="clean")
    result = run([copied, clean], toy_index, embed_units)
    assert [c.id for c in result.kept] == ["clean"]
    [drop] = result.dropped
    assert (drop.conversation_id, drop.reason, drop.stage, drop.scope) == (
        "copy",
        "benchmark_contamination",
        "contamination",
        "conversation",
    )
    assert "benchmark=toy_math item=q1" in drop.detail and "category=near_verbatim" in drop.detail
    by_id = {f.conversation_id: f for f in result.findings}
    assert by_id["copy"].action == "removed" and by_id["copy"].ngram_coverage == 1.0
    assert by_id["clean"].action == "none" and not by_id["clean"].flagged
    assert by_id["clean"].best_item_id is not None and 0.0 <= by_id["clean"].best_score < 0.8
    assert by_id["clean"].turn_text is None  # only flagged turns carry their text


def test_rephrased_and_retyped_questions_are_flagged(toy_index: BenchmarkIndex, embed_units: Any) -> None:
    rephrased = alternating("Why is the sky blue in the daytime, yet red when the sun sets?", ANSWER, id="rephrased")
    retyped = alternating("who signed the luoisiana purchase", ANSWER, id="retyped")
    result = run([rephrased, retyped], toy_index, embed_units)
    found = {f.conversation_id: f for f in result.findings}
    assert found["rephrased"].matched_item_id == "q3" and found["rephrased"].matched_score >= 0.8
    assert found["retyped"].matched_item_id == "q2" and found["retyped"].fuzzy_containment >= 0.8
    assert found["retyped"].best_score < 0.8  # the embedding alone would have missed it
    assert not result.kept


def test_cut_keeps_the_rounds_before_the_contaminated_one(toy_index: BenchmarkIndex, embed_units: Any) -> None:
    later = alternating(UNRELATED, ANSWER, ITEMS[0].text, ANSWER, "and a follow-up", ANSWER, id="later")
    first = alternating(ITEMS[0].text, ANSWER, UNRELATED, ANSWER, id="first")
    result = run([later, first], toy_index, embed_units, action="cut_before_turn")
    [kept] = result.kept
    assert kept.id == "later" and [t.content for t in kept.turns] == [UNRELATED, ANSWER]
    cut, dropped = sorted(result.dropped, key=lambda d: d.scope, reverse=True)
    assert (cut.conversation_id, cut.reason, cut.scope) == ("later", "contaminated_rounds_cut", "round")
    assert cut.detail.startswith("cut at turn 2 of 6")
    assert (dropped.conversation_id, dropped.reason, dropped.scope) == (
        "first",
        "benchmark_contamination",
        "conversation",
    )
    assert result.changed["conversations_cut"] == 1


def test_assistant_turns_are_checked_when_asked_and_cut_with_their_round(
    toy_index: BenchmarkIndex, embed_units: Any
) -> None:
    quoting = alternating(UNRELATED, ANSWER, "Give me a practice problem", ITEMS[0].text, id="quoting")
    assert run([quoting], toy_index, embed_units).kept  # user turns only, by default
    result = run([quoting], toy_index, embed_units, roles=("user", "assistant"), action="cut_before_turn")
    [kept] = result.kept
    assert len(kept.turns) == 2  # the round whose answer quotes the item is cut whole


def test_reviewer_decisions_clear_and_force(toy_index: BenchmarkIndex, embed_units: Any) -> None:
    flagged = alternating("Why is the sky blue in the daytime, yet red when the sun sets?", ANSWER, id="flagged")
    below = alternating("What colour is the sky on Mars at sunset?", ANSWER, id="below")
    absent = alternating(UNRELATED, ANSWER, id="absent")
    decisions = decisions_by_conversation(
        [
            ReviewerDecision(conversation_id="flagged", benchmark="toy_qa", item_id="q3", decision="keep"),
            ReviewerDecision(conversation_id="below", benchmark="toy_qa", item_id="q3", decision="remove"),
            ReviewerDecision(conversation_id="absent", benchmark="toy_code", item_id="q9", decision="remove"),
            ReviewerDecision(conversation_id="elsewhere", benchmark="toy_qa", item_id="q3", decision="keep"),
        ]
    )
    result = run([flagged, below, absent], toy_index, embed_units, decisions=decisions)
    assert [c.id for c in result.kept] == ["flagged"]
    found = {f.conversation_id: f for f in result.findings}
    assert found["flagged"].action == "kept_by_reviewer" and found["flagged"].decision == "keep"
    assert found["below"].action == "removed" and found["below"].best_score < 0.8
    reasons = {d.conversation_id: d.detail for d in result.dropped}
    assert "reviewer=remove" in reasons["below"] and "no turn matched" in reasons["absent"]
    assert result.decisions_applied[("flagged", "toy_qa", "q3")] == "turn 0: cleared"
    assert ("elsewhere", "toy_qa", "q3") not in result.decisions_applied


def test_categories_outside_remove_categories_are_kept_and_said_so(toy_index: BenchmarkIndex, embed_units: Any) -> None:
    rephrased = alternating("Why is the sky blue in the daytime, yet red when the sun sets?", ANSWER, id="rephrased")
    result = run([rephrased], toy_index, embed_units, remove_categories=("near_verbatim",))
    assert result.kept and result.findings[0].action == "kept_by_config"
    assert result.changed["kept_by_config"] == 1


# --- embedding cache and decisions file


def test_embedding_cache_embeds_each_text_once_across_runs(tmp_path: Path, embed_units: Any) -> None:
    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        return embed_units(texts).vectors

    folder = model_cache_dir(tmp_path, "sentence-transformers/all-MiniLM-L6-v2", 384)
    first = cached_embeddings(["a b", "c d", "a b"], embed=embed, folder=folder, dim=384)
    assert (first.embedded, first.reused) == (2, 0) and calls == [["a b", "c d"]]
    again = cached_embeddings(["c d", "a b"], embed=embed, folder=folder, dim=384)
    assert (again.embedded, again.reused) == (0, 2) and len(calls) == 1
    np.testing.assert_array_equal(again.vectors, first.vectors[[1, 0]])
    grown = cached_embeddings(["a b", "e f"], embed=embed, folder=folder, dim=384)
    assert (grown.embedded, grown.reused) == (1, 1) and calls[-1] == ["e f"]
    assert len(list(folder.glob("part-*.parquet"))) == 2


def test_decisions_file_reads_the_exported_csv_and_names_bad_lines(tmp_path: Path) -> None:
    # the exported pairs, with the reviewer's ruling on the first one only
    rows = list(csv.DictReader(io.StringIO(flagged_pairs_csv(sample_report()))))
    assert len(rows) > 1
    for row in rows:
        row["decision"] = ""
    rows[0]["decision"] = "Keep"
    path = tmp_path / "decisions.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    [decision] = read_decisions(path)
    assert (decision.conversation_id, decision.benchmark, decision.item_id, decision.decision) == (
        rows[0]["conversation_id"],
        rows[0]["benchmark"],
        rows[0]["item_id"],
        "keep",
    )
    path.write_text("conversation_id,benchmark,item_id,decision\nc1,gsm8k,x,maybe\n")
    with pytest.raises(DecisionsFileError, match=r"decisions.csv:2: .*keep or remove"):
        read_decisions(path)
    path.write_text("conversation_id,item_id,decision\n")
    with pytest.raises(DecisionsFileError, match="missing column"):
        read_decisions(path)
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(
        json.dumps({"conversation_id": "c", "benchmark": "b", "item_id": "i", "decision": "remove"}) + "\n"
    )
    assert read_decisions(jsonl)[0].decision == "remove"
    with pytest.raises(DecisionsFileError, match="not found"):
        read_decisions(tmp_path / "missing.csv")
