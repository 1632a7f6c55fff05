"""Exact and near-duplicate removal: [dedupe_exact], [dedupe_minhash]."""

from __future__ import annotations

from pydantic import Field, model_validator

from schemas.config._base import ConfigSection, data_lines

# Kept as a data file (schemas/config/data/), with its sources in a comment header.
CONTINUATION_PROMPTS: tuple[str, ...] = data_lines("continuation_prompts.txt")

# Most MinHash permutations (bands x rows) a run computes: each is applied to every shingle, so
# past ~1000 signature time grows with the count (2x the default 168 at 1024, 8x at 4096;
# docs/defaults.md#dedupe_minhash). datasketch itself stops only at 2^32.
MAX_MINHASH_PERMUTATIONS = 1024


class ExactDedupeConfig(ConfigSection):
    """[dedupe_exact]: exact duplicates by stable hashes of normalized, role-tagged turns."""

    enabled: bool = True
    """Remove exact duplicates (after normalization) across all inputs; on, as in FastChat and OpenChat
    (docs/defaults.md#dedupe_exact).
    """
    match_user_prompts: bool = True
    """Also match conversations whose user turns are identical but whose answers differ (ChatGPT's "regenerate");
    FastChat matches on the first prompt and answer only (docs/defaults.md#dedupe_exact).
    """
    continuation_prompts: tuple[str, ...] = CONTINUATION_PROMPTS
    """User turns that only ask for more of the answer before them ("continue", "please go on"), alone or opening the
    turn: no evidence of a regenerated answer, so conversations whose user turns are all such (or short) are never
    same_prompts. Read off the real sample's split pieces (schemas/config/data/continuation_prompts.txt,
    docs/defaults.md#dedupe_exact).
    """
    min_prompt_chars: int = Field(default=10, ge=0)
    """User turns shorter than this in normalized characters ("hi", "more", "thank you") are no evidence of a
    regenerated answer either. 10, from the real sample's repeated short prompts (docs/defaults.md#dedupe_exact).
    """
    match_prefixes: bool = True
    """Also match a conversation that is the opening of a longer one (a share made before the conversation went on),
    keeping the longer (docs/defaults.md#dedupe_exact).
    """


class MinHashConfig(ConfigSection):
    """[dedupe_minhash]: near duplicates by MinHash LSH over word n-gram shingles, verified by exact Jaccard."""

    enabled: bool = True
    """Remove near duplicates; neither FastChat nor OpenChat does (docs/defaults.md#dedupe_minhash)."""
    threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    """Jaccard similarity of shingle sets at or above which two conversations are duplicates, checked exactly for every
    candidate pair. 0.8, as NeMo Curator, text-dedup and data-juicer (docs/defaults.md#dedupe_minhash).
    """
    ngram: int = Field(default=5, ge=1)
    """Words per shingle, after normalization. 5, as datatrove, text-dedup and data-juicer
    (docs/defaults.md#dedupe_minhash).
    """
    # The curve sits well left of the threshold on purpose: verification makes a false candidate cost
    # only time, while a missed one leaves a duplicate in the data (docs/minhash.md).
    bands: int = Field(default=24, ge=1)
    """LSH bands; bands x rows permutations. 24 x 7 makes a pair at Jaccard 0.8 a candidate with P = 0.9965, where a
    library's automatic choice catches ~40% (docs/defaults.md#dedupe_minhash).
    """
    rows: int = Field(default=7, ge=1)
    """MinHash values per band. 7 rather than 6 halves the candidates below Jaccard 0.5 on the real sample for +10%
    signature time (docs/defaults.md#dedupe_minhash).
    """
    seed: int = 1
    """Seed of the MinHash permutations; fixed so that signatures are reproducible (docs/defaults.md#dedupe_minhash)."""
    # Pairs and removals never depend on bands_per_pass, only memory and time do: each pass re-reads
    # the signature files.
    bands_per_pass: int = Field(default=8, ge=1)
    """Bands per pass of the global candidate search over the signature files: fewer bands need less memory and more
    time. 8 (three passes) takes about the time of one pass for 2.7x less memory (bench/dedupe.py,
    docs/defaults.md#dedupe_minhash).
    """

    @model_validator(mode="after")
    def _permutations_bounded(self) -> MinHashConfig:
        permutations = self.bands * self.rows
        if permutations > MAX_MINHASH_PERMUTATIONS:
            raise ValueError(
                f"bands x rows = {self.bands} x {self.rows} = {permutations} MinHash permutations, over the "
                f"{MAX_MINHASH_PERMUTATIONS} a run computes: lower bands or rows (the default 24 x 7 = 168 catches "
                "99.65% of pairs at Jaccard 0.8)"
            )
        return self
