"""Tokenizing, splitting and packing into training shards: [tokenizer], [split], [shards]."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.config._base import ConfigSection


class TokenizerConfig(ConfigSection):
    """The tokenizer used to count tokens (split) and to build training rows."""

    # A tokenizer.json path, a folder holding one, the built-in "mistral-7b-v0.1" (shipped by the
    # PyPI package mistral-common, works offline), or a hub name (needs network).
    spec: str = "mistral-7b-v0.1"


class SplitConfig(ConfigSection):
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


ChatTemplateName = Literal["llama2", "chatml", "vicuna", "openchat", "tulu", "phi3", "tokenizer"]


class ShardsConfig(ConfigSection):
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
