"""Cutting the input into task-sized work: groups of files, and batches of records."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from schemas import Conversation, Dropped

# A task reads at most this much input, so one task covers one big dump or many small pages.
MAX_TASK_INPUT_BYTES = 64 * 1024 * 1024


def group_input_files(files: list[Path], *, target_files: int, max_bytes: int) -> list[list[Path]]:
    """Group files into task-sized lists, in order, with content-defined boundaries.

    A group ends after a file whose name hashes to 0 modulo `target_files` (so groups hold
    `target_files` files on average), or when it reaches 4 x `target_files` files or `max_bytes`.
    Boundaries hang on file names, not positions: files added to an input folder change only the
    groups they land in, and every other group keeps its content and so its cache entry.
    """
    groups: list[list[Path]] = [[]]
    size = 0
    for f in files:
        groups[-1].append(f)
        size += f.stat().st_size
        name_hash = int.from_bytes(hashlib.blake2b(f.name.encode(), digest_size=8).digest(), "big")
        if name_hash % target_files == 0 or len(groups[-1]) >= 4 * target_files or size >= max_bytes:
            groups.append([])
            size = 0
    return [g for g in groups if g]


def partition_records(
    records: Iterable[Conversation | Dropped], *, batch_size: int, max_text_chars: int | None = None
) -> Iterator[tuple[list[Conversation], list[Dropped]]]:
    """Cut a stream of ingest results into batches of at most `batch_size` conversations, each closed
    once its turns hold `max_text_chars` characters, with the drops met since the previous batch, so
    memory stays at one batch.

    Cuts fall by position in the stream, so records appended to a dump change only the last batches.
    """
    kept: list[Conversation] = []
    dropped: list[Dropped] = []
    chars = 0
    for record in records:
        if isinstance(record, Dropped):
            dropped.append(record)
            continue
        kept.append(record)
        chars += sum(len(turn.content) for turn in record.turns)
        if len(kept) >= batch_size or (max_text_chars is not None and chars >= max_text_chars):
            yield kept, dropped
            kept, dropped, chars = [], [], 0
    if kept or dropped:
        yield kept, dropped
