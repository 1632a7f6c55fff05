"""The record every curation stage takes and returns: a Conversation of Turns."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant"]


class Turn(BaseModel):
    """One message. `content` is markdown (assistant) or the user's plain text, verbatim."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    content: str
    # The role name as the input spelled it ("human", "gpt", "bing", "instruction"...),
    # kept so a reviewer can see what a repaired or mapped turn was.
    source_role: str
    # None: trained normally. 0.0: kept for context but not supervised
    # (the blocked-phrase "zero_weight" mode, as OpenChat does with refusals).
    weight: float | None = None


class Provenance(BaseModel):
    """Where a conversation came from, precisely enough to find the raw bytes again."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_file: str
    # Byte offset of the record in the input file (JSON dumps, JSONL); None for a page file.
    byte_offset: int | None = None
    # The ShareGPT page id for saved or scraped pages.
    page_id: str | None = None
    # Position of the record in its input file (0-based), for every format.
    record_index: int | None = None
    # blake2b-128 hex of the raw record bytes as read, before any cleaning.
    content_hash: str
    # For a scraped page: the URL it was fetched from and when (ISO 8601 UTC), from the fetch
    # sidecar the scraper writes beside the page (curation/scrape/fetch.py). None for other inputs.
    url: str | None = None
    fetched_at: str | None = None


class Conversation(BaseModel):
    """A conversation in chatsift's one internal shape, whatever format it arrived in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    # The input format it was read from: sharegpt_page, sharegpt_json, sharegpt_jsonl,
    # alpaca, messages.
    source: str
    # ChatGPT's banner text as captured ("Model: GPT-4"); None when the page had none.
    model: str | None = None
    title: str | None = None
    turns: tuple[Turn, ...] = Field(default_factory=tuple)
    # Set on the pieces of a split conversation: the id it was split from and its position.
    parent_id: str | None = None
    split_index: int | None = None
    provenance: Provenance
