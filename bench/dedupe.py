"""Benchmark MinHash near-dedupe (curation.dedupe.minhash) at 10K, 100K and 1M conversations.

    .venv/bin/python -m bench.dedupe                          # 10K and 100K
    .venv/bin/python -m bench.dedupe --sizes 10000,100000,1000000 --workers 2
    .venv/bin/python -m bench.dedupe --lsh-scales 10,30,300   # the global LSH step alone
    .venv/bin/python -m bench.dedupe --vs-datasketch 5        # signatures per core against datasketch
    .venv/bin/python -m bench.dedupe --flow-verify 60000 --part-size 5000   # the run-wide step alone

The conversations are the 3003 real ShareGPT conversations of ../shared/data, repeated: copy 0 of
each is the original, every other copy gets a new id and 1-3 words replaced (a seeded RNG per
record), so copies are near duplicates (Jaccard ~0.97 at the median length), not exact ones.

Each size runs in a fresh subprocess, so its peak RSS is its own. That process works as the flow
does: signatures per part of --part-size records (in --workers processes), written to Parquet;
LSH candidate pairs over all parts with polars (scan_parquet); verification, where the shingles
of each record in a candidate pair are recomputed on demand, component by component (the time
that takes is shown apart from the verification proper). Signatures/second per core is records
over the summed signature time of the parts, generation of the perturbed copies excluded.
Prints the chosen bands x rows with its detection curve, a table, and one line for the README.

--lsh-scales measures the global LSH step alone (lsh_candidate_pairs over pl.scan_parquet of the
signature files) for bands_per_pass 24 (one pass), the default and 1, each in a fresh process
(peak RSS, VmHWM, and the RSS after imports, so the step's own share shows). The signatures are those
of the real sample, computed once, and `scale` re-identified copies of them (one part per copy,
as bench/curate.py scales the sample): copy 0 is the real signatures, and in every other copy
each band hash is redrawn (seeded) with probability 1 - 0.97^rows, what a near copy of Jaccard
0.97 does to its bands (the copies above have Jaccard ~0.97), so signatures need not be
recomputed for millions of records. Every bands_per_pass must give the same pairs (checked).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import multiprocessing
import os
import platform
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import datasketch
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from datasketch import MinHash

from bench.timing import alternating_medians, seconds
from curation.dedupe.minhash import (
    candidate_components,
    candidate_probability,
    conversation_shingles,
    find_near_duplicates,
    format_detection_curve,
    jaccard,
    lsh_candidate_pairs,
    minhash_signatures,
    minhash_values,
    near_duplicate_removals,
)
from curation.parquet import write_conversations
from curation.text import words
from schemas import Conversation, Provenance, Turn
from schemas.config import MinHashConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SAMPLE = (
    REPO_ROOT.parent / "shared" / "data" / "sharegpt" / "sharegpt_v3_unfiltered_cleaned_split.first3003.json.gz"
)
ROLES = {"human": "user", "gpt": "assistant", "bing": "assistant", "system": "system"}
SEED = 20240607
WORD = re.compile(r"\w+")
# (name, bands, rows) compared in docs/minhash.md. datasketch's is its _optimal_param(0.8, 128).
OTHER_CHOICES = (("datasketch automatic, 0.8 / 128 perms", 9, 13), ("NeMo Curator", 20, 13))
# --lsh-scales: a copy's band survives with probability LSH_COPY_JACCARD ** rows.
LSH_COPY_JACCARD = 0.97


@cache
def originals(sample: str) -> list[Conversation]:
    with gzip.open(sample, "rt", encoding="utf-8") as f:
        records: list[dict[str, Any]] = json.load(f)
    return [
        Conversation(
            id=f"{i}",
            source="sharegpt_json",
            turns=tuple(
                Turn(role=ROLES[t["from"]], content=t["value"], source_role=t["from"])  # type: ignore[arg-type]
                for t in record["conversations"]
                if t["from"] in ROLES
            ),
            provenance=Provenance(input_file=Path(sample).name, record_index=i, content_hash="0"),
        )
        for i, record in enumerate(records)
    ]


def make_record(sample: str, index: int) -> Conversation:
    """Record `index` of the benchmark corpus, the same every time it is asked for."""
    base = originals(sample)
    original = base[index % len(base)]
    copy = index // len(base)
    if copy == 0:
        return original
    rng = random.Random(f"{SEED}:{index}")  # str seeds hash with sha512: stable across processes
    turns = list(original.turns)
    for n in range(rng.randint(1, 3)):
        if not turns:
            break
        i = rng.choices(range(len(turns)), weights=[len(t.content) + 1 for t in turns])[0]
        spans = list(WORD.finditer(turns[i].content))
        if spans:
            span = rng.choice(spans)
            text = turns[i].content
            turns[i] = turns[i].model_copy(
                update={"content": f"{text[: span.start()]}bench{n}x{rng.randrange(10**6)}{text[span.end() :]}"}
            )
    return original.model_copy(update={"id": f"{original.id}.c{copy}", "turns": tuple(turns)})


def signature_part(job: tuple[str, int, int, int, str]) -> float:
    """Write part `part`'s signatures to Parquet; returns the seconds minhash_signatures took."""
    sample, part, start, stop, out = job
    convs = [make_record(sample, i) for i in range(start, stop)]
    started = time.perf_counter()
    table = minhash_signatures(convs, part=part, config=MinHashConfig())
    seconds = time.perf_counter() - started
    pq.write_table(table, Path(out) / f"part-{part:05d}.parquet")
    return seconds


class RegeneratedShingles(Mapping[tuple[int, int], set[int]]):
    """Shingles by (part, row), recomputed from the record on each access (the flow would read the
    record back from its part's Parquet); counts the time spent doing so."""

    def __init__(self, sample: str, part_size: int, keys: list[tuple[int, int]], ngram: int) -> None:
        self.sample, self.part_size, self.wanted, self.ngram = sample, part_size, keys, ngram
        self.seconds = 0.0
        self.loads = 0

    def __getitem__(self, key: tuple[int, int]) -> set[int]:
        started = time.perf_counter()
        shingles = conversation_shingles(make_record(self.sample, key[0] * self.part_size + key[1]), ngram=self.ngram)
        self.seconds += time.perf_counter() - started
        self.loads += 1
        return shingles

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self.wanted)

    def __len__(self) -> int:
        return len(self.wanted)


def verify_shard(job: tuple[str, int, str, pl.DataFrame]) -> tuple[int, float, int]:
    """near_duplicate_removals over one shard of components: (removed, shingle seconds, loads)."""
    sample, part_size, signature_dir, pairs = job
    config = MinHashConfig()
    keys = sorted({(p, r) for p, r, *_ in pairs.iter_rows()} | {(p, r) for _, _, p, r, *_ in pairs.iter_rows()})
    shingles = RegeneratedShingles(sample, part_size, keys, config.ngram)
    ranks = pl.scan_parquet(Path(signature_dir) / "*.parquet").drop("band_hashes")
    found = near_duplicate_removals(pairs, shingles, ranks, config=config)
    return len(found), shingles.seconds, shingles.loads


def peak_rss_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child
    return max(own, workers) / 1024


def run_one(sample: str, size: int, part_size: int, workers: int) -> dict[str, Any]:
    config = MinHashConfig()
    result: dict[str, Any] = {"size": size, "workers": workers}
    with tempfile.TemporaryDirectory(prefix="chatsift-bench-dedupe-") as tmp:
        jobs = [(sample, p, p * part_size, min(size, (p + 1) * part_size), tmp) for p in range(-(-size // part_size))]
        started = time.perf_counter()
        if workers > 1:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                part_seconds = pool.map(signature_part, jobs, chunksize=1)
        else:
            part_seconds = [signature_part(job) for job in jobs]
        result["signature_wall_s"] = time.perf_counter() - started
        result["signature_cpu_s"] = sum(part_seconds)
        result["signatures_per_s_per_core"] = size / sum(part_seconds)
        result["signature_bytes"] = sum(f.stat().st_size for f in Path(tmp).glob("*.parquet"))

        signatures = pl.scan_parquet(Path(tmp) / "*.parquet")
        started = time.perf_counter()
        pairs = lsh_candidate_pairs(signatures, config=config)
        result["lsh_s"] = time.perf_counter() - started
        result["candidate_pairs"] = len(pairs)

        components = candidate_components(pairs)
        sizes = components.group_by("component").len()["len"]
        result["records_in_pairs"] = len(components)
        result["components"] = len(sizes)
        result["largest_component"] = int(sizes.max()) if len(sizes) else 0  # type: ignore[arg-type]

        # Components are independent: shard them over the workers (the flow can do the same).
        shard_of = components.select("part", "row", shard=pl.col("component") % workers)
        jobs_verify = [
            (sample, part_size, tmp, shard.drop("shard"))
            for shard in pairs.join(shard_of, left_on=["part_a", "row_a"], right_on=["part", "row"]).partition_by(
                "shard", maintain_order=True
            )
        ]
        started = time.perf_counter()
        if workers > 1:
            # spawn, not fork: polars' thread pool is running by now, and forking it can deadlock.
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                verified = pool.map(verify_shard, jobs_verify, chunksize=1)
        else:
            verified = [verify_shard(job) for job in jobs_verify]
        result["verify_s"] = time.perf_counter() - started
        result["verify_shingle_load_s"] = sum(load_s for _, load_s, _ in verified)
        result["shingle_loads"] = sum(loads for _, _, loads in verified)
        result["removed"] = sum(removed for removed, _, _ in verified)
        result["copies"] = size - min(size, len(originals(sample)))
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def write_scaled_signatures(sample: str, scale: int, out: Path, config: MinHashConfig) -> int:
    """`scale` parts of MINHASH_SIGNATURE_SCHEMA rows under `out`: part k is copy k of the real
    sample's signatures, re-identified, copies k >= 1 with each band hash redrawn with probability
    1 - LSH_COPY_JACCARD ** rows (seeded). Returns the bytes written."""
    base = minhash_signatures(originals(sample), part=0, config=config)
    bands = base.column("band_hashes").combine_chunks()
    offsets, values = bands.offsets, bands.values.to_numpy()
    ids = base.column("id").to_pylist()
    rng = np.random.default_rng(SEED)
    keep = LSH_COPY_JACCARD**config.rows
    out.mkdir(parents=True, exist_ok=True)
    for copy in range(scale):
        table = base.set_column(0, "part", pa.array(np.full(len(base), copy, dtype=np.int32)))
        if copy:
            redrawn = values.copy()
            mask = rng.random(len(values)) >= keep
            redrawn[mask] = rng.integers(0, 2**64, int(mask.sum()), dtype=np.uint64, endpoint=False)
            column = pa.ListArray.from_arrays(offsets, pa.array(redrawn), type=bands.type)
            table = table.set_column(table.schema.get_field_index("band_hashes"), "band_hashes", column)
            id_index = table.schema.get_field_index("id")
            table = table.set_column(id_index, "id", pa.array([f"{i}.c{copy}" for i in ids]))
        pq.write_table(table, out / f"signatures-{copy:05d}.parquet")
    return sum(f.stat().st_size for f in out.glob("*.parquet"))


def proc_status_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process in MiB, from /proc/self/status. Unlike
    getrusage's ru_maxrss, VmHWM starts afresh at exec: a child forked from a big parent does
    not inherit the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def run_lsh_one(signature_dir: str, bands_per_pass: int) -> dict[str, Any]:
    """The global LSH step alone, in this (fresh) process: time, peak RSS, the pairs' digest."""
    config = MinHashConfig(bands_per_pass=bands_per_pass)
    baseline = proc_status_mib("VmRSS")
    started = time.perf_counter()
    pairs = lsh_candidate_pairs(pl.scan_parquet(Path(signature_dir) / "*.parquet"), config=config)
    seconds = time.perf_counter() - started
    return {
        "bands_per_pass": bands_per_pass,
        "passes": -(-config.bands // bands_per_pass),
        "lsh_s": seconds,
        "candidate_pairs": len(pairs),
        "pairs_digest": hashlib.blake2b(pairs.to_numpy().tobytes(), digest_size=8).hexdigest(),
        "baseline_rss_mib": baseline,
        "peak_rss_mib": proc_status_mib("VmHWM"),
    }


def lsh_memory(sample: str, scales: list[int]) -> None:
    """Print time and peak RSS of lsh_candidate_pairs at each scale for bands_per_pass 24, the
    default and 1, each in a fresh process, and one line for the README."""
    config = MinHashConfig()
    choices = list(dict.fromkeys((config.bands, config.bands_per_pass, 1)))
    rows = []
    with tempfile.TemporaryDirectory(prefix="chatsift-bench-lsh-") as tmp:
        for scale in scales:
            folder = Path(tmp) / f"x{scale}"
            size = write_scaled_signatures(sample, scale, folder, config)
            records = scale * len(originals(sample))
            found = []
            for bands_per_pass in choices:
                command = [sys.executable, "-m", "bench.dedupe", "--lsh-one", str(folder)]
                command += ["--bands-per-pass", str(bands_per_pass), "--sample", sample]
                child = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
                if child.returncode != 0:
                    print(child.stderr, file=sys.stderr)
                    sys.exit(f"scale {scale}, bands_per_pass {bands_per_pass} failed")
                row = json.loads(child.stdout.strip().splitlines()[-1]) | {"records": records, "bytes": size}
                found.append(row)
                print(f"x{scale} bands_per_pass={bands_per_pass}: {row['lsh_s']:.2f} s", flush=True)
            if len({r["pairs_digest"] for r in found}) != 1:
                sys.exit(f"scale {scale}: the pairs differ between bands_per_pass values: {found}")
            rows.extend(found)
            shutil.rmtree(folder)

    print(
        "| records | signature Parquet MB | bands per pass | passes | LSH s | peak RSS MiB | over the RSS after "
        "imports MiB | candidate pairs (star) |"
    )
    print("|" + "---|" * 8)
    for r in rows:
        print(
            f"| {r['records']:,} | {r['bytes'] / 1e6:.0f} | {r['bands_per_pass']} | {r['passes']} | {r['lsh_s']:.2f} | "
            f"{r['peak_rss_mib']:,.0f} | {r['peak_rss_mib'] - r['baseline_rss_mib']:,.0f} | "
            f"{r['candidate_pairs']:,} |"
        )
    print("pairs identical for every bands_per_pass at every scale: yes (blake2b of the sorted pairs)")
    last = [r for r in rows if r["records"] == rows[-1]["records"]]
    figures = ", ".join(
        f"{r['bands_per_pass']} bands/pass {r['lsh_s']:.1f} s +{r['peak_rss_mib'] - r['baseline_rss_mib']:,.0f} MiB"
        for r in last
    )
    print(
        f"README: dedupe_minhash global LSH over {last[0]['records']:,} signatures ({config.bands} bands, streaming "
        f"polars): {figures} (peak RSS over imports; Python {platform.python_version()}, {os.cpu_count()} cores)"
    )


def datasketch_signatures(convs: list[Conversation], config: MinHashConfig) -> list[MinHash]:
    """The peer: what a datasketch user writes, its default MinHash (scheme affine32, sha1 of each
    shingle) with our bands x rows permutations, over the same word 5-grams (curation.text.words)."""
    found = []
    for conv in convs:
        tokens = [w for turn in conv.turns for w in words(turn.content)]
        width = min(config.ngram, len(tokens))
        minhash = MinHash(num_perm=config.bands * config.rows, seed=config.seed)
        minhash.update_batch([" ".join(tokens[i : i + width]).encode() for i in range(len(tokens) - width + 1)])
        found.append(minhash)
    return found


def versus_datasketch(sample: str, repeats: int) -> None:
    """MinHash signatures of the real sample on one core, chatsift's minhash_values against
    datasketch's default, alternating, `repeats` each; medians and the ratio as the last line."""
    convs = originals(sample)
    config = MinHashConfig()
    shingles = sum(len(conversation_shingles(c, ngram=config.ngram)) for c in convs) / len(convs)
    medians = alternating_medians(
        {
            "chatsift": lambda: seconds(lambda: minhash_values(convs, config=config)),
            "datasketch": lambda: seconds(lambda: datasketch_signatures(convs, config)),
        },
        repeats,
    )
    ours, theirs = medians["chatsift"], medians["datasketch"]
    print(
        f"{len(convs)} real conversations, {shingles:,.0f} distinct shingles each on average, "
        f"{config.bands} x {config.rows} = {config.bands * config.rows} permutations, 1 core, {repeats} alternating "
        f"repeats (medians): datasketch {datasketch.__version__} default {theirs:.2f} s "
        f"({len(convs) / theirs:,.0f} docs/s), chatsift minhash_values {ours:.2f} s ({len(convs) / ours:,.0f} docs/s)"
    )
    print(f"MinHash signatures: chatsift {theirs / ours:.2f}x datasketch's default per core")


def write_flow_parts(sample: str, size: int, part_size: int, out: Path) -> tuple[list[str], list[str]]:
    """The corpus's first `size` records as a run leaves them before the run-wide step: per part, the
    conversations and their signatures in Parquet under `out`. (signature files, part files)."""
    signature_files, part_files = [], []
    for part, start in enumerate(range(0, size, part_size)):
        convs = [make_record(sample, i) for i in range(start, min(size, start + part_size))]
        signature_files.append(str(out / f"signatures-{part:05d}.parquet"))
        pq.write_table(minhash_signatures(convs, part=part, config=MinHashConfig()), signature_files[-1])
        part_files.append(str(out / f"part-{part:05d}.parquet"))
        write_conversations(Path(part_files[-1]), convs)
    return signature_files, part_files


def run_flow_verify_one(folder: str) -> dict[str, Any]:
    """find_near_duplicates over the files of write_flow_parts, in this (fresh) process: its time,
    removals and peak RSS (VmHWM) against the RSS after imports."""
    files = sorted(Path(folder).glob("*.parquet"))
    signature_files = [str(f) for f in files if f.name.startswith("signatures-")]
    part_files = [str(f) for f in files if f.name.startswith("part-")]
    baseline = proc_status_mib("VmRSS")
    started = time.perf_counter()
    found = find_near_duplicates(signature_files, part_files, config=MinHashConfig())
    return {
        "verify_s": time.perf_counter() - started,
        "removed": len(found),
        "baseline_rss_mib": baseline,
        "peak_rss_mib": proc_status_mib("VmHWM"),
    }


def flow_verify(sample: str, size: int, part_size: int) -> None:
    """The run-wide step as a run calls it (find_near_duplicates reading Parquet parts) on `size`
    records, one core, in a fresh process; one line for the README."""
    with tempfile.TemporaryDirectory(prefix="chatsift-bench-verify-") as tmp:
        write_flow_parts(sample, size, part_size, Path(tmp))
        command = [sys.executable, "-m", "bench.dedupe", "--flow-verify-one", tmp, "--sample", sample]
        child = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        if child.returncode != 0:
            print(child.stderr, file=sys.stderr)
            sys.exit("the verification run failed")
    row = json.loads(child.stdout.strip().splitlines()[-1])
    print(
        f"README: find_near_duplicates over {size:,} records in parts of {part_size:,}, one core: "
        f"{row['verify_s']:.1f} s, {row['removed']:,} removals, peak RSS {row['peak_rss_mib']:,.0f} MiB "
        f"({row['peak_rss_mib'] - row['baseline_rss_mib']:,.0f} over the RSS after imports)"
    )


def comparison_table(config: MinHashConfig) -> str:
    """docs/minhash.md's table: P(candidate) at 0.7 / 0.8 / 0.9 for each choice, computed."""
    lines = ["| choice | bands x rows | permutations | P(0.7) | P(0.8) | P(0.9) |", "|---|---|---|---|---|---|"]
    for name, b, r in (("chatsift default", config.bands, config.rows), *OTHER_CHOICES):
        cells = " | ".join(f"{candidate_probability(s, bands=b, rows=r):.4f}" for s in (0.7, 0.8, 0.9))
        lines.append(f"| {name} | {b} x {r} | {b * r} | {cells} |")
    return "\n".join(lines)


def sample_profile(sample: str, config: MinHashConfig) -> str:
    """How many pairs of the real sample each bands x rows choice would make candidates below the
    threshold (expected values from the exact Jaccard of every pair with Jaccard >= 0.15), and how
    many at or above it it would miss. Pairs are found by a 512-permutation MinHash estimate
    >= 0.1 over all 4.5M pairs, then measured exactly."""
    convs = originals(sample)
    wide = config.model_copy(update={"bands": 64, "rows": 8})
    values, _ = minhash_values(convs, config=wide)
    shingles = [conversation_shingles(c, ngram=config.ngram) for c in convs]
    similarities = []
    for i in range(len(convs)):
        if not shingles[i]:
            continue
        estimate = (values[i + 1 :] == values[i]).mean(axis=1)
        for j in (np.nonzero(estimate >= 0.1)[0] + i + 1).tolist():
            similarities.append(jaccard(shingles[i], shingles[j]))
    js = np.array([s for s in similarities if s >= 0.15])
    n_pairs = len(convs) * (len(convs) - 1) // 2
    lines = [
        f"{n_pairs:,} pairs of {len(convs)} real conversations; Jaccard >= 0.15: {len(js)}, >= 0.3: "
        f"{(js >= 0.3).sum()}, >= 0.5: {(js >= 0.5).sum()}, >= 0.7: {(js >= 0.7).sum()}, >= 0.8: {(js >= 0.8).sum()}",
        "| bands x rows | permutations | P(0.5) | expected candidates below 0.8 | of them below 0.5 "
        "| expected misses at >= 0.8 |",
        "|---|---|---|---|---|---|",
    ]
    choices = [(16, 6), (20, 6), (20, 7), (config.bands, config.rows), (26, 8), (32, 9), (9, 13), (20, 13)]
    for b, r in dict.fromkeys(choices):
        p = 1 - (1 - js**r) ** b
        lines.append(
            f"| {b} x {r} | {b * r} | {candidate_probability(0.5, bands=b, rows=r):.3f} | {p[js < 0.8].sum():.1f} "
            f"| {p[js < 0.5].sum():.1f} | {(1 - p[js >= 0.8]).sum():.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated record counts")
    parser.add_argument("--part-size", type=int, default=10_000, help="records per part (default 10000)")
    parser.add_argument("--workers", type=int, default=1, help="processes for signatures and verification")
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE, help="the real ShareGPT sample (.json.gz)")
    parser.add_argument("--profile-sample", action="store_true", help="print the real sample's similar pairs")
    parser.add_argument(
        "--lsh-scales", help="comma-separated copies of the real sample: time and peak RSS of the global LSH step"
    )
    parser.add_argument(
        "--vs-datasketch", type=int, metavar="REPEATS", help="signatures per core against datasketch's default"
    )
    parser.add_argument(
        "--flow-verify", type=int, metavar="SIZE", help="the run-wide step over Parquet parts: time and peak RSS"
    )
    parser.add_argument("--flow-verify-one", help=argparse.SUPPRESS)  # internal: verify one folder, print JSON
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size, print JSON
    parser.add_argument("--lsh-one", help=argparse.SUPPRESS)  # internal: LSH over one signature folder
    parser.add_argument("--bands-per-pass", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if not args.sample.exists():
        print(f"no real data at {args.sample} (../shared/data beside the checkout): nothing to benchmark")
        sys.exit(1)
    if args.one is not None:
        print(json.dumps(run_one(str(args.sample), args.one, args.part_size, args.workers)))
        return
    if args.lsh_one is not None:
        print(json.dumps(run_lsh_one(args.lsh_one, args.bands_per_pass)))
        return
    if args.flow_verify_one is not None:
        print(json.dumps(run_flow_verify_one(args.flow_verify_one)))
        return
    if args.flow_verify:
        flow_verify(str(args.sample), args.flow_verify, args.part_size)
        return
    if args.vs_datasketch:
        versus_datasketch(str(args.sample), args.vs_datasketch)
        return
    if args.lsh_scales:
        lsh_memory(str(args.sample), [int(s) for s in args.lsh_scales.split(",")])
        return

    config = MinHashConfig()
    print(format_detection_curve(bands=config.bands, rows=config.rows))
    print(comparison_table(config))
    if args.profile_sample:
        print(sample_profile(str(args.sample), config))
        return
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        command = [sys.executable, "-m", "bench.dedupe", "--one", str(size), "--sample", str(args.sample)]
        command += ["--part-size", str(args.part_size), "--workers", str(args.workers)]
        started = time.perf_counter()
        child = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        if child.returncode != 0:
            print(child.stderr, file=sys.stderr)
            sys.exit(f"size {size} failed")
        row = json.loads(child.stdout.strip().splitlines()[-1])
        row["total_s"] = time.perf_counter() - started
        rows.append(row)
        print(f"size {size:,} done in {row['total_s']:.0f} s", flush=True)

    head = (
        "| records | signatures/s/core | signature wall s | LSH s | candidate pairs | largest component "
        "| verify wall s (shingle reload, summed) | removed / copies | peak RSS MiB |"
    )
    print(head)
    print("|" + "---|" * 9)
    for r in rows:
        print(
            f"| {r['size']:,} | {r['signatures_per_s_per_core']:,.0f} | {r['signature_wall_s']:.1f} | "
            f"{r['lsh_s']:.2f} | {r['candidate_pairs']:,} | {r['largest_component']:,} | "
            f"{r['verify_s']:.1f} ({r['verify_shingle_load_s']:.1f}) | {r['removed']:,} / {r['copies']:,} | "
            f"{r['peak_rss_mib']:,.0f} |"
        )
    last = rows[-1]
    print(
        f"dedupe_minhash: {last['size']:,} conversations, {config.bands} x {config.rows} MinHash LSH: signatures "
        f"{last['signatures_per_s_per_core']:,.0f}/s per core, LSH pairs in {last['lsh_s']:.1f} s, verification "
        f"{last['verify_s']:.0f} s ({last['verify_shingle_load_s']:.0f} s of it recomputing shingles), "
        f"peak RSS {last['peak_rss_mib']:,.0f} MiB (Python {platform.python_version()}, "
        f"{last['workers']} worker(s), {os.cpu_count()} cores)"
    )


if __name__ == "__main__":
    main()
