"""remove_listed_rows (a removal step on the Arrow table) writes the part and the drops remove_listed writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from curation.dedupe.common import Removal, remove_listed, remove_listed_rows
from curation.parquet import (
    read_conversation_table,
    read_conversations_parquet,
    write_conversation_table,
    write_conversations,
)
from tests.curation.dedupe.test_minhash import real_conversations


def test_removing_rows_from_the_table_writes_the_bytes_of_removing_conversations(
    sharegpt_sample: list[dict[str, Any]], tmp_path: Path
) -> None:
    convs = real_conversations(sharegpt_sample[:300])
    write_conversations(tmp_path / "part.parquet", convs)
    removals = {
        row: Removal(reason="near_duplicate", duplicate_of=convs[row - 1].id, detail=f"jaccard=0.9{row % 10}")
        for row in (0, 7, 8, 150, 299)
    }
    objects = remove_listed(read_conversations_parquet(tmp_path / "part.parquet"), removals, stage="dedupe_minhash")
    write_conversations(tmp_path / "objects.parquet", objects.kept)
    part = read_conversation_table(tmp_path / "part.parquet")
    table, dropped = remove_listed_rows(part, removals, stage="dedupe_minhash")
    assert write_conversation_table(tmp_path / "table.parquet", table) == 295
    assert (tmp_path / "table.parquet").read_bytes() == (tmp_path / "objects.parquet").read_bytes()
    assert dropped == objects.dropped
    assert [d.conversation_id for d in dropped] == [convs[r].id for r in sorted(removals)]
    whole, no_drops = remove_listed_rows(part, {}, stage="dedupe_exact")
    assert whole.num_rows == 300 and no_drops == []
