"""The cleaning stages' options: [markdown], [shape], [model], [blocked], [secrets], [language]."""

from __future__ import annotations

import difflib
from functools import cache
from importlib.resources import files
from typing import Literal

from pydantic import Field, field_validator

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
    # The ceiling keeps the converter, which recurses about three frames per nested inline element
    # and first failed at 329 levels under Python's default limit of 1000, clear of RecursionError.
    max_html_depth: int = Field(default=100, ge=1, le=200)
    """An assistant turn whose HTML nests elements deeper than this drops its conversation (html_too_deep). Real
    ChatGPT answers nest at most 7 deep; at most 200 (docs/defaults.md#markdown).
    """
    max_html_elements: int = Field(default=100_000, ge=1)
    """An assistant turn whose HTML holds more elements than this drops its conversation (html_too_large): the tree
    costs about 1 KB of memory an element. Real ChatGPT answers hold at most 387 (docs/defaults.md#markdown).
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
    """[secrets]: secrets and personal data, redacted to placeholders such as `<API_KEY>`."""

    redact_api_keys: bool = True
    """Replace credentials: API keys (AWS secret keys beside their key id, Stripe secret and restricted keys,
    also split by invisible characters) and private keys with `<API_KEY>`, JWTs with `<JWT>`. On, since shared
    conversations hold pasted keys (docs/defaults.md#secrets).
    """
    redact_emails: bool = True
    """Replace e-mail addresses with `<EMAIL>`; reserved example domains (RFC 2606, RFC 6761) are kept
    (docs/defaults.md#secrets).
    """
    redact_phone_numbers: bool = True
    """Replace international (E.164, 8-15 digits), North American and French phone numbers with `<PHONE>`
    (docs/defaults.md#secrets).
    """
    redact_credit_cards: bool = True
    """Replace card numbers that pass the Luhn check and start with a card network's prefix with `<CREDIT_CARD>`;
    the providers' published test numbers are kept (docs/defaults.md#secrets).
    """
    redact_ip_addresses: bool = True
    """Replace public IPv4 host addresses with `<IP_ADDRESS>`; private, loopback, documentation and other
    non-global ranges, well-known DNS resolvers and version numbers are kept (docs/defaults.md#secrets).
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

    @field_validator("allowed")
    @classmethod
    def _detectable(cls, allowed: tuple[str, ...] | None) -> tuple[str, ...] | None:
        # A code the detector never answers, or none at all, would drop every judged conversation.
        if allowed is None:
            return None
        if not allowed:
            raise ValueError('an empty list drops every conversation: name languages (["en"]) or leave allowed out')
        known = detectable_languages()
        unknown = [code for code in allowed if base_language(code) not in known]
        if unknown:
            raise ValueError(
                "; ".join(f"{c!r} is not a code langdetect detects ({_nearest_codes(c)})" for c in unknown)
            )
        return allowed


def base_language(code: str) -> str:
    """The language a code names, as the language stage compares them: "zh-CN" and "ZH" are "zh"."""
    return code.strip().lower().split("-")[0]


@cache
def detectable_languages() -> frozenset[str]:
    """The ISO 639-1 codes the language stage's detector (langdetect) answers: one per profile it
    ships, regional variants as one ("zh-cn" and "zh-tw" are "zh"), as the stage counts them."""
    return frozenset(p.name.split("-")[0] for p in files("langdetect").joinpath("profiles").iterdir())


def _nearest_codes(code: str) -> str:
    """'did you mean ...' for a code the detector does not know, else the list of those it does."""
    known = sorted(detectable_languages())
    word = code.strip().lower()
    # "EN", "zh-cn", "eng" and "english" all start with their code; else the closest spellings.
    near = [word[:2]] if word[:2] in known else difflib.get_close_matches(word, known, n=3, cutoff=0.5)
    if near:
        return "did you mean " + " or ".join(repr(c) for c in near) + "?"
    return "use one of " + " ".join(known)
