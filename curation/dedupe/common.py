"""What exact and near-duplicate removal share: which copy to keep, and removing listed records.

Records are identified by position (part, row), never by id alone: real dumps repeat ids with
different content (20 ids of the 3003 real conversations appear twice, one copy empty).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa

from curation.parquet import conversations_from_table
from schemas import Conversation, Dropped, StageResult
from schemas.ledger import DropReason, Stage

# Sorting ranked records (schemas.arrow.RANKED_RECORD_FIELDS) by these columns puts the copy to
# keep first, exactly as keep_rank does; part and row settle a repeated id.
RANK_ORDER = ["rank_gpt4", "rank_turns", "rank_chars", "id", "part", "row"]

# What the global dedupe steps return, also when they find nothing (REMOVALS_SCHEMA's columns).
FINDINGS_SCHEMA = pl.Schema(
    {"part": pl.Int32, "row": pl.Int32, "reason": pl.String, "duplicate_of": pl.String, "detail": pl.String}
)

# ChatGPT's banner for GPT-4 answers; OpenChat trains on these alone, so they are the copy to keep.
GPT4_MODEL = "Model: GPT-4"


def keep_rank(conv: Conversation) -> tuple[int, int, int, str]:
    """Sort key of the copy to keep among duplicates (smallest first): GPT-4 first, then the most
    turns, then the most characters, then the smallest id, so the choice is deterministic."""
    chars = sum(len(t.content) for t in conv.turns)
    return (0 if conv.model == GPT4_MODEL else 1, -len(conv.turns), -chars, conv.id)


def ranked_record(part: int, row: int, conv: Conversation) -> dict[str, int | str]:
    """The columns of schemas.arrow.RANKED_RECORD_FIELDS for one record: where it is, and its rank."""
    rank_gpt4, rank_turns, rank_chars, conv_id = keep_rank(conv)
    return {
        "part": part,
        "row": row,
        "id": conv_id,
        "rank_gpt4": rank_gpt4,
        "rank_turns": rank_turns,
        "rank_chars": rank_chars,
    }


class Removal(NamedTuple):
    """Why one record is removed, and which record was kept in its place."""

    reason: DropReason
    duplicate_of: str
    detail: str

    def dropped(self, conv: Conversation, stage: Stage) -> Dropped:
        """The ledger record of removing `conv` (the record at this removal's row) in `stage`."""
        return Dropped.of(conv, stage=stage, reason=self.reason, detail=self.detail, duplicate_of=self.duplicate_of)


def remove_listed(convs: Sequence[Conversation], removals: Mapping[int, Removal], *, stage: Stage) -> StageResult:
    """Split `convs` into kept and dropped by row position; `removals` maps row -> Removal."""
    kept: list[Conversation] = []
    dropped: list[Dropped] = []
    for row, conv in enumerate(convs):
        removal = removals.get(row)
        if removal is None:
            kept.append(conv)
            continue
        dropped.append(removal.dropped(conv, stage))
    return StageResult(kept=kept, dropped=dropped, changed={})


def remove_listed_rows(
    table: pa.Table, removals: Mapping[int, Removal], *, stage: Stage
) -> tuple[pa.Table, list[Dropped]]:
    """remove_listed on a conversation table (curation.parquet.read_conversation_table): the kept rows stay
    Arrow, and only the removed become Conversations, for their drop records. A run's removal steps
    rewrite every part; made into objects and back, its kept rows were most of their time."""
    rows = sorted(removals)
    keep = np.ones(table.num_rows, dtype=bool)
    keep[rows] = False
    removed = conversations_from_table(table.take(pa.array(rows, pa.int64())))
    dropped = [removals[row].dropped(conv, stage) for row, conv in zip(rows, removed, strict=True)]
    return table.filter(pa.array(keep)), dropped


def removals_for_part(removals: pl.DataFrame, part: int) -> dict[int, Removal]:
    """The rows of one part that a global dedupe step removes (columns of REMOVALS_SCHEMA)."""
    rows = removals.filter(pl.col("part") == part).select("row", "reason", "duplicate_of", "detail")
    return {
        row: Removal(reason=reason, duplicate_of=duplicate_of, detail=detail)
        for row, reason, duplicate_of, detail in rows.iter_rows()
    }
