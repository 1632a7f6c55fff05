"""`chatsift shards export`: a verified shards folder rewritten in the format another trainer loads.

axolotl, pre-tokenized (docs.axolotl.ai, "Custom Pre-Tokenized Dataset"; no `type:` in the config):
exactly `input_ids`, `attention_mask` and `labels`, where `labels` is `input_ids` on supervised tokens and
-100 elsewhere (unshifted: the model shifts). The per-token mask becomes the labels, so a turn chatsift
does not supervise (a user turn, a zero-weighted refusal) stays at -100.
- unpacked (the default): one conversation a row, for axolotl's own `sample_packing`;
- packed: chatsift's packed rows as they are, plus `position_ids` restarting at every conversation (what
  axolotl's flash-attention path reads to keep packed conversations apart) and `attention_mask` numbering
  the conversations of a row 1, 2, 3 ... (axolotl's multipack convention; 0 would be padding, never written).

torchtune, pre-tokenized (read by chatsift's own builder, train.torchtune_dataset.chatsift_dataset, since
torchtune's dataset builders all tokenize text and mask by role): `tokens` and `labels` in torchtune's
convention (-100, its CROSS_ENTROPY_IGNORE_IDX, where not trained; unshifted: its recipes shift).
- unpacked: one conversation a row; the builder hands them to torchtune's own PackedDataset when asked;
- packed: chatsift's packed rows, plus `input_pos` restarting at every conversation and `seq_lens`, the
  conversations' lengths, which torchtune's padded_collate_packed turns into a block-causal mask.

An export first verifies the source shards (a wrong mask there is refused), writes into a staging folder,
checks what it wrote against the source's figures and the chat template's answer spans, and only then
renames the folder into place: a failed export leaves nothing that looks finished.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.parquet import atomic_write_table
from curation.shards.export_mds import mds_problems, write_mds
from curation.shards.export_messages import read_messages, write_messages
from curation.shards.shard_rows import row_groups, token_rows
from curation.shards.verify import check_supervised_spans, flat_and_lengths, verify_shards
from curation.shards.write import list_array
from schemas.arrow import KIND_KEY, SCHEMA_VERSION, SCHEMA_VERSION_KEY
from schemas.errors import ConfigError, InputError
from schemas.files import atomic_write_text, file_sha256
from schemas.shards import (
    EXPORT_FORMATS,
    EXPORT_MANIFEST_NAME,
    IGNORE_INDEX,
    MANIFEST_NAME,
    UNPACKED_ONLY_EXPORTS,
    ExportFile,
    ExportManifest,
    ExportNote,
    ShardsManifest,
    read_export_manifest,
    read_manifest,
)


def _schema(fields: list[pa.Field], kind: str) -> pa.Schema:
    return pa.schema(fields, metadata={SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode(), KIND_KEY: kind.encode()})


_AXOLOTL_FIELDS = [
    pa.field("input_ids", pa.list_(pa.int32()), nullable=False),
    # int32: in a packed row it numbers the conversations, which can pass int8's 127 in long rows
    pa.field("attention_mask", pa.list_(pa.int32()), nullable=False),
    pa.field("labels", pa.list_(pa.int64()), nullable=False),
]
AXOLOTL_UNPACKED_SCHEMA = _schema(_AXOLOTL_FIELDS, "axolotl_pretokenized")
AXOLOTL_PACKED_SCHEMA = _schema(
    [*_AXOLOTL_FIELDS, pa.field("position_ids", pa.list_(pa.int32()), nullable=False)], "axolotl_pretokenized_packed"
)
_TORCHTUNE_FIELDS = [
    pa.field("tokens", pa.list_(pa.int32()), nullable=False),
    pa.field("labels", pa.list_(pa.int64()), nullable=False),
]
TORCHTUNE_UNPACKED_SCHEMA = _schema(_TORCHTUNE_FIELDS, "torchtune_pretokenized")
TORCHTUNE_PACKED_SCHEMA = _schema(
    [
        *_TORCHTUNE_FIELDS,
        pa.field("input_pos", pa.list_(pa.int32()), nullable=False),
        pa.field("seq_lens", pa.list_(pa.int32()), nullable=False),
    ],
    "torchtune_pretokenized_packed",
)


def axolotl_table(group: pa.Table, *, source_layout: str, layout: str) -> pa.Table:
    """One row group of shards in axolotl's pre-tokenized columns."""
    t = token_rows(group, source_layout)
    if layout == "unpacked":
        columns = {
            "input_ids": list_array(t.ids, t.conversations),
            "attention_mask": list_array(np.ones(len(t.ids), np.int32), t.conversations),
            "labels": list_array(t.labels, t.conversations),
        }
        return pa.table(columns, schema=AXOLOTL_UNPACKED_SCHEMA)
    # each conversation's number within its row (1, 2, ...)
    number = np.arange(len(t.conversations)) - np.repeat(np.cumsum(t.per_row) - t.per_row, t.per_row) + 1
    columns = {
        "input_ids": list_array(t.ids, t.rows),
        "attention_mask": list_array(np.repeat(number, t.conversations).astype(np.int32), t.rows),
        "labels": list_array(t.labels, t.rows),
        "position_ids": list_array(t.positions, t.rows),
    }
    return pa.table(columns, schema=AXOLOTL_PACKED_SCHEMA)


def torchtune_table(group: pa.Table, *, source_layout: str, layout: str) -> pa.Table:
    """One row group of shards in the columns chatsift's torchtune builder reads (torchtune's own names)."""
    t = token_rows(group, source_layout)
    if layout == "unpacked":
        columns = {"tokens": list_array(t.ids, t.conversations), "labels": list_array(t.labels, t.conversations)}
        return pa.table(columns, schema=TORCHTUNE_UNPACKED_SCHEMA)
    columns = {
        "tokens": list_array(t.ids, t.rows),
        "labels": list_array(t.labels, t.rows),
        "input_pos": list_array(t.positions, t.rows),
        "seq_lens": list_array(t.conversations.astype(np.int32), t.per_row),
    }
    return pa.table(columns, schema=TORCHTUNE_PACKED_SCHEMA)


class _TokenFormat(NamedTuple):
    """Where a token format keeps what its check reads."""

    ids: str  # the token ids' column
    positions: str  # packed rows: each token's position within its conversation
    schemas: dict[str, pa.Schema]  # by layout
    table: Callable[..., pa.Table]  # one row group of shards in the format's columns


_TOKEN_FORMATS = {
    "axolotl": _TokenFormat(
        "input_ids",
        "position_ids",
        {"unpacked": AXOLOTL_UNPACKED_SCHEMA, "packed": AXOLOTL_PACKED_SCHEMA},
        axolotl_table,
    ),
    "torchtune": _TokenFormat(
        "tokens",
        "input_pos",
        {"unpacked": TORCHTUNE_UNPACKED_SCHEMA, "packed": TORCHTUNE_PACKED_SCHEMA},
        torchtune_table,
    ),
}


def export_shards(
    shards_dir: Path,
    out_dir: Path,
    *,
    fmt: str,
    layout: str = "unpacked",
    conversations_dir: Path | None = None,
    file_format: str = "jsonl",
) -> ExportManifest:
    """Write the shards in `fmt` to `out_dir` (which must not exist yet), with export_manifest.json beside
    them; raises InputError for unsound shards or an export that fails its own check, ConfigError for a
    format or layout that cannot be made. "messages" reads the text from `conversations_dir` (default: the
    run's conversations/ beside the shards) and writes `file_format` ("jsonl" or "parquet")."""
    shards_dir, out_dir = Path(shards_dir), Path(out_dir)
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(f"{out_dir} already holds files: export into a new folder")
    problems = verify_shards(shards_dir)
    if problems:
        raise InputError(f"{shards_dir} fails `chatsift shards verify`, so it is not exported: " + "; ".join(problems))
    source = read_manifest(shards_dir)
    if layout == "packed" and source.layout != "packed":
        raise ConfigError(f"{shards_dir} holds unpacked shards: export them unpacked, or build packed shards")
    if fmt in UNPACKED_ONLY_EXPORTS and layout != "unpacked":
        raise ConfigError(f"the {fmt} export is one conversation a record (its trainers pack): layout unpacked")
    if fmt == "messages" and file_format not in ("jsonl", "parquet"):
        raise ConfigError("the messages export is written as jsonl or parquet")
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        notes: list[ExportNote] = []
        if fmt == "mds":
            files, notes = write_mds(shards_dir, staging, source)
        elif fmt == "messages":
            files = [
                write_messages(
                    shards_dir, staging, source, conversations_dir=conversations_dir, file_format=file_format
                )
            ]
        else:
            files = _write_token_rows(shards_dir, staging, source, fmt, layout)
        manifest = _export_manifest(shards_dir, source, fmt=fmt, layout=layout, files=files, notes=notes)
        lost = _lost_on_the_way(manifest, source)
        if lost:
            raise InputError(f"the {fmt} export does not hold what the shards do: " + "; ".join(lost))
        atomic_write_text(staging / EXPORT_MANIFEST_NAME, manifest.model_dump_json(indent=2))
        problems = check_export(staging)
        if problems:
            raise InputError(f"the {fmt} export failed its own check: " + "; ".join(problems))
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked above)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _write_token_rows(
    shards_dir: Path, folder: Path, source: ShardsManifest, fmt: str, layout: str
) -> list[ExportFile]:
    schema, make_table = _TOKEN_FORMATS[fmt].schemas[layout], _TOKEN_FORMATS[fmt].table
    files: list[ExportFile] = []
    for index, info in enumerate(source.shards):
        tables = [make_table(g, source_layout=source.layout, layout=layout) for g in row_groups(shards_dir / info.file)]
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        path = folder / f"data-{index:05d}.parquet"
        atomic_write_table(path, table, schema=schema)
        labels, _ = flat_and_lengths(table["labels"])
        files.append(
            ExportFile(
                file=path.name,
                sha256=file_sha256(path),
                rows=table.num_rows,
                tokens=len(labels),
                supervised_tokens=int((labels != IGNORE_INDEX).sum()),
            )
        )
    return files


def _lost_on_the_way(manifest: ExportManifest, source: ShardsManifest) -> list[str]:
    """What the source says must survive an export unchanged and did not: every conversation and every
    supervised token, and every token where the export is tokens (a messages export is text) but those
    its notes say were left out."""
    left_out = sum(n.tokens for n in manifest.notes if n.reason == "untrained_tail_dropped")
    expected = {
        "conversations": source.total_conversations,
        "tokens": source.total_tokens - left_out if manifest.format != "messages" else 0,
        "supervised tokens": source.total_loss_tokens,
    }
    found = {
        "conversations": manifest.conversations,
        "tokens": manifest.tokens,
        "supervised tokens": manifest.supervised_tokens,
    }
    return [f"{name}: {found[name]}, the shards {expected[name]}" for name in expected if found[name] != expected[name]]


def _export_manifest(
    shards_dir: Path,
    source: ShardsManifest,
    *,
    fmt: str,
    layout: str,
    files: list[ExportFile],
    notes: list[ExportNote],
) -> ExportManifest:
    """The manifest of an export of `files` made from the shards in `shards_dir`."""
    return ExportManifest(
        format=fmt,
        layout="packed" if layout == "packed" else "unpacked",
        source_manifest_sha256=file_sha256(shards_dir / MANIFEST_NAME),
        source_run_id=source.run_id,
        source_config_hash=source.config_hash,
        tokenizer=source.tokenizer,
        chat_template=source.chat_template,
        files=files,
        rows=sum(f.rows for f in files),
        # a row is a conversation unless the rows are packed
        conversations=source.total_conversations if layout == "packed" else sum(f.rows for f in files),
        tokens=sum(f.tokens for f in files),
        supervised_tokens=sum(f.supervised_tokens for f in files),
        truncated_conversations=source.packing.truncated if source.packing else 0,
        notes=notes,
    )


def check_export(folder: Path) -> list[str]:
    """Every problem in an export: files against the manifest; for the token formats, labels that are not the
    token ids, supervised tokens outside an answer span of the chat template, masks and conversation lengths
    that do not fit the rows; for messages, records that are not one conversation of roles, text and a
    training flag each."""
    manifest = read_export_manifest(folder)
    problems: list[str] = []
    for info in manifest.files:
        path = folder / info.file
        if file_sha256(path) != info.sha256:
            problems.append(f"{info.file}: sha256 differs from {EXPORT_MANIFEST_NAME}")
        if manifest.format == "messages":
            problems.extend(_messages_problems(path, info))
            continue
        if manifest.format == "mds":
            file_problems, samples = mds_problems(folder, info)
            problems.extend(file_problems)
            if samples and manifest.chat_template is not None:
                ids = np.concatenate([i for i, _ in samples])
                ends = np.cumsum([len(i) for i, _ in samples])
                check_supervised_spans(
                    ids,
                    np.concatenate([labels != IGNORE_INDEX for _, labels in samples]).astype(np.uint8),
                    ends,
                    manifest.chat_template,
                    truncated=manifest.truncated_conversations > 0,
                    row_starts=np.concatenate([[0], ends[:-1]]),
                    where=info.file,
                    first_row=0,
                    problems=problems,
                )
            continue
        columns = _TOKEN_FORMATS[manifest.format]
        table = pq.read_table(path)
        ids, lengths = flat_and_lengths(table[columns.ids])
        per_token = [name for name in table.column_names if name not in (columns.ids, "seq_lens")]
        if any(not np.array_equal(lengths, flat_and_lengths(table[name])[1]) for name in per_token):
            problems.append(f"{info.file}: rows whose {', '.join([columns.ids, *per_token])} differ in length")
            continue
        labels, _ = flat_and_lengths(table["labels"])
        supervised = labels != IGNORE_INDEX
        wrong = np.flatnonzero(supervised & (labels != ids))
        if len(wrong):
            problems.append(f"{info.file}: {len(wrong)} labels are neither -100 nor the input id at their position")
        if "attention_mask" in table.column_names and (flat_and_lengths(table["attention_mask"])[0] <= 0).any():
            problems.append(f"{info.file}: attention_mask holds 0 (padding) where every token is real")
        found = (table.num_rows, len(ids), int(supervised.sum()))
        if found != (info.rows, info.tokens, info.supervised_tokens):
            problems.append(
                f"{info.file}: rows, tokens, supervised tokens {found}; the manifest says "
                f"{(info.rows, info.tokens, info.supervised_tokens)}"
            )
        row_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        if columns.positions in table.column_names:
            positions, _ = flat_and_lengths(table[columns.positions])
            conversation_ends = np.append(np.flatnonzero(positions == 0)[1:], len(ids))
            if "seq_lens" in table.column_names:
                problems.extend(_seq_lens_problems(info.file, table["seq_lens"], lengths, conversation_ends))
        else:
            conversation_ends = np.cumsum(lengths)
        if manifest.chat_template is not None and len(ids):
            check_supervised_spans(
                ids,
                supervised.astype(np.uint8),
                conversation_ends,
                manifest.chat_template,
                # a conversation cut to max_seq_len may end inside an answer, without its end of turn
                truncated=manifest.truncated_conversations > 0,
                row_starts=row_starts,
                where=info.file,
                first_row=0,
                problems=problems,
            )
    return problems


def _seq_lens_problems(
    file: str, seq_lens: pa.ChunkedArray, row_lengths: np.ndarray, conversation_ends: np.ndarray
) -> list[str]:
    """torchtune's block-causal mask is built from seq_lens: they must fill each row and agree with the
    positions, or conversations would attend to each other."""
    lengths, per_row = flat_and_lengths(seq_lens)
    row_of = np.repeat(np.arange(len(per_row)), per_row)
    problems = []
    if not np.array_equal(np.bincount(row_of, weights=lengths, minlength=len(row_lengths)), row_lengths):
        problems.append(f"{file}: seq_lens that do not add up to their rows' lengths")
    elif not np.array_equal(np.cumsum(lengths), conversation_ends):
        problems.append(f"{file}: seq_lens that disagree with input_pos on where conversations start")
    return problems


def _messages_problems(path: Path, info: ExportFile) -> list[str]:
    records = read_messages(path)
    problems = []
    if len(records) != info.rows:
        problems.append(f"{info.file}: {len(records)} conversations; the manifest says {info.rows}")
    for record in records:
        messages = record.get("messages")
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and set(m) == {"role", "content", "training"} for m in messages
        ):
            problems.append(f"{info.file}: {record.get('id')!r} is not a list of role, content and training")
            break
        if any(m["training"] and m["role"] != "assistant" for m in messages):
            problems.append(f"{info.file}: {record.get('id')!r} trains a turn that is not an answer")
            break
    return problems
