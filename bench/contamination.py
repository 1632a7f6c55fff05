"""Benchmark the contamination check (training turns vs benchmark questions) on real data.

    .venv/bin/python -m bench.contamination                       # all 3003 conversations x 19,073 items
    .venv/bin/python -m bench.contamination --conversations 200 --mmlu-sample 500 --plants 20   # quick

The curation functions are called directly (no Prefect), on the device --device picks (as
contamination.device does: "auto" takes the GPU when torch and FAISS both see one). Figures,
each timed on its own with time.perf_counter (nothing here asserts a timing):

1. benchmark items: count per benchmark (the 9 local presets), embedding time and items/s;
2. units: checked (user) turns and their embedding units (turn_units with the config defaults);
   embedding time, units/s and turns/s, the embedder called directly (no cache) on whole turns
   drawn at random until --units-sample units (0: all of them; by default a sample, so that
   the units are not embedded twice in a full run);
3. the whole check (check_contamination) with a cold embedding cache in a temporary folder,
   then again with the warm one, which must embed 0 new units (the script exits 1 otherwise);
4. FAISS search (search_top, k = fuzzy_candidates) of every unit vector against the items, on
   the CPU, and on the GPU too where FAISS sees one (then the top-1 rows are compared);
5. what the check flags on the untouched real conversations, every flagged pair listed so a
   person can judge it;
6. with --plants N: N items planted verbatim and N lightly edited into copies of real
   conversations (tests/helpers/planting.py), and the recall of each;
7. with --rephrased: every GPT-4 rephrasing of rephrased_dev.jsonl planted the same way, and the
   recall per benchmark, in-sample and on the held-out fifth (tests/helpers/planting.held_out).
   The rephrase tier's rules were calibrated on this file, so even the held-out figure is only
   out of the calibration's sample, not out of its distribution.

The false-positive rate (FPR) is figure 5's: flagged turns of the untouched conversations'
checked turns (some are true copies: read the list).

Peak RSS (resource.getrusage) is printed after each phase; the last line is for the README.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from curation.contamination.benchmarks import read_benchmarks
from curation.contamination.check import (
    ContaminationResult,
    benchmark_views,
    build_benchmark_index,
    check_contamination,
    turn_units,
)
from curation.contamination.embedding_cache import CachedEmbeddings, cached_embeddings, model_cache_dir
from curation.contamination.vector_search import faiss_gpu_count, flat_ip_index, search_top
from curation.text import normalize_text
from flows.resources import contamination_devices, embed_normalized, embedder_for, embedding_dim, embedding_precision
from schemas import Conversation
from schemas.config import LOCAL_BENCHMARK_PRESETS, BenchmarkSpec, ContaminationConfig
from schemas.contamination import BenchmarkItem
from tests.helpers.planting import held_out, light_edit, plant, read_rephrasings, real_conversation

REPO = Path(__file__).resolve().parents[1]

SEED = 20261121
SAMPLE = "data/sharegpt/sharegpt_v3_unfiltered_cleaned_split.first3003.json.gz"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def phase_done(name: str) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"  [peak RSS after {name}: {peak_rss_mib():,.0f} MiB; load average {load}]", flush=True)


def rate(count: float, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if seconds > 0 else "inf"


def compact(value: float) -> str:
    """40K, 1.2M: for the README line."""
    for limit, suffix in ((1e6, "M"), (1e3, "K")):
        if value >= limit:
            return f"{value / limit:.{1 if value < 10 * limit else 0}f}{suffix}"
    return f"{value:.0f}"


def duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def shared_preset_specs(benchmarks: Path) -> list[BenchmarkSpec]:
    """The 9 local presets with their files in ../shared/data/benchmarks (`benchmarks`): raw/, but ARC
    Challenge beside it."""
    return [
        spec.model_copy(
            update={"path": str((benchmarks if name == "arc_challenge" else benchmarks / "raw") / spec.path)}
        )
        for name, spec in LOCAL_BENCHMARK_PRESETS.items()
    ]


def read_items(shared: Path, mmlu_sample: int, rng: random.Random) -> list[BenchmarkItem]:
    """The 9 local presets' questions; MMLU subsampled to `mmlu_sample` when that is > 0."""
    items = read_benchmarks(shared_preset_specs(shared / "data" / "benchmarks"), index_answers=False)
    if mmlu_sample > 0:
        mmlu = [i for i in items if i.benchmark == "mmlu"]
        if mmlu_sample < len(mmlu):
            chosen = set(rng.sample(range(len(mmlu)), mmlu_sample))
            keep = {id(item) for k, item in enumerate(mmlu) if k in chosen}
            items = [i for i in items if i.benchmark != "mmlu" or id(i) in keep]
    return items


def read_conversations(sample: Path, limit: int) -> tuple[list[Conversation], int]:
    """The first `limit` records (0: all) as Conversations; also how many records were skipped
    (no user turn once unknown roles and empty values are left out)."""
    with gzip.open(sample, "rt", encoding="utf-8") as f:
        records: list[dict[str, Any]] = json.load(f)
    if limit > 0:
        records = records[:limit]
    convs = [c for i, raw in enumerate(records) if (c := real_conversation(raw, i)) is not None]
    return convs, len(records) - len(convs)


def checked_turn_units(convs: list[Conversation], config: ContaminationConfig) -> list[list[str]]:
    """The embedding units of each checked turn, turn by turn."""
    window, most = config.window_words, config.max_units_per_turn
    return [
        [
            text
            for _, text in turn_units(t.content, window_words=window, max_units=most, min_words=config.min_unit_words)
        ]
        for c in convs
        for t in c.turns
        if t.role in config.roles
    ]


def plant_items(
    convs: list[Conversation], items: list[BenchmarkItem], n: int, rng: random.Random
) -> tuple[list[Conversation], dict[str, tuple[str, BenchmarkItem, int]]]:
    """n items (round robin over the benchmarks) planted verbatim and n lightly edited, each into
    a copy of a random real conversation (as tests/curation/contamination/test_check_real.py does)."""
    by_benchmark: dict[str, list[BenchmarkItem]] = {}
    for item in items:
        by_benchmark.setdefault(item.benchmark, []).append(item)
    names = sorted(by_benchmark)
    per_benchmark = Counter(names[k % len(names)] for k in range(n))
    chosen = [
        (k, item)
        for name in names
        for k, item in enumerate(rng.sample(by_benchmark[name], min(per_benchmark[name], len(by_benchmark[name]))))
    ]
    planted: list[Conversation] = []
    plants: dict[str, tuple[str, BenchmarkItem, int]] = {}  # id -> (kind, item, turn index of the plant)
    for k, item in chosen:
        for kind in ("exact", "edited"):
            text = item.text if kind == "exact" else light_edit(item.text, rng)
            modes = ("new_round", "paragraph", "request") if kind == "exact" else ("new_round", "paragraph")
            mode = modes[k % len(modes)]
            pid = f"plant-{kind}-{item.benchmark}-{k}"
            conv, at = plant(rng.choice(convs), text, mode, pid)
            plants[pid] = (kind, item, at)
            planted.append(conv)
    return planted, plants


def rephrased_recall(
    shared: Path,
    convs: list[Conversation],
    index: Any,
    cached: Any,
    config: ContaminationConfig,
    rng: random.Random,
) -> str:
    """Figure 7: each rephrasing planted in a copy of a random real conversation (new round, paragraph, request
    phrase in turn), recall per benchmark in-sample and held out; returns the README line's part."""
    rows = {(i.benchmark, i.item_id) for i in index.items}
    rephrasings = [r for r in read_rephrasings(shared / "data" / "benchmarks" / "rephrased_dev.jsonl")]
    rephrasings = [r for r in rephrasings if (r.benchmark, r.item_id) in rows]
    planted: list[Conversation] = []
    plants: dict[str, tuple[Any, int]] = {}
    for k, r in enumerate(rephrasings):
        pid = f"rephrased-{r.benchmark}-{k}"
        conv, at = plant(rng.choice(convs), r.rephrased, ("new_round", "paragraph", "request")[k % 3], pid)
        plants[pid] = (r, at)
        planted.append(conv)
    started = time.perf_counter()
    result = check_contamination(planted, index=index, embed=cached, config=config, decisions={})
    seconds = time.perf_counter() - started
    hits = {(f.conversation_id, f.turn_index): f for f in result.findings if f.flagged}
    found: Counter[tuple[str, bool]] = Counter()
    right: Counter[tuple[str, bool]] = Counter()
    by_tier: Counter[str] = Counter()
    total = Counter((r.benchmark, held_out(r)) for r, _ in plants.values())
    for pid, (r, at) in plants.items():
        hit = hits.get((pid, at))
        if hit is None:
            continue
        found[(r.benchmark, held_out(r))] += 1
        right[(r.benchmark, held_out(r))] += (hit.matched_benchmark, hit.matched_item_id) == (r.benchmark, r.item_id)
        by_tier["rephrase tier" if hit.rephrase_item_id == hit.matched_item_id else "other tiers"] += 1
    print(f"\n7. rephrased: {len(planted)} conversations checked in {seconds:.1f} s; flagged by {dict(by_tier)}")
    macro: dict[bool, list[float]] = {False: [], True: []}
    for name in sorted({b for b, _ in total}):
        for held in (False, True):
            n = total[(name, held)]
            if n:
                macro[held].append(found[(name, held)] / n)
                print(
                    f"   {name:<10} {'held out' if held else 'in-sample'}: recall {found[(name, held)]}/{n} = "
                    f"{found[(name, held)] / n:.1%}, matched the right item {right[(name, held)]}"
                )
    means = {held: sum(v) / len(v) for held, v in macro.items() if v}
    label = {False: "in-sample", True: "held out"}
    print("   mean over benchmarks: " + ", ".join(f"{label[h]} {m:.1%}" for h, m in means.items()))
    return "; rephrased recall " + ", ".join(f"{m:.0%} {label[h]}" for h, m in means.items())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--conversations", type=int, default=0, help="first N real conversations (default 0: all 3003)")
    ap.add_argument("--mmlu-sample", type=int, default=0, help="index N MMLU questions (default 0: all 14,042)")
    ap.add_argument("--units-sample", type=int, default=3000, help="units embedded for figure 2 (0: all)")
    ap.add_argument("--plants", type=int, default=0, help="items planted verbatim and as many edited (default 0)")
    ap.add_argument("--rephrased", action="store_true", help="also plant rephrased_dev.jsonl's rephrasings")
    ap.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    ap.add_argument("--show", type=int, default=100, help="flagged pairs listed at most (default 100)")
    args = ap.parse_args(argv)

    import torch

    config = ContaminationConfig(device=args.device)
    sample = args.shared / SAMPLE
    if not sample.exists():
        sys.exit(f"no real data at {sample} (../shared beside the checkout): nothing to benchmark")
    rng = random.Random(SEED)
    device, faiss_gpu = contamination_devices(args.device)
    precision = embedding_precision(config)
    where = "GPU" if device == "cuda" else "CPU"
    print(
        f"device {args.device}: embedder on {device}, FAISS on {'GPU' if faiss_gpu else 'CPU'} "
        f"(FAISS GPUs {faiss_gpu_count()}); torch.get_num_threads() {torch.get_num_threads()}, "
        f"os.cpu_count() {os.cpu_count()}; model {config.model}, embed batches of {config.embed_batch_tokens} "
        f"word pieces, precision {precision}",
        flush=True,
    )
    started = time.perf_counter()
    model = embedder_for(config.model, device, precision)
    dim = embedding_dim(model)
    embed = embed_normalized(model, config)
    embed(["warm up"])  # the first call pays one-off setup: keep it out of the rates
    print(f"model loaded in {time.perf_counter() - started:.1f} s (dim {dim})")
    phase_done("loading the model")

    # 1. Benchmark items.
    items = read_items(args.shared, args.mmlu_sample, rng)
    counts = Counter(i.benchmark for i in items)
    print(f"\n1. benchmark items: {len(items):,}" + (" (MMLU subsampled)" if args.mmlu_sample else ""))
    for name in LOCAL_BENCHMARK_PRESETS:
        print(f"   {name:<14}{counts[name]:>7,}")
    views = benchmark_views(items, config)
    started = time.perf_counter()
    item_vectors = embed([i.text for i in items])
    items_s = time.perf_counter() - started
    print(f"   embedded in {items_s:.1f} s = {rate(len(items), items_s)} items/s")
    view_vectors = embed([text for _, _, text in views])
    print(f"   second views (question lines, docstrings): {len(views):,} {dict(Counter(v for _, v, _ in views))}")
    started = time.perf_counter()
    index = build_benchmark_index(items, item_vectors, config=config, gpu=faiss_gpu, view_vectors=view_vectors)
    print(f"   index (FAISS flat IP + n-grams) built in {time.perf_counter() - started:.1f} s")
    phase_done("the items")

    # 2. Units.
    convs, skipped = read_conversations(sample, args.conversations)
    units = checked_turn_units(convs, config)
    n_units = sum(len(u) for u in units)
    n_distinct = len({t for u in units for t in u})
    print(
        f"\n2. units: {len(convs):,} conversations ({skipped} records without a user turn left out), "
        f"{len(units):,} checked {'/'.join(config.roles)} turns, {n_units:,} embedding units ({n_distinct:,} distinct; "
        f"window {config.window_words} words, at most {config.max_units_per_turn} a turn)"
    )
    order = list(range(len(units)))
    rng.shuffle(order)
    picked: list[int] = []
    taken = 0
    for k in order:
        if args.units_sample and taken >= args.units_sample:
            break
        picked.append(k)
        taken += len(units[k])
    sample_texts = [t for k in picked for t in units[k]]
    started = time.perf_counter()
    embed(sample_texts)
    units_s = time.perf_counter() - started
    units_rate = len(sample_texts) / units_s
    scope = "all turns" if len(picked) == len(units) else f"a random sample of {len(picked):,} turns"
    print(
        f"   embedding only, no cache, {scope} ({len(sample_texts):,} units): {units_s:.1f} s = "
        f"{units_rate:,.0f} units/s = {rate(len(picked), units_s)} turns/s; "
        f"all {n_units:,} units would take ~{duration(n_units / units_rate)}"
    )
    del sample_texts
    phase_done("embedding the units")

    # 3. The whole check, cold then warm.
    failed = False
    with tempfile.TemporaryDirectory(prefix="chatsift-bench-contamination-") as tmp:
        folder = model_cache_dir(Path(tmp), config.model, dim, precision)

        def cached(texts: list[str]) -> CachedEmbeddings:
            return cached_embeddings(texts, embed=embed, folder=folder, dim=dim)

        runs: dict[str, tuple[float, ContaminationResult]] = {}
        print(f"\n3. check_contamination on {len(convs):,} conversations x {len(items):,} items, cache in {folder}")
        for label in ("cold", "warm"):
            started = time.perf_counter()
            result = check_contamination(convs, index=index, embed=cached, config=config, decisions={})
            runs[label] = (time.perf_counter() - started, result)
            seconds, changed = runs[label][0], result.changed
            print(
                f"   {label}: {seconds:.1f} s ({duration(seconds)}), units_embedded "
                f"{changed.get('units_embedded', 0):,}, units_from_cache {changed.get('units_from_cache', 0):,}, "
                f"{rate(len(convs), seconds)} conversations/s",
                flush=True,
            )
            phase_done(f"the {label} check")
        warm_embedded = runs["warm"][1].changed.get("units_embedded", 0)
        if warm_embedded != 0:
            failed = True
            print(f"   ERROR: the warm run embedded {warm_embedded} units; it must embed none")
        cold_s, result = runs["cold"]
        warm_s = runs["warm"][0]
        del runs

        # 4. Search, all unit vectors (read back from the cache: nothing is embedded again).
        def never(texts: list[str]) -> np.ndarray:
            raise RuntimeError(f"{len(texts)} units were not in the cache")

        unit_vectors = cached_embeddings([t for u in units for t in u], embed=never, folder=folder, dim=dim).vectors
        k = max(config.fuzzy_candidates, 1)
        print(f"\n4. FAISS search_top, k={k}, {len(unit_vectors):,} unit vectors x {len(items):,} items")
        cpu_index = flat_ip_index(item_vectors, gpu=False)
        started = time.perf_counter()
        _, cpu_rows = search_top(cpu_index, unit_vectors, k=k, batch_size=config.search_batch_size)
        search_s = time.perf_counter() - started
        search_rate = len(unit_vectors) / search_s
        print(f"   CPU: {search_s:.2f} s = {search_rate:,.0f} queries/s")
        if faiss_gpu_count() > 0:
            gpu_index = flat_ip_index(item_vectors, gpu=True)
            search_top(gpu_index, unit_vectors[:1], k=k, batch_size=config.search_batch_size)  # warm up
            started = time.perf_counter()
            _, gpu_rows = search_top(gpu_index, unit_vectors, k=k, batch_size=config.search_batch_size)
            gpu_s = time.perf_counter() - started
            differ = int((cpu_rows[:, 0] != gpu_rows[:, 0]).sum())
            print(f"   GPU: {gpu_s:.2f} s = {rate(len(unit_vectors), gpu_s)} queries/s; top-1 rows differing: {differ}")
            if faiss_gpu:
                search_rate = len(unit_vectors) / gpu_s
            del gpu_index, gpu_rows
        else:
            print("   GPU: none (faiss_gpu_count() == 0)")
        del unit_vectors, cpu_rows, cpu_index
        phase_done("the search")

        # 5. Outcome on the untouched conversations (the cold run's result).
        texts = {(i.benchmark, i.item_id): i.text for i in items}
        rows = {(i.benchmark, i.item_id): r for r, i in enumerate(items)}
        flagged = [f for f in result.findings if f.flagged]
        flagged_convs = {f.conversation_id for f in flagged}
        flag_rate = len(flagged_convs) / len(convs) if convs else 0.0
        fpr = len(flagged) / len(result.findings) if result.findings else 0.0
        print(
            f"\n5. untouched real conversations: {len(flagged_convs)}/{len(convs):,} flagged ({flag_rate:.2%}), "
            f"{len(flagged)} flagged turns of {len(result.findings):,} checked (FPR {fpr:.2%}); by tier "
            f"{dict(Counter('rephrase' if f.rephrase_item_id == f.matched_item_id else 'other' for f in flagged))}; "
            "by category "
            f"{dict(sorted(Counter(f.category for f in flagged).items(), key=str))}; "
            f"dropped {len(result.dropped)}, kept {len(result.kept):,}"
        )
        for f in flagged[: args.show]:
            key = (f.matched_benchmark or "", f.matched_item_id or "")
            turn_text = f.turn_text or ""
            # The unit closest to the matched item (the turn's opening may say nothing of it).
            labelled = turn_units(
                turn_text,
                window_words=config.window_words,
                max_units=config.max_units_per_turn,
                min_words=config.min_unit_words,
            )
            unit_scores = cached([t for _, t in labelled]).vectors @ item_vectors[rows[key]]
            best = int(np.argmax(unit_scores))
            print(
                f"   - {f.conversation_id} turn {f.turn_index} ({len(turn_text):,} chars): {key[0]}/{key[1]} "
                f"{f.category}, score {f.matched_score:.3f}, ngram coverage {f.ngram_coverage:.2f}, "
                f"fuzzy containment {f.fuzzy_containment:.2f}\n"
                f"       turn: {turn_text[:100]!r}\n"
                + (
                    f"       unit: {labelled[best][0]} ({unit_scores[best]:.3f}): {labelled[best][1][:100]!r}\n"
                    if len(labelled) > 1
                    else ""
                )
                + f"       item: {texts.get(key, '')[:100]!r}"
                + (
                    f"\n       rephrase tier: {f.rephrase_view} cosine {f.rephrase_score:.3f}, "
                    f"anchor share {f.rephrase_anchor_share:.2f}"
                    if f.rephrase_item_id is not None
                    else ""
                )
            )
        if len(flagged) > args.show:
            print(f"   ... {len(flagged) - args.show} more (--show)")
        del result
        phase_done("the outcome")

        # 6. Planted items.
        recall_line = ""
        if args.plants > 0:
            planted, plants = plant_items(convs, items, args.plants, rng)
            started = time.perf_counter()
            planted_result = check_contamination(planted, index=index, embed=cached, config=config, decisions={})
            plant_s = time.perf_counter() - started
            hits = {(f.conversation_id, f.turn_index): f for f in planted_result.findings if f.flagged}
            found: Counter[str] = Counter()
            right: Counter[str] = Counter()
            missed: list[str] = []
            for pid, (kind, item, at) in plants.items():
                hit = hits.get((pid, at))
                if hit is None:
                    missed.append(f"{pid} {item.benchmark}/{item.item_id}: {item.text[:100]!r}")
                    continue
                found[kind] += 1
                key = (hit.matched_benchmark or "", hit.matched_item_id or "")
                same = normalize_text(texts.get(key, "")) == normalize_text(item.text)
                right[kind] += key == (item.benchmark, item.item_id) or same
            total = Counter(kind for kind, _, _ in plants.values())
            print(f"\n6. planted: {len(planted)} conversations checked in {plant_s:.1f} s")
            for kind in ("exact", "edited"):
                print(
                    f"   {kind}: recall {found[kind]}/{total[kind]} = {found[kind] / total[kind]:.3f}, "
                    f"matched the planted item (or one of the same text) {right[kind]}"
                )
            for m in missed:
                print(f"   missed: {m}")
            recall_line = "; recall " + ", ".join(
                f"{found[kind] / total[kind]:.0%} {kind}" for kind in ("exact", "edited")
            )
            phase_done("the plants")

        # 7. Rephrased benchmark items.
        if args.rephrased:
            recall_line += rephrased_recall(args.shared, convs, index, cached, config, rng)
            phase_done("the rephrasings")

    peak = peak_rss_mib()
    print(f"\npeak RSS {peak:,.0f} MiB")
    cores = f"{torch.get_num_threads()} threads" if where == "GPU" else f"{os.cpu_count()} cores"
    print(
        f"README: contamination ({where}, {cores}): embed {units_rate:,.0f} units/s, search "
        f"{compact(search_rate)} queries/s, {len(convs):,} conversations x {len(items):,} items in "
        f"{duration(cold_s)} cold / {duration(warm_s)} warm (+ {duration(items_s)} to embed the items); "
        f"flag rate {flag_rate:.1%} on untouched{recall_line}; peak RSS {peak / 1024:.1f} GiB"
    )
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
