"""Tokenizing, splitting and packing into training shards: [tokenizer], [split], [shards]."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.config._base import ConfigSection
from schemas.shards import ExportFormat


class TokenizerConfig(ConfigSection):
    """[tokenizer]: the tokenizer used to count tokens (split) and to build training rows."""

    spec: str = "mistral-7b-v0.1"
    """A tokenizer.json path, a folder holding one, the built-in "mistral-7b-v0.1" (shipped by the PyPI package
    mistral-common, so it works offline), or a hub name (needs network) (docs/defaults.md#tokenizer).
    """


class SplitConfig(ConfigSection):
    """[split]: splitting long conversations at round boundaries."""

    max_tokens: int = Field(default=2048, gt=0)
    """Token budget of one piece; longer conversations are split into whole rounds. 2048, FastChat's max_length (4096 in
    its full recipe; docs/defaults.md#split).
    """
    turn_overhead_tokens: int = Field(default=6, ge=0)
    """Tokens a chat template adds per turn (role header, end of turn), counted on top of the text. 6, as FastChat
    counts (docs/defaults.md#split).
    """
    repeat_system_prompt: bool = False
    """Repeat a leading system turn at the start of every piece (its tokens then count in each). Off: it opens the first
    piece only (docs/defaults.md#split).
    """
    # One round alone may still fill max_tokens, so a lower ratio never loses text; it trades context
    # for packing, since a conversation over half a packed row shares it with nothing.
    piece_target_ratio: float = Field(default=0.6, gt=0.0, le=1.0)
    """Conversations longer than max_tokens x this are split, into pieces closed at that size. 0.6: bench/shards.py
    measures 99.87% packing at 2048 and 99.91% at 4096 on the real sample, where FastChat's rule (1.0, split only what
    does not fit) leaves so many pieces over half a row that no packing passes 97.96% at 2048; pieces hold ~28% fewer
    tokens on average (docs/defaults.md#split).
    """


ChatTemplateName = Literal["llama2", "chatml", "vicuna", "openchat", "tulu", "phi3", "tokenizer"]


class ShardsConfig(ConfigSection):
    """[shards]: tokenization with a chat template, packing, and the training shards."""

    template: ChatTemplateName = "llama2"
    """The chat template. "llama2" (`[INST] ... [/INST] answer </s>`) is the native format of the default Mistral 7B
    tokenizer; "tokenizer" uses the jinja chat_template of the tokenizer's tokenizer_config.json
    (docs/defaults.md#shards).
    """
    max_seq_len: int = Field(default=2048, gt=0)
    """Tokens per training row; split.max_tokens should not exceed it. 2048, as FastChat trains (4096 in its full
    recipe; docs/defaults.md#shards).
    """
    layout: Literal["packed", "unpacked"] = "packed"
    """ "packed": whole conversations best-fit into rows of max_seq_len (~99.9% of slots filled); "unpacked": one
    conversation per row, for a trainer that packs (docs/defaults.md#shards).
    """
    overlong: Literal["drop", "truncate"] = "drop"
    """What to do with a conversation still longer than max_seq_len after splitting. Drop, so that no row ends
    mid-answer (docs/defaults.md#shards).
    """
    seed: int = 0
    """Seed of the row shuffle after packing (best-fit emits rows ordered by length); fixed so shards are reproducible
    (docs/defaults.md#shards).
    """
    rows_per_row_group: int = Field(default=1024, gt=0)
    """Rows per Parquet row group. 512-1024 rows let ranks and loader workers split a shard evenly, where pyarrow's
    default of ~1M rows is far too large (docs/defaults.md#shards).
    """
    target_shard_bytes: int = Field(default=200 * 1024 * 1024, gt=0)
    """Largest size of a shard file in bytes: a row group that would take the file past it opens the next shard. 200
    MiB, within the usual 100-250 MB (docs/defaults.md#shards).
    """
    exports: tuple[ExportFormat, ...] = ()
    """Formats the shards are also written in once built, each in `<run>/exports/<format>/` with its own
    export_manifest.json, as `chatsift shards export` writes them: "axolotl" (axolotl's pre-tokenized
    input_ids, attention_mask and labels with -100), "torchtune" (tokens and labels with -100, read by
    train.torchtune_dataset.chatsift_dataset), "mds" (MosaicML MDS of LLM Foundry's tokenized chat turns; a
    conversation a sample), "messages" (the conversations as JSON lines of messages
    with a per-turn training flag, for chat-template loaders). Empty: none (docs/defaults.md#shards).
    """
    export_layout: Literal["packed", "unpacked"] = "unpacked"
    """Rows of the exports: "unpacked", one conversation a row, for a trainer that packs itself (axolotl's
    sample_packing); "packed", the shards' rows with position ids that restart per conversation (packed
    shards only; docs/defaults.md#shards).
    """
