"""axolotl's columns from one row group of shards, without a run: labels, positions and conversation numbers."""

from __future__ import annotations

import pyarrow as pa

from curation.shards.export import axolotl_table
from schemas.shards import IGNORE_INDEX, PACKED_SHARD_SCHEMA


def _packed_row(lengths: list[int]) -> pa.Table:
    tokens = sum(lengths)
    mask = [i % 2 for i in range(tokens)]
    row = {
        "input_ids": [list(range(100, 100 + tokens))],
        "assistant_masks": [mask],
        "seq_lengths": [lengths],
        "conversation_ids": [[f"c{i}" for i in range(len(lengths))]],
        "num_tokens": [tokens],
        "num_loss_tokens": [sum(mask)],
    }
    return pa.table(row, schema=PACKED_SHARD_SCHEMA)


def test_a_row_of_many_short_conversations_numbers_each_one() -> None:
    lengths = [3] * 300  # more conversations than an int8 can number
    packed = axolotl_table(_packed_row(lengths), source_layout="packed", layout="packed").to_pylist()[0]
    assert packed["attention_mask"] == [k + 1 for k in range(300) for _ in range(3)]
    assert packed["position_ids"] == [0, 1, 2] * 300
    assert packed["labels"][:4] == [IGNORE_INDEX, 101, IGNORE_INDEX, 103]
    unpacked = axolotl_table(_packed_row(lengths), source_layout="packed", layout="unpacked").to_pylist()
    assert len(unpacked) == 300 and unpacked[1]["input_ids"] == [103, 104, 105]
    assert all(set(row["attention_mask"]) == {1} for row in unpacked)
