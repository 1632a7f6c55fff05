"""Near duplicates: MinHash LSH over word n-gram shingles, verified by exact Jaccard.

Four steps, so that the global part can run over every part at once, out of core:
1. `minhash_signatures`: per part, one small Arrow row per conversation with its keep_rank
   components and one 64-bit hash per LSH band (MINHASH_SIGNATURE_SCHEMA), kept in Parquet;
2. `lsh_candidate_pairs`: globally, in polars, the records that share a (band, band hash), in
   passes of MinHashConfig.bands_per_pass bands over the signature files (streaming engine);
3. `near_duplicate_removals`: connected components of the candidate pairs, each verified with the
   EXACT Jaccard of shingle sets, best keep-rank first, so every removal names a kept record whose
   Jaccard with it is >= the threshold, and a chain A~B~C never removes a C unlike A
   (`find_near_duplicates` runs 2 and 3 over a run's files);
4. `drop_near_duplicates`: the three above in memory for one list of conversations.

The detection curve P(candidate) = 1 - (1 - s^rows)^bands and the choice of bands x rows are
explained in docs/minhash.md.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from datasketch import MinHash

from curation.dedupe.common import FINDINGS_SCHEMA, RANK_ORDER, Removal, ranked_record, remove_listed
from curation.parquet import atomic_write_table, read_turn_texts
from curation.stage import Stage
from curation.text import words, words_of_texts
from schemas import Conversation, StageResult
from schemas.arrow import MINHASH_SIGNATURE_SCHEMA
from schemas.config import MinHashConfig

CANDIDATE_PAIRS_SCHEMA = pl.Schema({"part_a": pl.Int32, "row_a": pl.Int32, "part_b": pl.Int32, "row_b": pl.Int32})

NEAR_DUPLICATE_FINDINGS_SCHEMA = FINDINGS_SCHEMA

Key = tuple[int, int]  # (part, row): ids alone are not unique in real dumps

# blake2b-64 of a word; never the builtin hash(), which is salted per process.
_WORD_HASH_BYTES = 8

# Shingles per vectorized block of conversations in minhash_values: each block holds a few arrays of
# this many 32-bit values (~4 MB each), and one conversation longer than that is a block of its own.
_MINHASH_BLOCK = 1 << 20

# Records whose words verification_shingles takes in one pass: bounds its table of words (~1,000
# words a record on the real sample). 500 was faster than 2,000 (a table that stays in cache) and held
# ~150 MiB less at 20K records; 100-200 were no faster.
_VERIFY_HASH_RECORDS = 500

# The empty MinHash value (datasketch's for affine32): no shingle, no minimum.
_EMPTY_VALUE = np.uint32(0xFFFFFFFF)


@cache
def _ngram_multipliers(ngram: int) -> np.ndarray:
    """One fixed odd 64-bit multiplier per n-gram position, derived with blake2b so they are the
    same in every process and on every machine. Odd: multiplying by it is a bijection mod 2^64,
    so two n-grams that differ in one word never collide."""
    digests = (hashlib.blake2b(f"chatsift.shingle.{k}".encode(), digest_size=8).digest() for k in range(ngram))
    return np.array([int.from_bytes(d, "little") | 1 for d in digests], dtype=np.uint64)


class _WordHashes(dict[str, int]):
    """blake2b-64 of each word (little-endian, as an int), computed on its first lookup: a part's
    vocabulary is hashed once, and a lookup that hits costs no more than a plain dict's."""

    def __missing__(self, word: str) -> int:
        digest = hashlib.blake2b(word.encode(), digest_size=_WORD_HASH_BYTES).digest()
        value = self[word] = int.from_bytes(digest, "little")
        return value


def _shingle_hashes(conv: Conversation, ngram: int, word_hashes: _WordHashes) -> np.ndarray:
    """The 64-bit hashes of the conversation's word n-grams, in text order (with repeats).

    Words are those of curation.text.words (normalize_text: NFKC, casefold, whitespace), turn
    after turn, WITHOUT role tags and across turn boundaries: what a near duplicate repeats is the
    text; a role token per turn would make the shingles depend on how the same text is cut into
    turns (a merged or split turn, a repaired leading turn), and roles add no evidence in a word
    stream of ~1,000 words (the median of the real sample). A text with fewer words than `ngram`
    gets one shingle of all its words, so short texts still match their exact copies; no words,
    no shingle.

    A shingle's hash is sum_k multiplier_k * blake2b64(word_k) mod 2^64: hashing each distinct
    word once and combining in numpy is 2x faster than a blake2b per shingle. Word hashes are
    pseudo-random, so two different n-grams collide with probability ~2^-64.
    """
    return _text_shingle_hashes([turn.content for turn in conv.turns], ngram, word_hashes)


def _text_shingle_hashes(texts: Sequence[str], ngram: int, word_hashes: _WordHashes) -> np.ndarray:
    """_shingle_hashes of the conversation whose turns hold `texts`, in order."""
    tokens = [w for text in texts for w in words(text)]
    hashes = np.fromiter(map(word_hashes.__getitem__, tokens), dtype=np.uint64, count=len(tokens))
    (shingles,) = _ngram_hashes(hashes, [len(tokens)], ngram)
    return shingles


def _ngram_hashes(word_hashes: np.ndarray, counts: Sequence[int], ngram: int) -> list[np.ndarray]:
    """The n-gram hashes (_shingle_hashes' combination) of each record whose words' hashes are the next
    counts[i] of `word_hashes`: the records' words end to end, combined over one array."""
    # Every n-gram of the whole stream, those across two records among them (never returned).
    windows = len(word_hashes) - ngram + 1
    stream = np.empty(0, dtype=np.uint64)
    if windows > 0:
        multipliers = _ngram_multipliers(ngram)
        stream = word_hashes[:windows] * multipliers[0]
        for k in range(1, ngram):
            stream += word_hashes[k : k + windows] * multipliers[k]
    found, start = [], 0
    for count in counts:
        if count >= ngram:
            found.append(stream[start : start + count - ngram + 1])
        elif count:
            # Fewer words than ngram: one shingle of them all (uint64 sums wrap mod 2^64, as above).
            found.append(np.array([(word_hashes[start : start + count] * _ngram_multipliers(count)).sum()], np.uint64))
        else:
            found.append(np.empty(0, dtype=np.uint64))
        start += count
    return found


def verification_shingles(records: Sequence[Sequence[str]], ngram: int) -> list[np.ndarray]:
    """The n-gram hashes of each record whose turns hold `records[i]` (with repeats), for exact Jaccard
    within one call: the same words and n-grams as _shingle_hashes, each word hashed by polars instead
    of blake2b. polars' hash is stable within a polars version only, which is all one comparison
    needs; the signatures, which the stage cache keeps, stay on blake2b.

    The words come from one vectorized pass over the texts (curation.text.words_of_texts), in batches
    of _VERIFY_HASH_RECORDS: 2x faster than record by record, where the regex, a dict lookup per word
    and the lists between them were 70% of the verification.
    """
    found: list[np.ndarray] = []
    for start in range(0, len(records), _VERIFY_HASH_RECORDS):
        batch = records[start : start + _VERIFY_HASH_RECORDS]
        texts = [text for record in batch for text in record]
        record_of_text = np.repeat(np.arange(len(batch), dtype=np.int64), [len(record) for record in batch])
        table = pl.DataFrame({"record": record_of_text, "word": words_of_texts(texts)}).explode("word")
        table = table.drop_nulls("word")  # a text without words explodes to one null
        counts = np.bincount(table.get_column("record").to_numpy(), minlength=len(batch)).tolist()
        found.extend(_ngram_hashes(table.get_column("word").hash(seed=0).to_numpy(), counts, ngram))
    return found


def conversation_shingles(conv: Conversation, *, ngram: int) -> set[int]:
    """The set of 64-bit hashes of the conversation's word `ngram`-grams (see _shingle_hashes)."""
    return set(_shingle_hashes(conv, ngram, _WordHashes()).tolist())


def jaccard(a: AbstractSet[int], b: AbstractSet[int]) -> float:
    """|a & b| / |a | b|; 0.0 for two empty sets (texts without words are nobody's duplicate)."""
    if not a or not b:
        return 0.0
    inter = len(a & b)  # CPython iterates the smaller set
    return inter / (len(a) + len(b) - inter)


@cache
def _permutations(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutations h -> a * h + b mod 2^32 (`a` odd, so a bijection) for
    `count` and `seed`: drawn by datasketch itself, so the values are its MinHash's."""
    a, b = MinHash(num_perm=count, seed=seed, scheme="affine32").permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def _fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer (a bijection that spreads every input bit over the output),
    what datasketch's affine32 scheme applies to each input hash before the permutations."""
    h = values.astype(np.uint32)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h


def shingle_hashes32(shingles: np.ndarray) -> np.ndarray:
    """The 32-bit MinHash input of each 64-bit shingle hash: its two halves XORed. Two of a
    conversation's ~1,000 distinct shingles share one with probability ~1e-4, which moves a
    MinHash estimate far less than its own sampling error; exact Jaccard still sees 64 bits."""
    return (shingles ^ (shingles >> np.uint64(32))).astype(np.uint32)


def minhash_values(convs: Sequence[Conversation], *, config: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    """(values, has_shingles): a (len(convs), bands * rows) uint32 array of MinHash values, and
    whether each conversation has any shingle (one without words keeps the empty value in every
    column and gets no band hashes).

    The values are exactly datasketch's MinHash(num_perm=bands * rows, seed=config.seed,
    scheme="affine32") updated with shingle_hashes32 of the conversation's shingles (tested):
    min over shingles of a_k * fmix32(h) + b_k mod 2^32. They are computed for a block of
    conversations at once, a permutation at a time over all the block's shingles, with one
    np.minimum.reduceat per permutation taking each conversation's minimum. In 32 bits because
    the CPUs this runs on (AVX2) multiply 8 uint32 lanes per instruction and have no 64-bit
    vector multiply: ~4.8x datasketch's default per core on the real sample (bench/dedupe.py --vs-datasketch).
    """
    multipliers, offsets = _permutations(config.bands * config.rows, config.seed)
    values = np.full((len(convs), len(multipliers)), _EMPTY_VALUE, dtype=np.uint32)
    has_shingles = np.zeros(len(convs), dtype=bool)
    word_hashes = _WordHashes()  # the part's vocabulary
    block: list[np.ndarray] = []
    block_rows: list[int] = []
    block_size = 0

    def flush() -> None:
        nonlocal block_size
        if not block:
            return
        hashed = _fmix32(shingle_hashes32(np.concatenate(block)))
        starts = np.zeros(len(block), dtype=np.int64)
        np.cumsum([len(x) for x in block[:-1]], out=starts[1:])
        permuted = np.empty_like(hashed)
        rows = np.array(block_rows)
        for k, (a, b) in enumerate(zip(multipliers, offsets, strict=True)):
            np.multiply(hashed, a, out=permuted)
            permuted += b
            values[rows, k] = np.minimum.reduceat(permuted, starts)
        block.clear()
        block_rows.clear()
        block_size = 0

    for row, conv in enumerate(convs):
        shingles = _shingle_hashes(conv, config.ngram, word_hashes)
        if not len(shingles):
            continue  # reduceat cannot take an empty segment
        has_shingles[row] = True
        if block_size + len(shingles) > _MINHASH_BLOCK:
            flush()
        block.append(shingles)
        block_rows.append(row)
        block_size += len(shingles)
    flush()
    return values, has_shingles


def band_hashes(values: np.ndarray, *, bands: int, rows: int) -> np.ndarray:
    """One blake2b-64 hash per band of `rows` consecutive MinHash values of one conversation
    (datasketch's MinHashLSH bands the same ranges)."""
    data = np.ascontiguousarray(values, dtype="<u4").tobytes()
    step = rows * 4
    digests = b"".join(hashlib.blake2b(data[i * step : (i + 1) * step], digest_size=8).digest() for i in range(bands))
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64)


def minhash_signatures(convs: Sequence[Conversation], *, part: int, config: MinHashConfig) -> pa.Table:
    """One MINHASH_SIGNATURE_SCHEMA row per conversation of part `part`, `row` its position."""
    columns: dict[str, list[Any]] = {name: [] for name in MINHASH_SIGNATURE_SCHEMA.names[:-1]}
    values, has_shingles = minhash_values(convs, config=config)
    empty = np.empty(0, dtype=np.uint64)
    bands: list[np.ndarray] = []
    for row, conv in enumerate(convs):
        for name, value in ranked_record(part, row, conv).items():
            columns[name].append(value)
        bands.append(band_hashes(values[row], bands=config.bands, rows=config.rows) if has_shingles[row] else empty)
    offsets = np.zeros(len(bands) + 1, dtype=np.int32)
    np.cumsum([len(b) for b in bands], out=offsets[1:])
    values = np.concatenate(bands) if bands else np.empty(0, dtype=np.uint64)
    band_column = pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(values, type=pa.uint64()), type=MINHASH_SIGNATURE_SCHEMA.field("band_hashes").type
    )
    arrays = [pa.array(columns[f.name], type=f.type) for f in list(MINHASH_SIGNATURE_SCHEMA)[:-1]] + [band_column]
    return pa.Table.from_arrays(arrays, schema=MINHASH_SIGNATURE_SCHEMA)


def lsh_candidate_pairs(
    signatures: pl.LazyFrame | pl.DataFrame, *, config: MinHashConfig, edges: Literal["star", "all"] = "star"
) -> pl.DataFrame:
    """Unique (part_a, row_a, part_b, row_b) pairs, (part_a, row_a) < (part_b, row_b), of records
    that share a (band index, band hash), sorted. `signatures` holds MINHASH_SIGNATURE_SCHEMA rows
    of any number of parts: a pl.scan_parquet of the signature files keeps the search out of core.

    edges="all": every pair within every bucket (what datasketch's MinHashLSH query returns).
    edges="star" (default): each bucket's members paired with its first member only. The pairs
    span the same connected components, which is all near_duplicate_removals uses, and a bucket
    of k copies gives k - 1 pairs instead of k(k-1)/2: 1,000 copies of one text are 500K pairs
    per band with "all".

    The search runs in passes of config.bands_per_pass bands (lsh_band_pass); a bucket is one
    band's, so each pass finds exactly the pairs of its bands, and the union of the passes is the
    same for any bands_per_pass. A pass re-reads `signatures` and holds only its own bands; the
    pairs (far fewer than band rows unless most records are copies) are merged after each pass.
    """
    if edges not in ("star", "all"):
        raise ValueError(f"edges must be 'star' or 'all', got {edges!r}")
    pairs = pl.DataFrame(schema={"a": pl.Int64, "b": pl.Int64})
    for start in range(0, config.bands, config.bands_per_pass):
        stop = start + config.bands_per_pass
        # The last pass takes every band from its start on (stop None): signatures made with more
        # bands than config.bands still have all of them searched, as a single pass would.
        found = band_pass_query(signatures, start=start, stop=stop if stop < config.bands else None, edges=edges)
        # Merged pass by pass, in the pass's own query (one unique over the pairs so far and the
        # pass's), so what is held between passes is never more than the final pairs (near copies
        # share most bands: each pass finds mostly the same pairs again).
        pairs = pl.concat([pairs.lazy(), found]).unique().collect(engine="streaming")
    return pairs.select(
        part_a=(pl.col("a") // 2**32).cast(pl.Int32),
        row_a=(pl.col("a") % 2**32).cast(pl.Int32),
        part_b=(pl.col("b") // 2**32).cast(pl.Int32),
        row_b=(pl.col("b") % 2**32).cast(pl.Int32),
    ).sort("part_a", "row_a", "part_b", "row_b")


def lsh_band_pass(
    signatures: pl.LazyFrame | pl.DataFrame, *, start: int, stop: int | None, edges: Literal["star", "all"] = "star"
) -> pl.DataFrame:
    """The unique candidate pairs (a, b) of bands [start, stop) (stop None: to the last band), as
    record keys part * 2^32 + row with a < b, from one streaming scan of `signatures`."""
    return band_pass_query(signatures, start=start, stop=stop, edges=edges).unique().collect(engine="streaming")


def band_pass_query(
    signatures: pl.LazyFrame | pl.DataFrame, *, start: int, stop: int | None, edges: Literal["star", "all"] = "star"
) -> pl.LazyFrame:
    """lsh_band_pass's query, its pairs not yet made unique (a pair repeats once per shared band).

    Only the bands' slice of each record's band_hashes is exploded. The input is read in morsels,
    but the window (or the self-join's build side) is a blocking node: it holds every row of the
    pass, records x (stop - start) rows of (key, band, band hash), 20 bytes each, ~44 with its
    grouping state (measured, docs/minhash.md), plus the pass's pairs. That is what passes bound.
    """
    band_hash = pl.col("band_hashes").list.slice(start, None if stop is None else stop - start)
    buckets = (
        signatures.lazy()
        .select(
            # One int64 per record, ordered as (part, row): cheaper to group and compare.
            key=pl.col("part").cast(pl.Int64) * 2**32 + pl.col("row").cast(pl.Int64),
            band_hash=band_hash,
            band=pl.int_ranges(start, start + band_hash.list.len(), dtype=pl.Int32),
        )
        .explode("band_hash", "band")
        .drop_nulls("band_hash")
    )
    if edges == "star":
        pairs = (
            buckets.with_columns(a=pl.col("key").min().over("band", "band_hash"))
            .filter(pl.col("key") != pl.col("a"))
            .select("a", b="key")
        )
    else:
        # A self-join rather than group_by().agg(list): the list aggregation is not a streaming node.
        pairs = (
            buckets.join(buckets, on=["band", "band_hash"], suffix="_b")
            .filter(pl.col("key") < pl.col("key_b"))
            .select(a="key", b="key_b")
        )
    # Both queries run on the streaming engine: scan, slice, explode, window and join nodes are
    # all native streaming nodes (no in-memory fallback in polars 2.1's physical plan).
    return pairs


def candidate_components(pairs: pl.DataFrame) -> pl.DataFrame:
    """(part, row, component) for every record in `pairs`: connected components by union-find;
    a component is named by its smallest (part, row) key, so the numbering is deterministic."""
    a = (pairs["part_a"].cast(pl.Int64) * 2**32 + pairs["row_a"].cast(pl.Int64)).to_numpy()
    b = (pairs["part_b"].cast(pl.Int64) * 2**32 + pairs["row_b"].cast(pl.Int64)).to_numpy()
    nodes = np.unique(np.concatenate([a, b]))
    parent = list(range(len(nodes)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving keeps the trees flat
            x = parent[x]
        return x

    for x, y in zip(np.searchsorted(nodes, a).tolist(), np.searchsorted(nodes, b).tolist(), strict=True):
        rx, ry = find(x), find(y)
        if rx != ry:
            # The smaller index becomes the root: roots are the smallest key of their component.
            parent[max(rx, ry)] = min(rx, ry)
    roots = np.array([find(x) for x in range(len(nodes))], dtype=np.int64)
    return pl.DataFrame(
        {"part": (nodes // 2**32).astype(np.int32), "row": (nodes % 2**32).astype(np.int32), "component": nodes[roots]},
        schema={"part": pl.Int32, "row": pl.Int32, "component": pl.Int64},
    )


def near_duplicate_removals(
    pairs: pl.DataFrame,
    shingles: Mapping[Key, AbstractSet[int]],
    ranks: pl.LazyFrame | pl.DataFrame,
    *,
    config: MinHashConfig,
) -> pl.DataFrame:
    """The records to remove, as NEAR_DUPLICATE_FINDINGS_SCHEMA rows sorted by (part, row).

    `pairs`: lsh_candidate_pairs' output. `shingles`: conversation_shingles of (at least) every
    record in `pairs`, by (part, row); each is read once, and only the kept members of the
    component at hand are held, so a lazy Mapping lets the caller load them component by
    component. `ranks`: part, row, id and the rank_* columns (signature rows will do).

    Within each connected component, members go best keep-rank first; a member whose exact
    Jaccard with an already kept member is >= config.threshold is removed as a duplicate of the
    first such kept member (detail "jaccard=0.873 (part P row R)", naming the kept record's
    position since ids repeat); otherwise it is kept. Every removal is thus verified against a
    record that stays, and a chain A~B~C (A, C unlike) removes B but not C.
    """
    components = candidate_components(pairs)
    members = (
        components.lazy()
        .join(ranks.lazy().select(*RANK_ORDER), on=["part", "row"], how="left")
        .sort("component", *RANK_ORDER)
        .collect()
    )
    if members["id"].null_count():
        raise ValueError("ranks lacks some (part, row) that appear in pairs")
    found: dict[str, list[Any]] = {name: [] for name in NEAR_DUPLICATE_FINDINGS_SCHEMA.names()}
    kept: list[tuple[str, Key, AbstractSet[int]]] = []
    current = None
    for component, part, row, conv_id in members.select("component", "part", "row", "id").iter_rows():
        if component != current:
            current, kept = component, []
        mine = shingles[(part, row)]
        for kept_id, kept_key, theirs in kept:
            # |a & b| / |a | b| <= min/max of the sizes: skip pairs that cannot reach the threshold.
            if min(len(mine), len(theirs)) < config.threshold * max(len(mine), len(theirs)):
                continue
            similarity = jaccard(mine, theirs)
            if similarity >= config.threshold:
                for name, value in (
                    ("part", part),
                    ("row", row),
                    ("reason", "near_duplicate"),
                    ("duplicate_of", kept_id),
                    ("detail", f"jaccard={similarity:.3f} (part {kept_key[0]} row {kept_key[1]})"),
                ):
                    found[name].append(value)
                break
        else:
            kept.append((conv_id, (part, row), mine))
    return pl.DataFrame(found, schema=NEAR_DUPLICATE_FINDINGS_SCHEMA).sort("part", "row")


class _ShingleArrays(Mapping[Key, AbstractSet[int]]):
    """Candidates' shingle hashes held as uint64 arrays (8 bytes a shingle, against ~70 in a set of
    Python ints), each made a set when verification reaches it: near_duplicate_removals reads each
    record once and holds the sets of a component's kept members only."""

    def __init__(self, arrays: dict[Key, np.ndarray]) -> None:
        self._arrays = arrays

    def __getitem__(self, key: Key) -> AbstractSet[int]:
        return set(self._arrays[key].tolist())

    def __iter__(self) -> Iterator[Key]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)


# Candidates whose shingles find_near_duplicates holds at once: ~1,000 shingles a record, 8 bytes each,
# so ~160 MB of arrays. More candidates are verified in buckets of components, spilled to Parquet.
_VERIFY_BUCKET_RECORDS = 20_000

# A bucket's spilled shingles, one row per candidate record.
_SPILLED_SHINGLES_SCHEMA = pa.schema(
    [
        pa.field("part", pa.int32(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),
        pa.field("shingles", pa.list_(pa.field("item", pa.uint64(), nullable=False)), nullable=False),
    ]
)


def _candidate_shingles(
    members: pl.DataFrame, part_files: Sequence[str], config: MinHashConfig
) -> Iterator[tuple[int, dict[Key, np.ndarray]]]:
    """(bucket, {(part, row): shingle hashes, repeats kept}) of the `members` rows (part, row, bucket),
    reading each part file once, in part order, and only its candidate records."""
    for (index,), rows in members.sort("part", "row").group_by(["part"], maintain_order=True):
        wanted = rows["row"].to_list()
        texts = read_turn_texts(Path(part_files[index]), wanted)
        shingles = dict(zip(wanted, verification_shingles(texts, config.ngram), strict=True))
        for (bucket,), in_bucket in rows.group_by(["bucket"], maintain_order=True):
            yield bucket, {(index, row): shingles[row] for row in in_bucket["row"]}


def find_near_duplicates(
    signature_files: Sequence[str], part_files: Sequence[str], *, config: MinHashConfig
) -> pl.DataFrame:
    """The run-wide near-duplicate step over files: LSH candidates from the signature files, then
    exact Jaccard on the shingles of the candidates only (NEAR_DUPLICATE_FINDINGS_SCHEMA rows).

    `part_files[i]` holds the conversations of part i. Signatures and conversations stay on disk,
    read a part at a time; the ranks of the candidates alone are read, by a streaming semi-join.
    Memory is bounded by _VERIFY_BUCKET_RECORDS candidates' shingles: with more candidates than that,
    components are cut into buckets (component key modulo the bucket count; a component never spans
    two), each part is read once to spill its candidates' shingles to their bucket's Parquet file
    beside the signatures, and the buckets are verified one at a time.
    """
    scanned = pl.scan_parquet(list(signature_files))
    pairs = lsh_candidate_pairs(scanned, config=config)
    components = candidate_components(pairs)
    buckets = max(1, -(-len(components) // _VERIFY_BUCKET_RECORDS))
    members = components.select("part", "row", bucket=(pl.col("component") % buckets).cast(pl.Int32))
    ranks = scanned.drop("band_hashes").join(members.lazy(), on=["part", "row"], how="semi").collect(engine="streaming")
    if buckets == 1:
        arrays = {
            key: shingles
            for _, found in _candidate_shingles(members, part_files, config)
            for key, shingles in found.items()
        }
        return near_duplicate_removals(pairs, _ShingleArrays(arrays), ranks, config=config)

    spill = Path(signature_files[0]).parent / f".verify-{uuid.uuid4().hex}"
    spill.mkdir()
    try:
        for bucket, found in _candidate_shingles(members, part_files, config):
            keys = list(found)
            table = pa.table(
                {
                    "part": pa.array([k[0] for k in keys], pa.int32()),
                    "row": pa.array([k[1] for k in keys], pa.int32()),
                    "shingles": pa.array([found[k] for k in keys], _SPILLED_SHINGLES_SCHEMA.field("shingles").type),
                },
                schema=_SPILLED_SHINGLES_SCHEMA,
            )
            atomic_write_table(
                spill / f"bucket-{bucket:05d}-part-{keys[0][0]:05d}.parquet", table, schema=_SPILLED_SHINGLES_SCHEMA
            )
        removals = []
        bucket_pairs = pairs.join(members, left_on=["part_a", "row_a"], right_on=["part", "row"])
        for bucket in range(buckets):
            files = sorted(spill.glob(f"bucket-{bucket:05d}-*.parquet"))
            if not files:
                continue
            arrays = {}
            for file in files:
                # Batch by batch, the arrays viewing Arrow's buffers: no copy of the bucket's shingles.
                for batch in pq.ParquetFile(file).iter_batches():
                    column = batch.column("shingles")
                    offsets, values = column.offsets.to_numpy(), column.values.to_numpy()
                    rows = zip(batch.column("part").to_pylist(), batch.column("row").to_pylist(), strict=True)
                    arrays.update((key, values[offsets[i] : offsets[i + 1]]) for i, key in enumerate(rows))
            these = bucket_pairs.filter(pl.col("bucket") == bucket).drop("bucket")
            removals.append(near_duplicate_removals(these, _ShingleArrays(arrays), ranks, config=config))
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    return pl.concat(removals).sort("part", "row") if removals else pl.DataFrame(schema=NEAR_DUPLICATE_FINDINGS_SCHEMA)


def drop_near_duplicates(convs: Sequence[Conversation], *, config: MinHashConfig) -> StageResult:
    """In-memory near-duplicate removal over one list of conversations (as part 0)."""
    if not config.enabled:
        return StageResult(kept=list(convs), dropped=[], changed={})
    signatures = pl.DataFrame(minhash_signatures(convs, part=0, config=config))
    pairs = lsh_candidate_pairs(signatures, config=config)
    rows = set(pairs["row_a"].to_list()) | set(pairs["row_b"].to_list())
    # Shingles only for the records some candidate pair names (usually a small share).
    shingles = {(0, row): conversation_shingles(convs[row], ngram=config.ngram) for row in rows}
    found = near_duplicate_removals(pairs, shingles, signatures.drop("band_hashes"), config=config)
    removals = {
        row: Removal(reason="near_duplicate", duplicate_of=kept_id, detail=detail)
        for row, kept_id, detail in found.select("row", "duplicate_of", "detail").iter_rows()
    }
    return remove_listed(convs, removals, stage="dedupe_minhash")


def candidate_probability(similarity: float, *, bands: int, rows: int) -> float:
    """P(two sets of Jaccard `similarity` share at least one band) = 1 - (1 - s^rows)^bands: a band
    of `rows` MinHash values agrees with probability s^rows, and bands are independent."""
    return 1.0 - (1.0 - similarity**rows) ** bands


# The similarities the bench and docs/minhash.md print the curve at.
CURVE_SIMILARITIES: tuple[float, ...] = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def detection_curve(
    *, bands: int, rows: int, similarities: Sequence[float] = CURVE_SIMILARITIES
) -> list[tuple[float, float]]:
    """(similarity, P(candidate)) for each of `similarities`."""
    return [(s, candidate_probability(s, bands=bands, rows=rows)) for s in similarities]


def format_detection_curve(*, bands: int, rows: int, similarities: Sequence[float] = CURVE_SIMILARITIES) -> str:
    """The detection curve, one line per similarity, for reports and the bench."""
    head = f"{bands} bands x {rows} rows = {bands * rows} permutations; P(candidate) by Jaccard s:"
    lines = (f"  s={s:.2f}  P={p:.4f}" for s, p in detection_curve(bands=bands, rows=rows, similarities=similarities))
    return "\n".join([head, *lines])


# Per part: the signatures depend on the shingles and the permutations only, not on the threshold
# or bands_per_pass, which act in the run-wide step.
MINHASH_SIGNATURES = Stage(
    "dedupe_minhash-signatures",
    minhash_signatures,
    config="dedupe_minhash",
    only_fields=("ngram", "bands", "rows", "seed"),
)
# Run-wide: LSH candidates and their exact-Jaccard verification.
NEAR_DUPLICATES = Stage("dedupe_minhash", find_near_duplicates, config="dedupe_minhash")
