"""Training shards: packed rows written as zstd Parquet files plus manifest.json, and read back.

An output folder holds shard-00000.parquet, shard-00001.parquet, ... and manifest.json. The
manifest is removed first and written last, so a folder with a manifest is complete. Every file
is written to a temp file and renamed. The same rows and config give byte-identical shard files:
nothing in them depends on the time or the machine (pyarrow's `created_by` names only its own
version).

Shards are cut at row-group boundaries, so every row group except the very last holds exactly
config.rows_per_row_group rows, and ranks or loader workers can split the work by row group.

verify_shards and inspect_shards are in curation.shards.verify; the folder's contract is schemas.shards.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tokenizers import Tokenizer

from curation.shards.chat_templates import ChatTemplate, jinja_chat_template
from curation.shards.pack import PackedRow, packing_info
from curation.shards.tokenization import probe_conversation, supervised_span_edges, tokenize_conversation
from curation.stage import Stage
from schemas.config import ShardsConfig
from schemas.files import atomic_target, atomic_write_text
from schemas.shards import (
    LOSS_MASK_COLUMN,
    MANIFEST_NAME,
    SHARD_GLOB,
    ChatTemplateInfo,
    ShardInfo,
    ShardsManifest,
    TokenizedConversation,
    TokenizerInfo,
    TurnStrings,
    shard_name,
    shard_schema,
)

__all__ = ["WRITE_SHARDS", "chat_template_info", "tokenizer_info", "unpack_row", "write_shards"]

# Until a row group has been measured: 4 bytes per int32 id plus 1 per uint8 mask value, the
# uncompressed size. After that, the compressed bytes per token measured so far.
_UNMEASURED_BYTES_PER_TOKEN = 5.0
# Dictionary encoding makes token columns larger (docs/defaults.md#shards), and
# conversation ids are unique, so no column gains from it.
_PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "use_dictionary": False}


# Names a tokenizer's padding token goes by, where its tokenizer_config.json names none.
_PAD_NAMES = ("<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>")


def _config_token_id(tokenizer: Tokenizer, config: dict[str, Any], key: str) -> int | None:
    value = config.get(key)
    text = value.get("content") if isinstance(value, dict) else value
    return tokenizer.token_to_id(text) if isinstance(text, str) and text else None


def tokenizer_info(
    tokenizer: Tokenizer, spec: str, *, template: ChatTemplate | None = None, tokenizer_config: Path | None = None
) -> TokenizerInfo:
    """What the manifest records of the tokenizer: enough to refuse shards made with another one,
    and the ids a trainer sets. With the template the shards are rendered with:
    - bos_id: the token every conversation opens with, when the template writes a special token there;
    - eos_id: the token every answer ends with, when its end of turn ends in one of the tokenizer's
      added tokens (what the model learns to stop at); else the tokenizer_config's eos_token, else "</s>";
    - pad_id: the tokenizer_config's pad_token, else a token named as padding tokens are, else eos_id
      (what TRL and transformers fall back to; padded positions are never trained or attended to)."""
    serialized = tokenizer.to_str().encode("utf-8")
    added = tokenizer.get_added_tokens_decoder()
    special = {t.content: i for i, t in added.items() if t.special}
    config: dict[str, Any] = json.loads(tokenizer_config.read_text("utf-8")) if tokenizer_config else {}
    bos_id = eos_id = None
    if template is not None:
        opening = tokenize_conversation(probe_conversation(), tokenizer=tokenizer, template=template).input_ids
        bos_id = opening[0] if opening and opening[0] in special.values() else None
        closing = supervised_span_edges(tokenizer, template)[1]
        eos_id = closing[-1] if closing and closing[-1] in added else None
    if eos_id is None:
        eos_id = _config_token_id(tokenizer, config, "eos_token") or tokenizer.token_to_id("</s>")
    pad_id = _config_token_id(tokenizer, config, "pad_token")
    if pad_id is None:
        pad_id = next((i for name in _PAD_NAMES if (i := tokenizer.token_to_id(name)) is not None), eos_id)
    return TokenizerInfo(
        name=spec,
        sha256=hashlib.sha256(serialized).hexdigest(),
        vocab_size=tokenizer.get_vocab_size(),
        special_ids=dict(sorted(special.items(), key=lambda kv: kv[1])),
        bos_id=bos_id,
        eos_id=eos_id,
        pad_id=pad_id,
    )


def chat_template_info(tokenizer: Tokenizer, template: ChatTemplate) -> ChatTemplateInfo:
    """The template as the manifest records it: its strings, a jinja rendering of them, and the ids
    around every supervised span."""
    opening, closing = supervised_span_edges(tokenizer, template)
    return ChatTemplateInfo(
        name=template.name,
        jinja=jinja_chat_template(template),
        bos=template.bos,
        **{role: TurnStrings(**asdict(getattr(template, role))) for role in ("system", "user", "assistant")},
        system_placement=template.system_placement,
        default_system=template.default_system,
        supervised_opening_ids=list(opening),
        supervised_closing_ids=list(closing),
    )


def unpack_row(row: Mapping[str, Any]) -> list[tuple[str, list[int], list[int]]]:
    """(conversation_id, input_ids, loss mask) of each conversation in a shard row (a dict, as
    pyarrow's to_pylist or polars' iter_rows(named=True) give), split by seq_lengths."""
    ids = [int(x) for x in row["input_ids"]]
    mask = [int(x) for x in row[LOSS_MASK_COLUMN]]
    if "conversation_id" in row:  # the unpacked layout: one conversation per row
        return [(str(row["conversation_id"]), ids, mask)]
    pieces: list[tuple[str, list[int], list[int]]] = []
    start = 0
    for conversation_id, length in zip(row["conversation_ids"], row["seq_lengths"], strict=True):
        end = start + int(length)
        pieces.append((str(conversation_id), ids[start:end], mask[start:end]))
        start = end
    if start != len(ids) or len(ids) != len(mask):
        raise ValueError(f"seq_lengths sum to {start}, but the row has {len(ids)} ids and {len(mask)} mask values")
    return pieces


def list_array(values: np.ndarray | list[str], lengths: Sequence[int] | np.ndarray) -> pa.Array:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def _flat(convs: Sequence[TokenizedConversation], field: str, dtype: type[np.generic], count: int) -> np.ndarray:
    chained = itertools.chain.from_iterable(getattr(c, field) for c in convs)
    return np.fromiter(chained, dtype=dtype, count=count)


def _group_table(rows: Sequence[PackedRow], layout: str) -> pa.Table:
    """One row group as an Arrow table with the layout's exact schema."""
    convs = [c for row in rows for c in row.conversations]
    conv_tokens = [len(c.input_ids) for c in convs]
    conv_loss = [sum(c.loss_mask) for c in convs]
    total = sum(conv_tokens)
    ids = _flat(convs, "input_ids", np.int32, total)
    mask = _flat(convs, "loss_mask", np.uint8, total)
    if layout == "unpacked":
        columns = [
            pa.array([c.conversation_id for c in convs], type=pa.string()),
            list_array(ids, conv_tokens),
            list_array(mask, conv_tokens),
            pa.array(conv_tokens, type=pa.int32()),
            pa.array(conv_loss, type=pa.int32()),
        ]
        return pa.Table.from_arrays(columns, schema=shard_schema("unpacked"))
    per_row = [len(row.conversations) for row in rows]
    row_bounds = np.cumsum([0, *per_row])
    row_tokens = [sum(conv_tokens[a:b]) for a, b in itertools.pairwise(row_bounds)]
    row_loss = [sum(conv_loss[a:b]) for a, b in itertools.pairwise(row_bounds)]
    columns = [
        list_array(ids, row_tokens),
        list_array(mask, row_tokens),
        list_array(np.array(conv_tokens, dtype=np.int32), per_row),
        list_array([c.conversation_id for c in convs], per_row),
        pa.array(row_tokens, type=pa.int32()),
        pa.array(row_loss, type=pa.int32()),
    ]
    return pa.Table.from_arrays(columns, schema=shard_schema("packed"))


def _row_groups(rows: Iterable[PackedRow], *, config: ShardsConfig) -> Iterator[list[PackedRow]]:
    """Rows cut into row groups, checked against what the shards promise."""
    if config.layout == "unpacked":
        rows = (PackedRow((conv,)) for row in rows for conv in row.conversations)
    seen: set[str] = set()
    group: list[PackedRow] = []
    for row in rows:
        if row.num_tokens > config.max_seq_len:
            raise ValueError(f"a row of {row.num_tokens} tokens is longer than max_seq_len {config.max_seq_len}")
        for conversation_id in row.conversation_ids:
            if conversation_id in seen:
                raise ValueError(f"conversation id {conversation_id!r} appears more than once")
            seen.add(conversation_id)
        group.append(row)
        if len(group) == config.rows_per_row_group:
            yield group
            group = []
    if group:
        yield group


@dataclass
class _SizeMeter:
    """Compressed bytes per token measured over the row groups written so far."""

    group_bytes: int = 0
    group_tokens: int = 0

    def estimate(self, tokens: int) -> float:
        if not self.group_tokens:
            return _UNMEASURED_BYTES_PER_TOKEN * tokens
        return self.group_bytes / self.group_tokens * tokens


def _sha256_and_sync(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
        # The rename that follows is atomic, but only durable if the data reached the disk first.
        os.fsync(f.fileno())
    return digest.hexdigest()


def _write_shard(
    path: Path,
    first: list[PackedRow],
    groups: Iterator[list[PackedRow]],
    *,
    config: ShardsConfig,
    meter: _SizeMeter,
) -> tuple[ShardInfo, list[PackedRow] | None]:
    """Write row groups from `first` on until the next would take the file past
    config.target_shard_bytes; returns the shard's info and the group left over, if any."""
    info = ShardInfo(file=path.name, sha256="", rows=0, row_groups=0, tokens=0, loss_tokens=0, conversations=0)
    group: list[PackedRow] | None = first
    with atomic_target(path) as tmp:
        with (
            pa.OSFile(str(tmp), "wb") as sink,
            pq.ParquetWriter(sink, shard_schema(config.layout), **_PARQUET_OPTIONS) as writer,
        ):
            while group is not None:
                tokens = sum(row.num_tokens for row in group)
                if info.row_groups and sink.tell() + meter.estimate(tokens) > config.target_shard_bytes:
                    break
                before = sink.tell()
                writer.write_table(_group_table(group, config.layout), row_group_size=len(group))
                meter.group_bytes += sink.tell() - before
                meter.group_tokens += tokens
                info.rows += len(group)
                info.row_groups += 1
                info.tokens += tokens
                info.loss_tokens += sum(row.num_loss_tokens for row in group)
                info.conversations += sum(len(row.conversations) for row in group)
                group = next(groups, None)
        info.sha256 = _sha256_and_sync(tmp)
    return info, group


def write_shards(
    rows: Iterable[PackedRow],
    out_dir: Path,
    *,
    config: ShardsConfig,
    tokenizer_info: TokenizerInfo,
    template: str,
    chat_template: ChatTemplateInfo | None = None,
    run_id: str,
    config_hash: str,
    truncated: int = 0,
) -> ShardsManifest:
    """Write `rows` (from pack_conversations, in their order) as shards in `out_dir`, then the
    manifest; returns the manifest. With layout "unpacked" each conversation becomes one row.
    `truncated` (how many conversations were cut to max_seq_len) goes into the manifest.

    Shard files left from an earlier run that this one does not rewrite are removed, so a glob
    over shard-*.parquet reads exactly what the manifest lists. No rows: no shards, a manifest.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)

    groups = _row_groups(rows, config=config)
    meter = _SizeMeter()
    shards: list[ShardInfo] = []
    group = next(groups, None)
    while group is not None:
        info, group = _write_shard(out_dir / shard_name(len(shards)), group, groups, config=config, meter=meter)
        shards.append(info)

    written = {info.file for info in shards}
    for stale in sorted(out_dir.glob(SHARD_GLOB)):
        if stale.name not in written:
            stale.unlink()

    total_rows = sum(info.rows for info in shards)
    total_tokens = sum(info.tokens for info in shards)
    manifest = ShardsManifest(
        layout=config.layout,
        tokenizer=tokenizer_info,
        template=template,
        chat_template=chat_template,
        max_seq_len=config.max_seq_len,
        packing=packing_info(tokens=total_tokens, rows=total_rows, config=config, truncated=truncated)
        if config.layout == "packed"
        else None,
        shards=shards,
        total_rows=total_rows,
        total_tokens=total_tokens,
        total_loss_tokens=sum(info.loss_tokens for info in shards),
        total_conversations=sum(info.conversations for info in shards),
        run_id=run_id,
        config_hash=config_hash,
    )
    atomic_write_text(out_dir / MANIFEST_NAME, manifest.model_dump_json(indent=2) + "\n")
    return manifest


# Run-wide, after PACK: the shards and the manifest, which names the tokenizer.
WRITE_SHARDS = Stage("shards", write_shards, config="shards", also_keyed=("tokenizer",))
