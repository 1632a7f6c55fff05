"""Streaming reader of chatsift's packed training shards for torch DataLoaders.

The unit of work is one Parquet row group (curation.shards.write writes row groups of
ShardsConfig.rows_per_row_group rows). Each epoch the run's (file, row_group) pairs are shuffled
with random.Random(seed + epoch), split across ranks, and each rank's share is split across its
DataLoader workers by stride. A worker reads one row group at a time, never a whole file.

This module imports only schemas, torch, pyarrow and the standard library (never curation or
flows), so a training image needs nothing of the curation pipeline.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from schemas.shards import LOSS_MASK_COLUMN, SHARDS_VERSION_KEY, ShardsManifest, check_shards_version, read_manifest

__all__ = ["PackedShardDataset", "row_group_plan"]

_COLUMNS = ["input_ids", LOSS_MASK_COLUMN, "seq_lengths", "conversation_ids"]


def _all_row_groups(manifest_or_row_groups: ShardsManifest | Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    if isinstance(manifest_or_row_groups, ShardsManifest):
        return [(info.file, i) for info in manifest_or_row_groups.shards for i in range(info.row_groups)]
    return [(str(file), int(group)) for file, group in manifest_or_row_groups]


def row_group_plan(
    manifest_or_row_groups: ShardsManifest | Sequence[tuple[str, int]],
    *,
    rank: int,
    world_size: int,
    num_workers: int,
    worker_id: int,
    epoch: int,
    seed: int,
) -> list[tuple[str, int]]:
    """The (file, row_group) pairs that worker `worker_id` of rank `rank` reads in `epoch`, in order.

    `manifest_or_row_groups` is a ShardsManifest (all row groups of all its shards) or the
    (file, row_group) pairs themselves. They are shuffled with random.Random(seed + epoch), so
    every rank and worker computes the same order without talking to the others.

    Every rank gets the same number of row groups, ceil(n / world_size), so ranks take equal step
    counts. When n does not divide evenly, the shuffled list is padded by wrapping around to its
    start (as torch's DistributedSampler does), so a few row groups are read twice in that epoch;
    otherwise every row group is read exactly once across all ranks x workers. Ranks take the
    padded list by stride (rank, rank + world_size, ...), and the workers of a rank split the
    rank's list by stride too (workers of one rank may differ by one row group; the DataLoader
    merges them). Only the very last row group of a run may hold fewer rows than the others, so
    row counts per rank can differ by less than one row group.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in a world of size {world_size}")
    if num_workers < 1 or not 0 <= worker_id < num_workers:
        raise ValueError(f"worker_id {worker_id} is not one of {num_workers} workers")
    pairs = _all_row_groups(manifest_or_row_groups)
    if not pairs:
        return []
    random.Random(seed + epoch).shuffle(pairs)
    total = math.ceil(len(pairs) / world_size) * world_size
    padded = [pairs[i % len(pairs)] for i in range(total)]
    return padded[rank::world_size][worker_id::num_workers]


def _list_parts(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, values) of a list column, the offsets indexing into the values."""
    array = column.combine_chunks()
    return array.offsets.to_numpy(), array.values.to_numpy(zero_copy_only=False)


def _rows(table: pa.Table) -> Iterator[dict[str, Any]]:
    ids_offsets, ids = _list_parts(table.column("input_ids"))
    mask_offsets, mask = _list_parts(table.column(LOSS_MASK_COLUMN))
    len_offsets, lengths = _list_parts(table.column("seq_lengths"))
    conversation_ids = table.column("conversation_ids").to_pylist()
    for row in range(table.num_rows):
        a, b = int(ids_offsets[row]), int(ids_offsets[row + 1])
        c, d = int(mask_offsets[row]), int(mask_offsets[row + 1])
        e, f = int(len_offsets[row]), int(len_offsets[row + 1])
        yield {
            "input_ids": torch.from_numpy(ids[a:b].astype(np.int64)),
            "loss_mask": torch.from_numpy(mask[c:d].astype(np.uint8)),
            "seq_lengths": torch.from_numpy(lengths[e:f].astype(np.int64)),
            "conversation_ids": [str(x) for x in conversation_ids[row]],
        }


class PackedShardDataset(IterableDataset[dict[str, Any]]):
    """Rows of a packed shards folder, streamed one row group at a time.

    Each row is a dict: `input_ids` (torch.long, 1-D), `loss_mask` (the shard's LOSS_MASK_COLUMN,
    torch.uint8, 1-D, unshifted, aligned with input_ids), `seq_lengths` (torch.long, the lengths of
    the conversations packed in the row, summing to len(input_ids)) and `conversation_ids`
    (list[str]). Rows of a row group come in file order; the row groups come in row_group_plan's
    order for this rank, worker and epoch. Call set_epoch(epoch) before each epoch, as with DistributedSampler.
    """

    def __init__(self, shards_dir: str | Path, *, rank: int = 0, world_size: int = 1, seed: int = 0) -> None:
        super().__init__()
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in a world of size {world_size}")
        self.shards_dir = Path(shards_dir)
        self.manifest = read_manifest(self.shards_dir)
        if self.manifest.layout != "packed":
            raise ValueError(
                f"{self.shards_dir} holds {self.manifest.layout!r} shards; PackedShardDataset reads 'packed'"
            )
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.epoch = 0
        self._sizes: dict[tuple[str, int], int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def plan(self, *, worker_id: int = 0, num_workers: int = 1) -> list[tuple[str, int]]:
        return row_group_plan(
            self.manifest,
            rank=self.rank,
            world_size=self.world_size,
            num_workers=num_workers,
            worker_id=worker_id,
            epoch=self.epoch,
            seed=self.seed,
        )

    def row_group_sizes(self) -> dict[tuple[str, int], int]:
        """Rows of every (file, row_group), from the Parquet footers (no data pages read)."""
        if self._sizes is None:
            sizes: dict[tuple[str, int], int] = {}
            for info in self.manifest.shards:
                metadata = pq.read_metadata(self.shards_dir / info.file)
                for group in range(metadata.num_row_groups):
                    sizes[(info.file, group)] = metadata.row_group(group).num_rows
            self._sizes = sizes
        return self._sizes

    def rows_per_rank(self, epoch: int) -> list[int]:
        """Rows each rank reads in `epoch` (every rank computes every rank's count, no communication)."""
        sizes = self.row_group_sizes()
        return [
            sum(
                sizes[pair]
                for pair in row_group_plan(
                    self.manifest,
                    rank=r,
                    world_size=self.world_size,
                    num_workers=1,
                    worker_id=0,
                    epoch=epoch,
                    seed=self.seed,
                )
            )
            for r in range(self.world_size)
        ]

    def _read_row_group(self, file: str, group: int) -> pa.Table:
        with pq.ParquetFile(self.shards_dir / file) as parquet:
            metadata = parquet.schema_arrow.metadata or {}
            check_shards_version(metadata.get(SHARDS_VERSION_KEY, b"").decode(), str(self.shards_dir / file))
            return parquet.read_row_group(group, columns=_COLUMNS)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker_id, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        for file, group in self.plan(worker_id=worker_id, num_workers=num_workers):
            yield from _rows(self._read_row_group(file, group))
