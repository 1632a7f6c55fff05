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
    """[markdown]: converting assistant turns from ChatGPT's HTML to markdown."""

    assistant_format: Literal["auto", "html", "markdown"] = "auto"
    """What assistant turns hold. "auto" converts a turn only when it is ChatGPT HTML (the `markdown prose` div or a
    top-level block tag), since the cleaned public release already holds markdown; "html" converts every turn,
    "markdown" none (docs/defaults.md#markdown).
    """


class ShapeConfig(ConfigSection):
    """[shape]: turn order and size. Defaults follow FastChat and OpenChat's cleaning scripts."""

    # Consecutive turns of one role are never merged: they come from moderated or lost turns, so
    # merging would join answers to different questions.
    repair: bool = True
    """Cut leading non-user turns, a trailing user turn and an empty final round instead of dropping the conversation,
    as FastChat and OpenChat do; consecutive turns of one role still drop it. Off: all of these drop
    (docs/defaults.md#shape).
    """
    min_turns: int = Field(default=2, ge=1)
    """Conversations with fewer dialogue turns are dropped (too_short). 2, as FastChat and OpenChat
    (docs/defaults.md#shape).
    """
    min_chars: int = Field(default=16, ge=0)
    """Conversations with fewer characters of text are dropped (too_short). 16, as FastChat and OpenChat
    (docs/defaults.md#shape).
    """
    keep_system: bool = True
    """Keep a system turn when it is the first turn; anywhere else it is a role error. Off: every system turn is a role
    error (docs/defaults.md#shape).
    """


class ModelConfig(ConfigSection):
    """[model]: which captured ChatGPT models to keep, by the conversation's model banner."""

    allowed_models: tuple[str, ...] | None = None
    """Model banners to keep, matched exactly (e.g. ["Model: GPT-4"], OpenChat's GPT-4 subset); None keeps every
    conversation (docs/defaults.md#model).
    """
    keep_unknown: bool = False
    """Whether a conversation without a model banner (free-tier users) passes allowed_models. Off: an allow-list keeps
    only the models it names (docs/defaults.md#model).
    """


class BlockedConfig(ConfigSection):
    """[blocked]: refusal phrases and ChatGPT error widgets in assistant turns."""

    phrases: tuple[str, ...] = REFUSAL_PHRASES
    """Phrases that mark an assistant turn as a refusal or AI disclaimer, compared after normalization. Specific phrases
    in the spirit of OpenChat's list (schemas/config/data/refusal_phrases.txt, docs/defaults.md#blocked).
    """
    mode: Literal["drop", "zero_weight"] = "zero_weight"
    """ "zero_weight" keeps the conversation and stops training on the matching assistant turn, as OpenChat does; "drop"
    removes the conversation, as FastChat does (docs/defaults.md#blocked).
    """
    error_responses: tuple[str, ...] = CHATGPT_ERROR_RESPONSES
    """ChatGPT's error widgets captured in place of an answer; an assistant turn that is one of them always drops its
    conversation (blocked_response). FastChat's and those seen in the public dumps (docs/defaults.md#blocked).
    """


class SecretsConfig(ConfigSection):
    """[secrets]: secrets and personal data, redacted to placeholders such as <API_KEY>."""

    redact_api_keys: bool = True
    """Replace API keys and private keys with <API_KEY>. On, since shared conversations hold pasted keys
    (docs/defaults.md#secrets).
    """
    redact_emails: bool = True
    """Replace e-mail addresses with <EMAIL>; reserved example domains (RFC 2606, RFC 6761) are kept
    (docs/defaults.md#secrets).
    """
    redact_phone_numbers: bool = True
    """Replace international (E.164, 8-15 digits) and North American phone numbers with <PHONE>
    (docs/defaults.md#secrets).
    """


class LanguageConfig(ConfigSection):
    """[language]: optional language filter on user turns (off by default, as in FastChat's default recipe)."""

    allowed: tuple[str, ...] | None = None
    """ISO 639-1 codes to keep, e.g. ["en"]; None turns the filter off, as in FastChat's default recipe
    (docs/defaults.md#language).
    """
    min_share: float = Field(default=0.5, ge=0.0, le=1.0)
    """Share (0-1) of a conversation's judged user text that must be in an allowed language. 0.5: the majority
    (docs/defaults.md#language).
    """
