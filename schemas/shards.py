"""The shards contract: what a shards folder holds and how any reader checks it.

A shards folder holds shard-00000.parquet, shard-00001.parquet, ... (PACKED_SHARD_SCHEMA or
UNPACKED_SHARD_SCHEMA, each file carrying SHARDS_SCHEMA_VERSION under SHARDS_VERSION_KEY) and
manifest.json (ShardsManifest), written last. curation/ writes it, train/ and `chatsift shards`
read it, both through this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, get_args

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from schemas.arrow import KIND_KEY, SCHEMA_VERSION, SCHEMA_VERSION_KEY
from schemas.errors import InputError

# Bumped whenever a shard column or the manifest changes; trainers check it. 2: the mask column is
# `assistant_masks` (was `loss_mask`), and the manifest carries the special ids and the chat template.
SHARDS_SCHEMA_VERSION = "2"
# Shard schema versions today's readers understand.
KNOWN_SHARDS_SCHEMA_VERSIONS = frozenset({SHARDS_SCHEMA_VERSION})
# The Parquet metadata key every shard file carries SHARDS_SCHEMA_VERSION under.
SHARDS_VERSION_KEY = b"chatsift.shards_schema_version"
MANIFEST_NAME = "manifest.json"
# The shard column of the loss mask (1: a token trained on, unshifted, aligned with input_ids). It
# has the name TRL's SFTTrainer reads for it: TRL masks the labels where it is 0 and ignores any
# other mask column, so under another name it would train on the user's text without a warning.
LOSS_MASK_COLUMN = "assistant_masks"
SHARD_GLOB = "shard-*.parquet"


class ShardsVersionError(InputError):
    """A manifest or shard file of a shards schema version this reader does not know."""


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


class TokenizedConversation(BaseModel):
    """One conversation rendered with a chat template: token ids and the supervise mask.

    `loss_mask[i]` is 1 where token i is trained on (assistant content and its end-of-turn token),
    0 elsewhere; unshifted, aligned with `input_ids`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    conversation_id: str
    input_ids: tuple[int, ...]
    loss_mask: tuple[int, ...]
    # Where the conversation was read, so a drop at the packing step is traced to its input record.
    input_file: str | None = None
    record_index: int | None = None


def _shard_schema(fields: list[pa.Field], kind: str) -> pa.Schema:
    return pa.schema(
        fields,
        metadata={
            SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode(),
            SHARDS_VERSION_KEY: SHARDS_SCHEMA_VERSION.encode(),
            KIND_KEY: kind.encode(),
        },
    )


# Tokenized conversations between the tokenize and pack steps (not a training shard).
TOKENIZED_SCHEMA = pa.schema(
    [
        pa.field("conversation_id", pa.string(), nullable=False),
        pa.field("input_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("loss_mask", pa.list_(pa.uint8()), nullable=False),
        pa.field("input_file", pa.string(), nullable=True),
        pa.field("record_index", pa.int64(), nullable=True),
    ],
    metadata={SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode(), KIND_KEY: b"tokenized"},
)

# One packed row: several whole conversations back to back, no padding. Position ids and
# cu_seqlens are derived from seq_lengths at load time (never stored twice).
PACKED_SHARD_SCHEMA = _shard_schema(
    [
        pa.field("input_ids", pa.list_(pa.int32()), nullable=False),
        pa.field(LOSS_MASK_COLUMN, pa.list_(pa.uint8()), nullable=False),
        pa.field("seq_lengths", pa.list_(pa.int32()), nullable=False),
        pa.field("conversation_ids", pa.list_(pa.string()), nullable=False),
        pa.field("num_tokens", pa.int32(), nullable=False),
        pa.field("num_loss_tokens", pa.int32(), nullable=False),
    ],
    "packed_shard",
)

# One conversation per row, for trainers that pack themselves.
UNPACKED_SHARD_SCHEMA = _shard_schema(
    [
        pa.field("conversation_id", pa.string(), nullable=False),
        pa.field("input_ids", pa.list_(pa.int32()), nullable=False),
        pa.field(LOSS_MASK_COLUMN, pa.list_(pa.uint8()), nullable=False),
        pa.field("num_tokens", pa.int32(), nullable=False),
        pa.field("num_loss_tokens", pa.int32(), nullable=False),
    ],
    "unpacked_shard",
)


class TokenizerInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    sha256: str  # of the tokenizer.json the ids were made with
    vocab_size: int
    special_ids: dict[str, int]  # bos/eos/… token strings used by the template -> id
    # What a trainer sets for generation and padding (curation.shards.write.tokenizer_info says how
    # each is found); None: there is none (a template that writes no BOS token).
    bos_id: int | None = None
    eos_id: int | None = None  # the token that ends every trained answer: generation stops at it
    pad_id: int | None = None  # for trainers that pad; padding is never trained on or attended to


class TurnStrings(BaseModel):
    """The strings a chat template writes around one role's messages."""

    model_config = ConfigDict(extra="forbid")

    prefix: str
    suffix: str
    separator: str


class ChatTemplateInfo(BaseModel):
    """The chat template the shards were rendered with, as data and as a jinja `chat_template`."""

    model_config = ConfigDict(extra="forbid")

    name: str
    # A jinja chat_template (tokenizer_config.json's key, transformers' apply_chat_template) that
    # renders a conversation to the same text as the shards hold, checked when it is made.
    jinja: str
    bos: str
    system: TurnStrings
    user: TurnStrings
    assistant: TurnStrings
    system_placement: str
    default_system: str | None
    # Every supervised span follows these ids and ends with these (the answer's header and its end
    # of turn as this tokenizer encodes them); `shards verify` checks each span against them.
    supervised_opening_ids: list[int]
    supervised_closing_ids: list[int]


class ShardInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str  # relative to the manifest's folder
    sha256: str
    rows: int
    row_groups: int
    tokens: int
    loss_tokens: int
    conversations: int


class PackingInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    algorithm: str  # e.g. "best_fit_decreasing"
    seed: int
    efficiency: float  # tokens / (rows * max_seq_len)
    rows: int
    lower_bound_rows: int  # ceil(total tokens / max_seq_len)
    # Conversations cut to max_seq_len (ShardsConfig.overlong == "truncate").
    truncated: int = 0


class ShardsManifest(BaseModel):
    """manifest.json beside the shards: what they hold and how they were made."""

    model_config = ConfigDict(extra="forbid")

    schema_version: str = SHARDS_SCHEMA_VERSION
    layout: Literal["packed", "unpacked"]
    tokenizer: TokenizerInfo
    template: str
    # None only for shards written without a chat template (tests' synthetic ids).
    chat_template: ChatTemplateInfo | None = None
    max_seq_len: int
    packing: PackingInfo | None = None  # None for the unpacked layout
    shards: list[ShardInfo] = Field(default_factory=list)
    total_rows: int = 0
    total_tokens: int = 0
    total_loss_tokens: int = 0
    total_conversations: int = 0
    run_id: str = ""
    config_hash: str = ""


def shard_schema(layout: str) -> pa.Schema:
    return PACKED_SHARD_SCHEMA if layout == "packed" else UNPACKED_SHARD_SCHEMA


def check_shards_version(version: object, where: str) -> None:
    """Raise ShardsVersionError unless `version` (a manifest's or a file's) is one this reader knows."""
    if version not in KNOWN_SHARDS_SCHEMA_VERSIONS:
        known = ", ".join(sorted(KNOWN_SHARDS_SCHEMA_VERSIONS))
        raise ShardsVersionError(
            f"{where} has shards schema_version {version!r}, which this reader does not know "
            f"(known: {known}); rebuild the shards or upgrade chatsift"
        )


def read_manifest(shards_dir: str | Path) -> ShardsManifest:
    """The manifest.json of a shards folder, validated; a schema_version this reader does not
    know (or none) is refused with ShardsVersionError before the rest is validated."""
    path = Path(shards_dir) / MANIFEST_NAME
    data = json.loads(path.read_text("utf-8"))
    if not isinstance(data, dict):
        raise ShardsVersionError(f"{path} is not a JSON object")
    check_shards_version(data.get("schema_version"), str(path))
    return ShardsManifest.model_validate(data)


# `chatsift shards export`: a shards folder rewritten in another trainer's format, with this manifest beside it.
EXPORT_MANIFEST_NAME = "export_manifest.json"
ExportFormat = Literal["axolotl", "torchtune", "messages", "mds"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)
# Formats of one conversation a row or sample, whatever the shards' layout: their trainers pack themselves.
UNPACKED_ONLY_EXPORTS = ("messages", "mds")
# Where a format's labels are not trained on (Hugging Face's, axolotl's and torchtune's convention).
IGNORE_INDEX = -100


class ExportFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str  # relative to the export's folder
    sha256: str
    rows: int
    tokens: int
    supervised_tokens: int


class ExportNote(BaseModel):
    """What an export could not carry as the shards hold it, for one conversation."""

    model_config = ConfigDict(extra="forbid")

    conversation_id: str
    # "untrained_tail_dropped": untrained tokens after the last trained one, left out;
    # "trainer_appends_eos": the trainer's loader appends an EOS after the last answer and trains it
    reason: Literal["untrained_tail_dropped", "trainer_appends_eos"]
    tokens: int


class ExportManifest(BaseModel):
    """export_manifest.json: what an export holds, and the shards it was made from."""

    model_config = ConfigDict(extra="forbid")

    format: str
    layout: Literal["packed", "unpacked"]
    # sha256 of the source shards' manifest.json, which names every shard file's sha256 in turn
    source_manifest_sha256: str
    source_run_id: str
    source_config_hash: str
    tokenizer: TokenizerInfo
    chat_template: ChatTemplateInfo | None = None
    files: list[ExportFile] = Field(default_factory=list)
    rows: int = 0
    conversations: int = 0
    tokens: int = 0
    supervised_tokens: int = 0
    # conversations the shards hold cut to max_seq_len (PackingInfo.truncated)
    truncated_conversations: int = 0
    # the ledger of what the format could not carry as is, a conversation an entry
    notes: list[ExportNote] = Field(default_factory=list)


def read_export_manifest(folder: str | Path) -> ExportManifest:
    return ExportManifest.model_validate_json((Path(folder) / EXPORT_MANIFEST_NAME).read_text("utf-8"))
