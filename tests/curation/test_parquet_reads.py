"""curation.parquet's readers that skip making Conversations: the same texts as the full reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from curation.parquet import (
    SchemaVersionError,
    read_conversations_parquet,
    read_turn_texts,
    write_conversations,
    write_ledger,
)
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
    expected = [[t.content for t in conv.turns] for conv in read_conversations_parquet(path, rows)]
    assert read_turn_texts(path, rows) == expected
    assert [len(texts) for texts in expected] == [2, 4, 1, 4, 2]
    assert read_turn_texts(path, []) == []


def test_turn_texts_of_a_file_that_holds_no_conversations_fail(tmp_path: Path) -> None:
    path = tmp_path / "ledger.parquet"
    write_ledger(path, [])
    with pytest.raises(SchemaVersionError, match="expected a chatsift conversations file"):
        read_turn_texts(path, [0])
