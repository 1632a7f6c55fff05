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

    def config_hash(self) -> str:
        """A stable hash of every option, for lineage and caching."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()
