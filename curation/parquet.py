"""Parquet in and out for conversations, the drop ledger and tokenized rows: explicit schemas, atomic writes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas import CONVERSATION_SCHEMA, LEDGER_SCHEMA, SCHEMA_VERSION, Conversation, Dropped, Provenance, Turn
from schemas.arrow import KIND_KEY, READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION_KEY
from schemas.errors import InputError
from schemas.files import atomic_target
from schemas.shards import TOKENIZED_SCHEMA, TokenizedConversation


class SchemaVersionError(InputError):
    """A Parquet file written by another chatsift schema version (or not by chatsift)."""


def atomic_write_table(path: Path, table: pa.Table, *, schema: pa.Schema) -> None:
    """Write a Parquet file (zstd) with the given explicit schema, atomically."""
    with atomic_target(path) as tmp:
        pq.write_table(table.cast(schema), tmp, compression="zstd")


def conversations_to_table(convs: Iterable[Conversation]) -> pa.Table:
    rows = [c.model_dump(mode="python") for c in convs]
    return pa.Table.from_pylist(rows, schema=CONVERSATION_SCHEMA)


def ledger_to_table(dropped: Iterable[Dropped]) -> pa.Table:
    rows = [d.model_dump(mode="python") for d in dropped]
    return pa.Table.from_pylist(rows, schema=LEDGER_SCHEMA)


def write_conversations(path: Path, convs: Iterable[Conversation]) -> int:
    """Write conversations to `path`; returns how many were written."""
    return write_conversation_table(path, conversations_to_table(convs))


def write_ledger(path: Path, dropped: Iterable[Dropped]) -> int:
    """Write drop records to `path`; returns how many were written."""
    table = ledger_to_table(dropped)
    atomic_write_table(path, table, schema=LEDGER_SCHEMA)
    return table.num_rows


def _read_checked(path: Path, kind: str) -> pa.Table:
    check_parquet_kind(path, kind)
    return pq.read_table(path)


def check_parquet_kind(path: Path, kind: str) -> None:
    """Raise SchemaVersionError unless `path` is a chatsift `kind` file of a readable schema version (footer only)."""
    schema = pq.read_schema(path)
    meta = schema.metadata or {}
    version = meta.get(SCHEMA_VERSION_KEY, b"").decode()
    found_kind = meta.get(KIND_KEY, b"").decode()
    if found_kind != kind or version not in READABLE_SCHEMA_VERSIONS:
        raise SchemaVersionError(
            f"{path}: expected a chatsift {kind} file of schema version {SCHEMA_VERSION}, "
            f"found kind={found_kind or 'none'} version={version or 'none'}; re-run the stage that wrote it"
        )


def _conversation_from_row(row: dict) -> Conversation:
    # The Arrow schema already guarantees the types, so skip re-validation on this hot path.
    return Conversation.model_construct(
        id=row["id"],
        source=row["source"],
        model=row["model"],
        title=row["title"],
        turns=tuple(Turn.model_construct(**t) for t in row["turns"]),
        parent_id=row["parent_id"],
        split_index=row["split_index"],
        provenance=Provenance.model_construct(**row["provenance"]),
    )


def read_conversations_parquet(path: Path, rows: Sequence[int] | None = None) -> list[Conversation]:
    """Read a conversation Parquet file written by write_conversations: every record, or those at `rows`
    (in that order), the others never made into Python objects."""
    if rows is None:
        return conversations_from_table(read_conversation_table(path))
    check_parquet_kind(path, "conversations")
    # polars decodes the wanted rows alone: a few rows of a real part in ~30 ms, against 150-700 ms
    # for reading its whole table (explore.html and the contamination report read a few of each part).
    found = pl.scan_parquet(path).with_row_index("__row").filter(pl.col("__row").is_in(list(rows))).collect()
    by_row = dict(zip(found.get_column("__row").to_list(), found.drop("__row").iter_rows(named=True), strict=True))
    return [_conversation_from_row(by_row[row]) for row in rows]


def read_conversation_table(path: Path) -> pa.Table:
    """A conversation Parquet file written by write_conversations, as the Arrow table (checked)."""
    return _read_checked(path, "conversations")


def conversations_from_table(table: pa.Table) -> list[Conversation]:
    return [_conversation_from_row(row) for row in table.to_pylist()]


def write_conversation_table(path: Path, table: pa.Table) -> int:
    """Write rows of a conversation table (read_conversation_table's) as write_conversations writes them."""
    atomic_write_table(path, table, schema=CONVERSATION_SCHEMA)
    return table.num_rows


def read_turn_texts(path: Path, rows: Sequence[int]) -> list[list[str]]:
    """The turns' texts of the conversations at `rows` (in that order) of a file written by write_conversations,
    read from its turns column alone: no Conversation is made (for the MinHash verification, a third of whose
    time went to making them)."""
    check_parquet_kind(path, "conversations")
    turns = pq.read_table(path, columns=["turns"]).column("turns").take(pa.array(rows, pa.int64())).combine_chunks()
    texts = turns.flatten().field("content").to_pylist()
    ends = np.cumsum(pc.list_value_length(turns).fill_null(0).to_numpy(zero_copy_only=False)).tolist()
    return [texts[start:end] for start, end in zip([0, *ends], ends, strict=False)]


def iter_conversation_batches(paths: Iterable[Path]) -> Iterator[list[Conversation]]:
    for path in paths:
        yield read_conversations_parquet(path)


def read_ledger(path: Path) -> list[Dropped]:
    """Read a ledger Parquet file written by write_ledger."""
    table = _read_checked(path, "ledger")
    return [Dropped.model_construct(**row) for row in table.to_pylist()]


def write_tokenized(path: Path, tokenized: Iterable[TokenizedConversation]) -> int:
    """Write tokenized conversations (TOKENIZED_SCHEMA) for the packing step.

    The id and mask lists are built from one flat numpy array each (Arrow's list layout: values and
    offsets), not from a Python list per row: ~5M ids a part of the real sample."""
    rows = list(tokenized)
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum(np.fromiter((len(t.input_ids) for t in rows), dtype=np.int32, count=len(rows)), out=offsets[1:])
    total = int(offsets[-1])
    ids = np.fromiter(chain.from_iterable(t.input_ids for t in rows), dtype=np.int32, count=total)
    mask = np.fromiter(chain.from_iterable(t.loss_mask for t in rows), dtype=np.uint8, count=total)
    table = pa.table(
        {
            "conversation_id": pa.array([t.conversation_id for t in rows], pa.string()),
            "input_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(ids)),
            "loss_mask": pa.ListArray.from_arrays(pa.array(offsets), pa.array(mask)),
            "input_file": pa.array([t.input_file for t in rows], pa.string()),
            "record_index": pa.array([t.record_index for t in rows], pa.int64()),
        }
    )
    atomic_write_table(path, table, schema=TOKENIZED_SCHEMA)
    return len(rows)


def read_tokenized(path: Path) -> list[TokenizedConversation]:
    """Rows written by write_tokenized, each list sliced from its column's flat values."""
    table = pq.read_table(path)
    ids, masks = (table.column(name).combine_chunks() for name in ("input_ids", "loss_mask"))
    id_offsets, id_values = ids.offsets.to_numpy().tolist(), ids.values.to_numpy()
    mask_offsets, mask_values = masks.offsets.to_numpy().tolist(), masks.values.to_numpy()
    columns = (table.column(name).to_pylist() for name in ("conversation_id", "input_file", "record_index"))
    # One int object per vocabulary entry, shared by every token that carries it (an object array indexed by the
    # ids): pack holds every id of the run, and a fresh int per token costs 28 bytes beside its 8-byte slot, 90K
    # conversations took pack to ~7 GB. 18 bytes a token held instead of 48 (bench.shards).
    shareable = len(id_values) > 0 and int(id_values.min()) >= 0
    vocabulary = np.arange(int(id_values.max()) + 1 if shareable else 0).astype(object)
    all_ids = vocabulary[id_values].tolist() if shareable else id_values.tolist()
    all_masks = mask_values.tolist()  # 0 and 1: ints Python shares already
    # Typed by TOKENIZED_SCHEMA already: skip re-validation of millions of ids.
    return [
        TokenizedConversation.model_construct(
            conversation_id=conversation_id,
            input_ids=tuple(all_ids[id_offsets[k] : id_offsets[k + 1]]),
            loss_mask=tuple(all_masks[mask_offsets[k] : mask_offsets[k + 1]]),
            input_file=input_file,
            record_index=record_index,
        )
        for k, (conversation_id, input_file, record_index) in enumerate(zip(*columns, strict=True))
    ]
