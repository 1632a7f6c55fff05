"""Exact and near-duplicate removal: [dedupe_exact], [dedupe_minhash]."""

from __future__ import annotations

from pydantic import Field

from schemas.config._base import ConfigSection


class ExactDedupeConfig(ConfigSection):
    """Exact duplicates by stable hashes of normalized, role-tagged turns."""

    enabled: bool = True
    # Also match conversations whose user turns are identical but whose answers differ
    # (ChatGPT's "regenerate"); FastChat dedupes on the first prompt and answer only.
    match_user_prompts: bool = True
    # Also match a conversation that is the opening of a longer one (a share made before the
    # conversation went on).
    match_prefixes: bool = True


class MinHashConfig(ConfigSection):
    """Near duplicates: MinHash LSH over word n-gram shingles, verified by exact Jaccard."""

    enabled: bool = True
    # Jaccard similarity of shingle sets at or above which two conversations are duplicates.
    # 0.8 is the common choice (NeMo Curator, text-dedup, data-juicer defaults).
    threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    # Word 5-grams, after normalization, as datatrove, text-dedup and data-juicer use.
    ngram: int = Field(default=5, ge=1)
    # Bands x rows, chosen explicitly for the threshold (shared/notes/dedupe-and-packing.md: a
    # library's automatic choice catches only ~40% of pairs at 0.8). 24 x 7 (168 permutations)
    # makes a pair a candidate with P = 0.9965 at Jaccard 0.8, 0.9999 at 0.85, 0.17 at 0.5.
    # Candidates are verified by exact Jaccard, so a generous curve costs only verification time;
    # 7 rows rather than 6 halves the candidates below 0.5 in the real sample for +10% signature
    # time. docs/minhash.md has the curve and the comparison.
    bands: int = Field(default=24, ge=1)
    rows: int = Field(default=7, ge=1)
    seed: int = 1
    # The global candidate search runs in passes over the signature files, each over this many
    # bands: a pass holds records x bands_per_pass exploded (record, band, band hash) rows, 20
    # bytes each, ~44 with polars' grouping state (measured), instead of all bands at once. The
    # pairs and removals never depend on it, only memory and time do: each pass re-reads the
    # files. 8 (three passes) takes about the time of one pass for 2.7x less memory at 3M records
    # (~4 GB at 10M instead of ~11); 1 needs ~0.5 GB at 10M plus the pairs, at ~4x the time.
    # docs/minhash.md has the figures.
    bands_per_pass: int = Field(default=8, ge=1)
