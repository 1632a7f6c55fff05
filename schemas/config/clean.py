"""The cleaning stages' options: [markdown], [shape], [model], [blocked], [secrets], [language]."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.config._base import ConfigSection, data_lines

# Tables kept as data files (schemas/config/data/), each with its sources in a comment header.
CHATGPT_ERROR_RESPONSES: tuple[str, ...] = data_lines("chatgpt_error_responses.txt")
FASTCHAT_BLOCKED_WORDS: tuple[str, ...] = data_lines("fastchat_blocked_words.txt")
REFUSAL_PHRASES: tuple[str, ...] = data_lines("refusal_phrases.txt")


class MarkdownConfig(ConfigSection):
    """Assistant HTML to markdown."""

    # "auto": convert a turn only when it is ChatGPT HTML (the `markdown prose` div or a
    # top-level block tag); the cleaned public release already holds markdown.
    assistant_format: Literal["auto", "html", "markdown"] = "auto"


class ShapeConfig(ConfigSection):
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


class ModelConfig(ConfigSection):
    """Which captured models to keep."""

    # None keeps every conversation. OpenChat keeps ["Model: GPT-4"] only (its GPT-4 subset).
    allowed_models: tuple[str, ...] | None = None
    # Whether a conversation without a model banner (free-tier users) passes an allow-list.
    keep_unknown: bool = False


class BlockedConfig(ConfigSection):
    """Blocked words and phrases in assistant turns."""

    phrases: tuple[str, ...] = REFUSAL_PHRASES
    # "zero_weight" keeps the conversation and stops training on the offending assistant turn
    # (OpenChat); "drop" removes the conversation (FastChat).
    mode: Literal["drop", "zero_weight"] = "zero_weight"
    # Assistant turns that are ChatGPT's own error widgets; always dropped.
    error_responses: tuple[str, ...] = CHATGPT_ERROR_RESPONSES


class SecretsConfig(ConfigSection):
    """Secrets and personal data, redacted to placeholders such as <API_KEY>."""

    redact_api_keys: bool = True
    redact_emails: bool = True
    redact_phone_numbers: bool = True


class LanguageConfig(ConfigSection):
    """Optional language filter (off by default, as in FastChat's default recipe)."""

    # ISO 639-1 codes to keep, e.g. ["en"]; None turns the filter off.
    allowed: tuple[str, ...] | None = None
    # Share of a conversation's user text that must be in an allowed language.
    min_share: float = Field(default=0.5, ge=0.0, le=1.0)
