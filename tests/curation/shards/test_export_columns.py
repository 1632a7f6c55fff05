"""axolotl's columns from one row group of shards, without a run: labels, positions and conversation numbers."""

from __future__ import annotations

import numpy as np
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


def test_foundry_turns_carry_the_mask_and_name_what_they_cannot() -> None:
    """LLM Foundry's turns from a mask: each untrained run then trained run is a turn; an untrained tail is left
    out (counted), and a last answer without the EOS is flagged, since LLM Foundry's collator appends one."""
    from curation.shards.export_mds import foundry_turns

    ids = np.arange(10, 20)
    #                    h  h  a  a  u  u  r  r  a  a   (header, answer, user, refusal kept untrained, answer)
    supervised = np.array([0, 0, 1, 1, 0, 0, 0, 0, 1, 1])
    turns = foundry_turns(ids, supervised, eos_id=19)
    assert [(t["input_ids"], t["labels"]) for t in turns.turns] == [([10, 11], [12, 13]), ([14, 15, 16, 17], [18, 19])]
    assert (turns.untrained_tail, turns.appends_eos) == (0, False)
    tail = foundry_turns(ids, np.array([0, 0, 1, 1, 0, 0, 0, 0, 0, 0]), eos_id=13)
    assert (len(tail.turns), tail.untrained_tail, tail.appends_eos) == (1, 6, False)
    cut = foundry_turns(ids, supervised, eos_id=2)  # the last answer does not end in the EOS (cut, or another token)
    assert cut.appends_eos
