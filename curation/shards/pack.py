"""Packing: whole tokenized conversations into rows of at most max_seq_len tokens, unpadded.

Best-fit decreasing (BFD) places each sequence, longest first, into the open row with the least
room that still holds it. On chat-like lengths it fills ~99.9% of the slots
(docs/defaults.md#shards); greedy in-order packing fills ~85%.

Lower bounds on the number of rows any packing needs, with C = max_seq_len:
- ceil(total tokens / C), which PackingInfo.lower_bound_rows reports;
- the number of sequences longer than C / 2, since no two of them share a row;
- Martello and Toth's L2, which `packing_lower_bound` returns: it refines both by counting what
  cannot share a row with those long sequences. It shows when no packing can reach a target: on
  the real sample at 2048, split by FastChat's rule, no packing passes 97.96% (docs/defaults.md#split).

BFD emits rows ordered by length (the longest sequences open the first rows), so the rows are
shuffled with a seeded RNG afterwards: training would otherwise see all long rows first.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from curation.stage import Stage
from schemas.config import ShardsConfig
from schemas.ledger import Dropped
from schemas.shards import PackingInfo, TokenizedConversation

__all__ = [
    "PackedRow",
    "describe_packing",
    "pack_best_fit_decreasing",
    "pack_conversations",
    "packing_info",
    "packing_lower_bound",
]

BFD = "best_fit_decreasing"
# The unpacked layout: one conversation per row, the trainer packs.
NO_PACKING = "none"


@dataclass(frozen=True)
class PackedRow:
    """One training row: whole conversations back to back, in this order, without padding.

    `truncated` marks a row holding a single conversation cut to max_seq_len (overlong="truncate");
    such a conversation is exactly max_seq_len tokens, so it always fills a row alone.
    """

    conversations: tuple[TokenizedConversation, ...]
    truncated: bool = False

    @property
    def conversation_ids(self) -> list[str]:
        return [c.conversation_id for c in self.conversations]

    @property
    def seq_lengths(self) -> list[int]:
        return [len(c.input_ids) for c in self.conversations]

    @property
    def num_tokens(self) -> int:
        return sum(len(c.input_ids) for c in self.conversations)

    @property
    def num_loss_tokens(self) -> int:
        return sum(sum(c.loss_mask) for c in self.conversations)


def packing_lower_bound(lengths: Sequence[int], *, capacity: int) -> int:
    """A lower bound on the bins any packing of `lengths` into bins of `capacity` uses: Martello
    and Toth's L2 (1990), at least max(ceil(total / capacity), number of lengths > capacity / 2).

    For each k <= capacity / 2: the lengths over capacity - k (J1) and those in
    (capacity / 2, capacity - k] (J2) each need a bin of their own, and the lengths in
    [k, capacity / 2] (J3) fit beside no J1 length, so what J2's bins cannot hold of them needs
    further bins. k = 0 gives the two simple bounds; only k equal to a length can raise it.
    """
    ordered = sorted(lengths)
    before = [0, *accumulate(ordered)]  # before[i]: the sum of the i shortest
    # Lengths up to capacity // 2 are the at-most-half ones (2 * length <= capacity: two share a row).
    half_end = bisect_right(ordered, capacity // 2)
    best = 0
    for k in {0, *ordered[:half_end]}:
        j1_start = bisect_right(ordered, capacity - k)
        j2_count = j1_start - half_end
        j2_room = j2_count * capacity - (before[j1_start] - before[half_end])
        j3_tokens = before[half_end] - before[bisect_left(ordered, k)]
        extra_bins = -(-max(0, j3_tokens - j2_room) // capacity)  # ceiling division
        best = max(best, len(ordered) - j1_start + j2_count + extra_bins)
    return best


def pack_best_fit_decreasing(lengths: Sequence[int], *, capacity: int) -> list[list[int]]:
    """Indices into `lengths` for each bin, by exact best-fit decreasing.

    Items are placed longest first (ties: lower index first) into the bin with the least
    remaining room that still holds them (ties: the bin opened first); a new bin opens only
    when none does. Within a bin, indices are in placement order. O(n log n): bins are kept in
    buckets by remaining room, and a sorted list of the distinct rooms is bisected, so each step
    costs a bisect plus a list insert or delete over at most `capacity` distinct values.
    """
    if capacity <= 0:
        raise ValueError(f"capacity must be positive, got {capacity}")
    for index, length in enumerate(lengths):
        if not 0 < length <= capacity:
            raise ValueError(f"length {length} at index {index} is not in 1..{capacity}")

    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    # room -> min-heap of the bins with exactly that much room, so ties go to the oldest bin.
    bins_by_room: dict[int, list[int]] = {}
    rooms: list[int] = []  # the keys of bins_by_room, ascending
    for item in order:
        size = lengths[item]
        slot = bisect_left(rooms, size)
        if slot == len(rooms):
            target = len(bins)
            bins.append([item])
            room = capacity - size
        else:
            old_room = rooms[slot]
            same_room = bins_by_room[old_room]
            target = heapq.heappop(same_room)
            if not same_room:
                del bins_by_room[old_room]
                del rooms[slot]
            bins[target].append(item)
            room = old_room - size
        # A full bin needs no tracking: every length is at least 1.
        if room > 0:
            same_room = bins_by_room.setdefault(room, [])
            if not same_room:
                insort(rooms, room)
            heapq.heappush(same_room, target)
    return bins


def _check_tokenized(conv: TokenizedConversation) -> None:
    # Contract of the tokenize stage; a violation is a bug upstream, not bad data, so it raises.
    n = len(conv.input_ids)
    if n == 0:
        raise ValueError(f"{conv.conversation_id}: no tokens")
    if len(conv.loss_mask) != n:
        raise ValueError(f"{conv.conversation_id}: {n} input_ids but {len(conv.loss_mask)} loss_mask values")
    if not set(conv.loss_mask) <= {0, 1}:
        raise ValueError(f"{conv.conversation_id}: loss_mask values other than 0 and 1")
    # The first token of a conversation has nothing before it in its row to be predicted from.
    if conv.loss_mask[0] != 0:
        raise ValueError(f"{conv.conversation_id}: loss_mask is 1 at the first token")


def _fit_to_max_seq_len(
    convs: Sequence[TokenizedConversation], *, config: ShardsConfig
) -> tuple[list[TokenizedConversation], list[PackedRow], list[Dropped]]:
    """Split into conversations that fit, rows of truncated ones, and drops."""
    limit = config.max_seq_len
    fitting: list[TokenizedConversation] = []
    truncated_rows: list[PackedRow] = []
    dropped: list[Dropped] = []
    for conv in convs:
        n = len(conv.input_ids)
        if n <= limit:
            fitting.append(conv)
            continue
        detail = f"tokens={n} max_seq_len={limit}"
        if config.overlong == "truncate":
            cut = TokenizedConversation(
                conversation_id=conv.conversation_id,
                input_ids=conv.input_ids[:limit],
                loss_mask=conv.loss_mask[:limit],
            )
            if any(cut.loss_mask):
                truncated_rows.append(PackedRow((cut,), truncated=True))
                continue
            detail += "; truncating would leave no supervised token"
        dropped.append(
            Dropped(
                conversation_id=conv.conversation_id,
                stage="pack",
                reason="longer_than_max_seq_len",
                detail=detail,
                input_file=conv.input_file,
                record_index=conv.record_index,
            )
        )
    return fitting, truncated_rows, dropped


def packing_info(*, tokens: int, rows: int, config: ShardsConfig, truncated: int = 0) -> PackingInfo:
    """PackingInfo for `rows` rows holding `tokens` tokens in all, made with `config`."""
    slots = rows * config.max_seq_len
    return PackingInfo(
        algorithm=BFD if config.layout == "packed" else NO_PACKING,
        seed=config.seed,
        efficiency=tokens / slots if slots else 0.0,
        rows=rows,
        lower_bound_rows=math.ceil(tokens / config.max_seq_len),
        truncated=truncated,
    )


def describe_packing(rows: Sequence[PackedRow], *, config: ShardsConfig) -> PackingInfo:
    """PackingInfo for rows made by pack_conversations with `config`."""
    return packing_info(
        tokens=sum(row.num_tokens for row in rows),
        rows=len(rows),
        config=config,
        truncated=sum(row.truncated for row in rows),
    )


def pack_conversations(
    tokenized: Sequence[TokenizedConversation], *, config: ShardsConfig
) -> tuple[list[PackedRow], list[Dropped], PackingInfo]:
    """Training rows for `tokenized`, in a seeded shuffled order, plus the drops and PackingInfo.

    Layout "packed": best-fit decreasing into rows of at most max_seq_len tokens. Layout
    "unpacked": one conversation per row. Either way a conversation longer than max_seq_len is
    dropped (overlong="drop") or cut to max_seq_len (overlong="truncate"; `PackedRow.truncated`
    counts them) unless the cut keeps no supervised token, in which case it drops too.

    Conversations are first ordered by id, so the result depends on the set of conversations and
    the seed, not on the order batches arrived in. Ids must be unique.
    """
    ordered = sorted(tokenized, key=lambda c: c.conversation_id)
    for previous, conv in zip(ordered, ordered[1:], strict=False):
        if previous.conversation_id == conv.conversation_id:
            raise ValueError(f"conversation id {conv.conversation_id!r} appears more than once")
    for conv in ordered:
        _check_tokenized(conv)

    fitting, rows, dropped = _fit_to_max_seq_len(ordered, config=config)
    if config.layout == "packed":
        bins = pack_best_fit_decreasing([len(c.input_ids) for c in fitting], capacity=config.max_seq_len)
        rows += [PackedRow(tuple(fitting[i] for i in members)) for members in bins]
    else:
        rows += [PackedRow((conv,)) for conv in fitting]

    order = np.random.default_rng(config.seed).permutation(len(rows))
    shuffled = [rows[i] for i in order]
    return shuffled, dropped, describe_packing(shuffled, config=config)


def with_unique_ids(tokenized: Sequence[TokenizedConversation]) -> list[TokenizedConversation]:
    """`tokenized` with repeated ids made unique ("X", "X~2", "X~3" in input order).

    Real dumps repeat ids with different content (20 of the 3003 real conversations), and the
    shards key conversations by id, so a repeat gets a suffix rather than being lost.
    """
    seen: dict[str, int] = {}
    out = []
    for conv in tokenized:
        n = seen[conv.conversation_id] = seen.get(conv.conversation_id, 0) + 1
        out.append(conv if n == 1 else conv.model_copy(update={"conversation_id": repeat_id(conv.conversation_id, n)}))
    return out


def repeat_id(conversation_id: str, n: int) -> str:
    """The shards' id of the `n`-th conversation (from 1) to carry `conversation_id`."""
    return conversation_id if n == 1 else f"{conversation_id}~{n}"


# Run-wide: every tokenized conversation of the run into rows; the manifest names the tokenizer.
PACK = Stage("pack", pack_conversations, config="shards", also_keyed=("tokenizer",))
