"""The contamination check on real data: benchmark items planted in real ShareGPT conversations.

Items from the real benchmark files are planted verbatim and lightly edited into the opening round
of otherwise untouched real conversations (as a new round after it, as a paragraph of its user
turn, or behind a request phrase); recall must be >= 0.99 for both, and the flag rate on untouched
whole conversations is measured and bounded.

The index holds the planted items among a fixed sample of distractors from every benchmark, so
that embedding it stays a small part of the suite; `python -m bench.contamination --plants N`
runs the same planting against every item of the nine benchmarks and all 3003 conversations.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench.contamination import shared_preset_specs
from curation.contamination.benchmarks import read_benchmarks
from curation.contamination.check import BenchmarkIndex, ContaminationResult, build_benchmark_index, check_contamination
from curation.text import normalize_text
from schemas import Conversation
from schemas.config import LOCAL_BENCHMARK_PRESETS, ContaminationConfig
from schemas.contamination import BenchmarkItem
from tests.helpers.planting import light_edit, opening_round, plant, untouched_and_hosts

SEED = 20261121
UNTOUCHED = 150  # real conversations left as they are: those test_rephrased_real checks (the shared cache)
PLANTS_PER_BENCHMARK = 14  # items planted verbatim, and as many lightly edited
# Items indexed per benchmark, the planted ones among them (all of a smaller benchmark). The index
# then holds ~900 of the 19,073 items: the suite's embedding time is spent on the check, not on
# the index (the full index: bench/contamination.py).
INDEXED_PER_BENCHMARK = 100


@pytest.fixture(scope="module")
def real_items(shared_data: Path) -> list[BenchmarkItem]:
    """A fixed sample of every benchmark; the first PLANTS_PER_BENCHMARK of each are planted."""
    specs = shared_preset_specs(shared_data / "benchmarks")
    rng = random.Random(SEED)
    by_benchmark: dict[str, list[BenchmarkItem]] = {}
    for item in read_benchmarks(specs, index_answers=False):
        by_benchmark.setdefault(item.benchmark, []).append(item)
    assert len(by_benchmark) == len(LOCAL_BENCHMARK_PRESETS)
    return [
        item
        for name in sorted(by_benchmark)
        for item in rng.sample(by_benchmark[name], min(INDEXED_PER_BENCHMARK, len(by_benchmark[name])))
    ]


@pytest.fixture(scope="module")
def real_index(real_items: list[BenchmarkItem], embed_units: Any) -> BenchmarkIndex:
    vectors = embed_units([i.text for i in real_items]).vectors
    return build_benchmark_index(real_items, vectors, config=ContaminationConfig(), gpu=False)


@pytest.fixture(scope="module")
def planted_run(
    sharegpt_sample: list[dict[str, Any]], real_items: list[BenchmarkItem], real_index: BenchmarkIndex, embed_units: Any
) -> dict[str, Any]:
    rng = random.Random(SEED)
    untouched, hosts = untouched_and_hosts(sharegpt_sample, UNTOUCHED)
    by_benchmark: dict[str, list[BenchmarkItem]] = {}
    for item in real_items:
        by_benchmark.setdefault(item.benchmark, []).append(item)
    plants: dict[str, tuple[str, BenchmarkItem, int]] = {}  # id -> (kind, item, turn)
    planted: list[Conversation] = []
    for name in sorted(by_benchmark):
        for k, item in enumerate(by_benchmark[name][:PLANTS_PER_BENCHMARK]):
            for kind in ("exact", "edited"):
                text = item.text if kind == "exact" else light_edit(item.text, rng)
                mode = (
                    ("new_round", "paragraph", "request")[k % 3]
                    if kind == "exact"
                    else ("new_round", "paragraph")[k % 2]
                )
                pid = f"plant-{kind}-{name}-{k}"
                conv, at = plant(opening_round(hosts.pop()), text, mode, pid)
                plants[pid] = (kind, item, at)
                planted.append(conv)
    result = check_contamination(
        untouched + planted, index=real_index, embed=embed_units, config=ContaminationConfig(), decisions={}
    )
    return {"result": result, "plants": plants, "untouched": untouched}


def _same_text(a: BenchmarkItem, b_benchmark: str | None, b_id: str | None, items: dict) -> bool:
    other = items.get((b_benchmark, b_id))
    return other is not None and normalize_text(other.text) == normalize_text(a.text)


@pytest.mark.shared_data
@pytest.mark.slow
def test_planted_items_are_found_with_recall_at_least_099(planted_run: dict[str, Any], real_items: list) -> None:
    result: ContaminationResult = planted_run["result"]
    items = {(i.benchmark, i.item_id): i for i in real_items}
    flagged = {(f.conversation_id, f.turn_index): f for f in result.findings if f.flagged}
    found: Counter[str] = Counter()
    right_item: Counter[str] = Counter()
    missed = []
    for pid, (kind, item, at) in planted_run["plants"].items():
        f = flagged.get((pid, at))
        if f is None:
            missed.append((pid, item.item_id))
            continue
        found[kind] += 1
        right_item[kind] += (f.matched_benchmark, f.matched_item_id) == (item.benchmark, item.item_id) or _same_text(
            item, f.matched_benchmark, f.matched_item_id, items
        )
    total = Counter(kind for kind, _, _ in planted_run["plants"].values())
    for kind in ("exact", "edited"):
        recall = found[kind] / total[kind]
        print(
            f"{kind}: recall {found[kind]}/{total[kind]} = {recall:.3f}, right item {right_item[kind]}, missed {missed}"
        )
        assert recall >= 0.99, (kind, missed)
        assert right_item[kind] >= 0.97 * total[kind]
    # the default action drops each planted conversation; its ledger row names the first contaminated
    # turn's item (a host may hold a benchmark question of its own: one real conversation asks a
    # TruthfulQA question verbatim)
    details = {d.conversation_id: d for d in result.dropped}
    for pid, (_, item, at) in planted_run["plants"].items():
        if (pid, item.item_id) not in missed:
            assert flagged[(pid, at)].action == "removed"
            assert details[pid].reason == "benchmark_contamination"
            assert "benchmark=" in details[pid].detail and "score=" in details[pid].detail


@pytest.mark.shared_data
@pytest.mark.slow
def test_flag_rate_on_untouched_real_conversations_is_low_and_stated(planted_run: dict[str, Any]) -> None:
    result: ContaminationResult = planted_run["result"]
    untouched = {c.id for c in planted_run["untouched"]}
    flagged = [f for f in result.findings if f.flagged and f.conversation_id in untouched]
    conversations = {f.conversation_id for f in flagged}
    rate = len(conversations) / len(untouched)
    by_category = Counter(f.category for f in flagged)
    print(f"untouched: {len(conversations)}/{len(untouched)} conversations flagged ({rate:.3%}), {dict(by_category)}")
    for f in flagged:
        print(f"  {f.conversation_id}/{f.turn_index} {f.matched_item_id} {f.matched_score:.3f}: {f.turn_text!r:.100}")
    # Measured against every item (bench/contamination.py): 2 of 400 (0.5%), both "Explain quantum
    # computing in simple terms" against AlpacaEval's "Can you explain the basics of quantum
    # computing?", a rephrasing Platypus would remove too.
    assert rate <= 0.01


@pytest.mark.shared_data
@pytest.mark.slow
def test_every_checked_conversation_is_kept_or_dropped(planted_run: dict[str, Any]) -> None:
    result: ContaminationResult = planted_run["result"]
    total = len(planted_run["untouched"]) + len(planted_run["plants"])
    assert len(result.kept) + len([d for d in result.dropped if d.scope == "conversation"]) == total
    # every checked (user) turn has a finding, flagged or not, with its best match
    user_turns = sum(t.role == "user" for c in result.kept for t in c.turns)
    assert len(result.findings) >= user_turns
    assert all(f.best_item_id is not None for f in result.findings)
