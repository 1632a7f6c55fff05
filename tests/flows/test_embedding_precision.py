"""contamination.precision: "auto" takes bf16 on a CPU that multiplies it natively, and bf16 vectors flag what fp32
ones flag on real turns and real benchmark items (bench/contamination.py --vs-plain measures both on the full sets)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.contamination import shared_preset_specs
from curation.contamination.benchmarks import read_benchmarks
from curation.contamination.check import benchmark_views, build_benchmark_index, check_contamination
from curation.contamination.embedding_cache import CachedEmbeddings
from flows import resources
from schemas.config import ContaminationConfig
from schemas.config.contamination import EmbeddingPrecision
from tests.helpers.planting import light_edit, opening_round, plant, untouched_and_hosts

SEED = 20261208
ITEMS_PER_BENCHMARK = 40
PLANTS_PER_BENCHMARK = 4  # verbatim, and as many lightly edited
UNTOUCHED = 40
PRECISIONS: tuple[EmbeddingPrecision, ...] = ("fp32", "bf16")


def test_auto_is_bf16_only_on_a_cpu_that_multiplies_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    if all(callable(p) for p in probes):
        # /proc/cpuinfo says what torch's own probes say
        assert resources.cpu_multiplies_bf16() == any(p() for p in probes if callable(p))
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(resources, "cpu_multiplies_bf16", lambda native=native: native)
        assert resources.embedding_precision(ContaminationConfig(device="cpu")) == expected
        for chosen in ("fp32", "bf16"):
            assert resources.embedding_precision(ContaminationConfig(device="cpu", precision=chosen)) == chosen


@pytest.fixture(scope="module")
def both_precisions() -> dict[str, Any]:
    config = ContaminationConfig(device="cpu")
    return {p: resources.embed_normalized(resources.embedder_for(config.model, "cpu", p), config) for p in PRECISIONS}


def test_batched_by_padded_size_as_one_text_at_a_time(both_precisions: dict[str, Any]) -> None:
    """The token-budget batches change only padding: each row is the text's vector embedded alone."""
    texts = ["what is a monad?", "Sort a list in Python " * 40, "hi", "Explain quantum computing simply.\n" * 9]
    embed = both_precisions["fp32"]
    alone = np.vstack([embed([t]) for t in texts])
    np.testing.assert_allclose(embed(texts), alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(both_precisions["bf16"](texts), axis=1), 1.0, atol=1e-6)


@pytest.mark.shared_data
@pytest.mark.slow
def test_bf16_flags_what_fp32_flags_on_real_data(
    shared_data: Path, sharegpt_sample: list[dict[str, Any]], both_precisions: dict[str, Any]
) -> None:
    rng = random.Random(SEED)
    by_benchmark: dict[str, list[Any]] = {}
    for item in read_benchmarks(shared_preset_specs(shared_data / "benchmarks"), index_answers=False):
        by_benchmark.setdefault(item.benchmark, []).append(item)
    items = [i for name in sorted(by_benchmark) for i in rng.sample(by_benchmark[name], ITEMS_PER_BENCHMARK)]
    untouched, hosts = untouched_and_hosts(sharegpt_sample, UNTOUCHED)
    planted = []
    for k, item in enumerate(items):
        if k % ITEMS_PER_BENCHMARK < PLANTS_PER_BENCHMARK:
            for kind, text in (("exact", item.text), ("edited", light_edit(item.text, rng))):
                planted.append(plant(opening_round(hosts.pop()), text, "paragraph", f"plant-{kind}-{k}")[0])
    config = ContaminationConfig(device="cpu")
    views = [text for _, _, text in benchmark_views(items, config)]
    flagged: dict[str, set[tuple[str, int, str | None]]] = {}
    item_vectors: dict[str, np.ndarray] = {}
    for precision, embed in both_precisions.items():
        item_vectors[precision] = embed([i.text for i in items])
        index = build_benchmark_index(
            items, item_vectors[precision], config=config, gpu=False, view_vectors=embed(views)
        )
        result = check_contamination(
            untouched + planted,
            index=index,
            embed=lambda texts, embed=embed: CachedEmbeddings(embed(texts), len(texts), 0),
            config=config,
            decisions={},
        )
        flagged[precision] = {
            (f.conversation_id, f.turn_index, f.matched_item_id) for f in result.findings if f.flagged
        }
    a, b = item_vectors["fp32"], item_vectors["bf16"]
    assert float((a * b).sum(axis=1).min()) >= 0.999
    assert float(np.abs(a @ a.T - b @ b.T).max()) < 0.01
    assert len(flagged["fp32"]) >= len(planted)
    assert flagged["bf16"] == flagged["fp32"], flagged["bf16"] ^ flagged["fp32"]
