"""curation.parquet's fast readers and writers: the same texts and bytes as the row-by-row ones."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from curation.parquet import (
    SchemaVersionError,
    atomic_write_table,
    read_conversations_parquet,
    read_tokenized,
    read_turn_texts,
    write_conversations,
    write_ledger,
    write_tokenized,
)
from schemas.shards import TOKENIZED_SCHEMA, TokenizedConversation
from tests.helpers.conversations import conversation


def test_turn_texts_are_those_of_the_conversations_at_the_rows_asked(tmp_path: Path) -> None:
    convs = [
        conversation(*[("user" if t % 2 == 0 else "assistant", f"turn {t} of {k} ünï") for t in range(k % 4 + 1)],
                     id=f"c{k}")
        for k in range(30)
    ]  # fmt: skip
    path = tmp_path / "part.parquet"
    write_conversations(path, convs)
    rows = [29, 3, 0, 3, 17]
    assert read_conversations_parquet(path, rows) == [convs[row] for row in rows]  # the rows alone, in that order
    assert read_conversations_parquet(path) == convs and read_conversations_parquet(path, []) == []
    expected = [[t.content for t in conv.turns] for conv in read_conversations_parquet(path, rows)]
    assert read_turn_texts(path, rows) == expected
    assert [len(texts) for texts in expected] == [2, 4, 1, 4, 2]
    assert read_turn_texts(path, []) == []


def test_turn_texts_of_a_file_that_holds_no_conversations_fail(tmp_path: Path) -> None:
    path = tmp_path / "ledger.parquet"
    write_ledger(path, [])
    with pytest.raises(SchemaVersionError, match="expected a chatsift conversations file"):
        read_turn_texts(path, [0])


def test_tokenized_rows_round_trip_and_are_written_as_arrow_writes_the_rows(tmp_path: Path) -> None:
    """write_tokenized builds its lists from flat arrays: the file is byte for byte the one a table made
    row by row gives, and read_tokenized gives the rows back."""
    rows = [
        TokenizedConversation(
            conversation_id=f"c{k}",
            input_ids=tuple(range(k * 7, k * 7 + 3 + k)),
            loss_mask=tuple((k + j) % 2 for j in range(3 + k)),
            input_file=None if k % 3 else f"in-{k}.json",
            record_index=None if k % 3 else k,
        )
        for k in range(40)
    ]
    rows.append(TokenizedConversation(conversation_id="empty", input_ids=(), loss_mask=()))
    assert write_tokenized(tmp_path / "fast.parquet", rows) == 41
    table = pa.Table.from_pylist([r.model_dump() for r in rows], schema=TOKENIZED_SCHEMA)
    atomic_write_table(tmp_path / "rows.parquet", table, schema=TOKENIZED_SCHEMA)
    assert (tmp_path / "fast.parquet").read_bytes() == (tmp_path / "rows.parquet").read_bytes()
    assert read_tokenized(tmp_path / "fast.parquet") == rows
    assert write_tokenized(tmp_path / "none.parquet", []) == 0 and read_tokenized(tmp_path / "none.parquet") == []


def test_read_tokenized_shares_one_int_per_token_id(tmp_path: Path) -> None:
    """pack holds every id of the run: a repeated id is one int object, not one per token (docs/scaling.md)."""
    rows = [
        TokenizedConversation(conversation_id=f"c{k}", input_ids=(70_000, 1, 70_000 + k), loss_mask=(0, 1, 1))
        for k in range(3)
    ]
    write_tokenized(tmp_path / "ids.parquet", rows)
    read = read_tokenized(tmp_path / "ids.parquet")
    assert read == rows
    assert all(type(i) is int for r in read for i in r.input_ids)
    big = [r.input_ids[0] for r in read] + [read[0].input_ids[2]]
    assert all(i is big[0] for i in big)  # 70,000: far above the ints Python caches itself
