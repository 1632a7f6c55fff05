"""Rephrased benchmark items (GPT-4 rewrites from llm-decontaminator) in real conversations.

The held-out fifth of rephrased_dev.jsonl (tests/helpers/planting.held_out: never used to
calibrate the rephrase tier's rules) is planted into real ShareGPT conversations; the mean recall
over its benchmarks must be >= 75%, while untouched real conversations keep an FPR (flagged turns
of checked turns) <= 0.5%. The index holds each planted item's benchmark around it, so that the
item must win against its neighbours, not against nothing.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from curation.contamination.benchmarks import read_benchmark_items
from curation.contamination.check import (
    BenchmarkIndex,
    ContaminationResult,
    check_contamination,
)
from schemas import Conversation
from schemas.config import LOCAL_BENCHMARK_PRESETS, ContaminationConfig
from schemas.contamination import BenchmarkItem
from tests.helpers.planting import (
    Rephrasing,
    embedded_index,
    held_out,
    opening_round,
    plant,
    read_rephrasings,
    untouched_and_hosts,
)

SEED = 20261203
UNTOUCHED = 150  # real conversations left as they are, for the FPR
SLICE = {"gsm8k": 40, "mmlu": 55, "humaneval": 5}  # held-out rephrasings planted (humaneval: all 5 held out)
NEIGHBOURS = {"gsm8k": 200, "mmlu": 300}  # other items of the benchmark indexed around the planted ones


@pytest.fixture(scope="module")
def held_out_slice(shared_data: Path) -> list[Rephrasing]:
    rng = random.Random(SEED)
    rows = [r for r in read_rephrasings(shared_data / "benchmarks" / "rephrased_dev.jsonl") if held_out(r)]
    by_benchmark: dict[str, list[Rephrasing]] = {}
    for r in rows:
        by_benchmark.setdefault(r.benchmark, []).append(r)
    return [r for name, n in SLICE.items() for r in rng.sample(by_benchmark[name], min(n, len(by_benchmark[name])))]


@pytest.fixture(scope="module")
def index_items(shared_data: Path, held_out_slice: list[Rephrasing]) -> list[BenchmarkItem]:
    rng = random.Random(SEED)
    wanted = {(r.benchmark, r.item_id) for r in held_out_slice}
    items = []
    for name in ("gsm8k", "mmlu", "humaneval"):
        spec = LOCAL_BENCHMARK_PRESETS[name]
        read = read_benchmark_items(
            spec.model_copy(update={"path": str(shared_data / "benchmarks" / "raw" / spec.path)})
        )
        planted = [i for i in read.items if (i.benchmark, i.item_id) in wanted]
        others = [i for i in read.items if (i.benchmark, i.item_id) not in wanted]
        items += planted + rng.sample(others, min(NEIGHBOURS.get(name, len(others)), len(others)))
    assert len({(i.benchmark, i.item_id) for i in items} & wanted) == len(wanted)
    return items


@pytest.fixture(scope="module")
def index(index_items: list[BenchmarkItem], embed_units: Any) -> BenchmarkIndex:
    return embedded_index(index_items, embed_units)


@pytest.fixture(scope="module")
def run(
    sharegpt_sample: list[dict[str, Any]], held_out_slice: list[Rephrasing], index: BenchmarkIndex, embed_units: Any
) -> dict[str, Any]:
    untouched, hosts = untouched_and_hosts(sharegpt_sample, UNTOUCHED)
    plants: dict[str, tuple[Rephrasing, int]] = {}
    planted: list[Conversation] = []
    for k, r in enumerate(held_out_slice):
        pid = f"rephrased-{r.benchmark}-{k}"
        conv, at = plant(opening_round(hosts.pop()), r.rephrased, ("new_round", "paragraph", "request")[k % 3], pid)
        plants[pid] = (r, at)
        planted.append(conv)
    result = check_contamination(
        untouched + planted, index=index, embed=embed_units, config=ContaminationConfig(), decisions={}
    )
    return {"result": result, "plants": plants, "untouched": {c.id for c in untouched}}


@pytest.mark.shared_data
@pytest.mark.slow
def test_held_out_rephrasings_are_found_with_mean_recall_at_least_075(run: dict[str, Any]) -> None:
    result: ContaminationResult = run["result"]
    flagged = {(f.conversation_id, f.turn_index): f for f in result.findings if f.flagged}
    found: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for pid, (r, at) in run["plants"].items():
        total[r.benchmark] += 1
        f = flagged.get((pid, at))
        found[r.benchmark] += f is not None and (f.matched_benchmark, f.matched_item_id) == (r.benchmark, r.item_id)
    recall = {name: found[name] / total[name] for name in total}
    print("held-out rephrased recall (the right item flagged):", {k: f"{v:.0%}" for k, v in recall.items()})
    # Before the rephrase tier: gsm8k 98%, mmlu 56%, humaneval 60% (mean 71%).
    assert sum(recall.values()) / len(recall) >= 0.75
    assert recall["mmlu"] >= 0.75
    # A rephrase-tier flag says why: its view and anchor share are in the finding and in the ledger's detail.
    rephrase_hits = [f for f in flagged.values() if f.rephrase_item_id == f.matched_item_id]
    assert rephrase_hits and all(f.category in ("rephrased", "near_verbatim") for f in rephrase_hits)
    details = {d.conversation_id: d.detail for d in result.dropped}
    assert any("anchor_share=" in details[f.conversation_id] for f in rephrase_hits)


@pytest.mark.shared_data
@pytest.mark.slow
def test_untouched_real_conversations_keep_an_fpr_at_most_half_a_percent(run: dict[str, Any]) -> None:
    result: ContaminationResult = run["result"]
    checked = [f for f in result.findings if f.conversation_id in run["untouched"]]
    flagged = [f for f in checked if f.flagged]
    for f in flagged:
        print(f"  {f.conversation_id}/{f.turn_index} {f.matched_benchmark}/{f.matched_item_id} {f.category}")
    assert len(flagged) / len(checked) <= 0.005
