"""Shard files read row group by row group as flat arrays: what every export format is made of."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curation.shards.verify import flat_and_lengths
from schemas.shards import IGNORE_INDEX, LOSS_MASK_COLUMN


class TokenRows(NamedTuple):
    """One row group of shards as flat arrays."""

    ids: np.ndarray
    labels: np.ndarray  # the id where supervised, IGNORE_INDEX elsewhere
    conversations: np.ndarray  # each conversation's length, in order along the flat arrays
    rows: np.ndarray  # each packed row's length (each conversation's, for unpacked shards)
    per_row: np.ndarray  # conversations in each row
    positions: np.ndarray  # each token's position within its conversation


def row_groups(path: Path) -> Iterator[pa.Table]:
    """A shard file's row groups, one at a time."""
    parquet = pq.ParquetFile(path)
    for i in range(parquet.num_row_groups):
        yield parquet.read_row_group(i)


def token_rows(group: pa.Table, source_layout: str) -> TokenRows:
    ids, row_lengths = flat_and_lengths(group["input_ids"])
    mask, _ = flat_and_lengths(group[LOSS_MASK_COLUMN])
    labels = np.where(mask.astype(bool), ids.astype(np.int64), IGNORE_INDEX)
    if source_layout == "packed":
        conversations, per_row = flat_and_lengths(group["seq_lengths"])
    else:
        conversations, per_row = row_lengths, np.ones(len(row_lengths), np.int64)
    starts = np.cumsum(conversations) - conversations
    positions = (np.arange(len(ids)) - np.repeat(starts, conversations)).astype(np.int32)
    return TokenRows(ids.astype(np.int32), labels, conversations, row_lengths, per_row, positions)


def conversation_names(group: pa.Table, source_layout: str) -> list[str]:
    """The ids of a row group's conversations, in the order of token_rows' flat arrays."""
    if source_layout == "packed":
        return pc.list_flatten(group["conversation_ids"].combine_chunks()).to_pylist()
    return group["conversation_id"].to_pylist()
