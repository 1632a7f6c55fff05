"""Every stage's options and their defaults, in one place. Each threshold says where it comes from.

A config file (TOML or JSON) maps onto CurationConfig; unknown keys are errors, so a typo
fails before any work starts instead of silently running with a default.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
    tokenizer: TokenizerConfig = TokenizerConfig()
    shards: ShardsConfig = ShardsConfig()

    def config_hash(self) -> str:
        """A stable hash of every option, for lineage and caching."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()
