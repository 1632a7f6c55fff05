"""Packing: exact best-fit decreasing, its bounds and efficiency, and overlong conversations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curation.shards.pack import (
    PackedRow,
    describe_packing,
    pack_best_fit_decreasing,
    pack_conversations,
    packing_lower_bound,
)
from schemas.config import ShardsConfig
from schemas.shards import TokenizedConversation


def chat_like_lengths(rng: np.random.Generator, n: int, capacity: int, *, median: float, sigma: float) -> list[int]:
    """Lognormal token counts, as chat conversations have: many short ones and a long tail,
    clipped to [16, capacity] (longer ones were split before packing)."""
    raw = rng.lognormal(math.log(median), sigma, n).round().astype(int)
    return np.clip(raw, 16, capacity).tolist()


def split_mix_lengths(rng: np.random.Generator, n: int, capacity: int) -> list[int]:
    """88% chat-like conversations plus 12% pieces of split long conversations, which come out
    between ~55% and 100% of the budget and are hard to pair."""
    short = chat_like_lengths(rng, int(n * 0.88), capacity, median=350, sigma=1.0)
    pieces = rng.integers(int(0.55 * capacity), capacity + 1, n - len(short)).tolist()
    return short + pieces


def reference_best_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Best-fit decreasing written the slow, obvious way, with the same tie-breaks."""
    bins: list[list[int]] = []
    rooms: list[int] = []
    for item in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        fitting = [b for b, room in enumerate(rooms) if room >= lengths[item]]
        if fitting:
            best = min(fitting, key=lambda b: (rooms[b], b))
            bins[best].append(item)
            rooms[best] -= lengths[item]
        else:
            bins.append([item])
            rooms.append(capacity - lengths[item])
    return bins


def first_fit(lengths: list[int], capacity: int) -> list[list[int]]:
    """Online first fit in the given order, the greedy baseline."""
    bins: list[list[int]] = []
    rooms: list[int] = []
    for item, length in enumerate(lengths):
        for b, room in enumerate(rooms):
            if room >= length:
                bins[b].append(item)
                rooms[b] -= length
                break
        else:
            bins.append([item])
            rooms.append(capacity - length)
    return bins


def assert_valid_packing(bins: list[list[int]], lengths: list[int], capacity: int) -> None:
    packed = sorted(i for b in bins for i in b)
    assert packed == list(range(len(lengths))), "every index must be packed exactly once"
    assert all(b for b in bins), "no empty bin"
    assert max(sum(lengths[i] for i in b) for b in bins) <= capacity


@pytest.mark.parametrize("seed", range(6))
def test_bfd_is_exactly_best_fit_decreasing(seed: int) -> None:
    rng = np.random.default_rng(seed)
    capacity = int(rng.choice([64, 100, 2048]))
    # Few distinct values, so ties between items and between bins' rooms are common.
    lengths = rng.integers(1, capacity + 1, 400).tolist() if seed % 2 else rng.choice([3, 7, 20, 33], 400).tolist()
    assert pack_best_fit_decreasing(lengths, capacity=capacity) == reference_best_fit_decreasing(lengths, capacity)


@pytest.mark.parametrize("seed", range(5))
def test_bfd_packs_each_index_once_within_capacity_and_bounds(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    capacity = 2048
    lengths = rng.integers(1, capacity + 1, 3000).tolist()
    bins = pack_best_fit_decreasing(lengths, capacity=capacity)
    assert_valid_packing(bins, lengths, capacity)
    assert len(bins) >= packing_lower_bound(lengths, capacity=capacity)
    # Any-fit algorithms leave at most one bin filled to half or less, so the others hold more
    # than capacity / 2 each.
    assert (len(bins) - 1) * capacity < 2 * sum(lengths)
    assert len(bins) <= len(first_fit(lengths, capacity))


def test_bfd_handles_100k_sequences() -> None:
    lengths = chat_like_lengths(np.random.default_rng(7), 100_000, 2048, median=350, sigma=1.0)
    bins = pack_best_fit_decreasing(lengths, capacity=2048)
    assert_valid_packing(bins, lengths, 2048)
    assert len(bins) <= packing_lower_bound(lengths, capacity=2048) * 1.001 + 1


def test_lower_bound_counts_sequences_over_half_capacity() -> None:
    # Ten sequences just over half the capacity: no two share a row, whatever the volume says.
    lengths = [51] * 10 + [49] * 3
    assert math.ceil(sum(lengths) / 100) == 7
    assert packing_lower_bound(lengths, capacity=100) == 10
    bins = pack_best_fit_decreasing(lengths, capacity=100)
    assert len(bins) == 10
    # Exactly half does not count: two halves share a row.
    assert packing_lower_bound([50, 50], capacity=100) == 1


def test_lower_bound_counts_what_cannot_share_a_row_with_the_long_sequences() -> None:
    # No 45 fits beside a 60, so the four 45s need rows of their own: 6 rows, where the volume
    # says 5 and the over-half count 4. BFD finds those 6.
    lengths = [60] * 4 + [45] * 4
    assert (math.ceil(sum(lengths) / 100), sum(2 * n > 100 for n in lengths)) == (5, 4)
    assert packing_lower_bound(lengths, capacity=100) == 6
    assert len(pack_best_fit_decreasing(lengths, capacity=100)) == 6
    assert packing_lower_bound([], capacity=100) == 0


@pytest.mark.parametrize("capacity", [2048, 4096])
@pytest.mark.parametrize(
    "distribution",
    [
        lambda rng, c: chat_like_lengths(rng, 5000, c, median=350, sigma=1.0),
        lambda rng, c: chat_like_lengths(rng, 5000, c, median=900, sigma=1.3),
        lambda rng, c: split_mix_lengths(rng, 5000, c),
    ],
    ids=["lognormal-median350", "lognormal-median900", "split-pieces-mix"],
)
def test_bfd_efficiency_on_chat_like_lengths(capacity: int, distribution) -> None:
    lengths = distribution(np.random.default_rng(capacity), capacity)
    bins = pack_best_fit_decreasing(lengths, capacity=capacity)
    assert_valid_packing(bins, lengths, capacity)
    efficiency = sum(lengths) / (len(bins) * capacity)
    assert efficiency >= 0.995, f"efficiency {efficiency:.4%}"
    assert len(bins) <= packing_lower_bound(lengths, capacity=capacity) * 1.005 + 1
    # Greedy packing in arrival order is the baseline BFD must beat.
    assert len(bins) < len(first_fit(lengths, capacity))


def test_bfd_is_deterministic_and_validates_input() -> None:
    lengths = np.random.default_rng(3).integers(1, 500, 1000).tolist()
    assert pack_best_fit_decreasing(lengths, capacity=500) == pack_best_fit_decreasing(list(lengths), capacity=500)
    assert pack_best_fit_decreasing([], capacity=10) == []
    with pytest.raises(ValueError):
        pack_best_fit_decreasing([11], capacity=10)
    with pytest.raises(ValueError):
        pack_best_fit_decreasing([0, 3], capacity=10)
    with pytest.raises(ValueError):
        pack_best_fit_decreasing([1], capacity=0)


# --- pack_conversations -------------------------------------------------------------------------


def tokenized(conversation_id: str, n: int, *, supervised_from: int = 1, seed: int = 0) -> TokenizedConversation:
    """n tokens; the first `supervised_from` are unsupervised (the prompt), the rest supervised."""
    ids = np.random.default_rng(seed).integers(3, 32000, n).tolist()
    mask = [0] * min(supervised_from, n) + [1] * max(n - supervised_from, 0)
    return TokenizedConversation(conversation_id=conversation_id, input_ids=tuple(ids), loss_mask=tuple(mask))


def corpus(n: int, capacity: int, seed: int = 0) -> list[TokenizedConversation]:
    lengths = chat_like_lengths(np.random.default_rng(seed), n, capacity, median=capacity / 6, sigma=1.0)
    return [tokenized(f"conv-{i:05d}", length, supervised_from=length // 3, seed=i) for i, length in enumerate(lengths)]


def row_signature(rows: list[PackedRow]) -> list[tuple[str, ...]]:
    return [tuple(row.conversation_ids) for row in rows]


def test_pack_conversations_keeps_every_conversation_whole_once() -> None:
    convs = corpus(600, 512)
    config = ShardsConfig(max_seq_len=512, seed=5)
    rows, dropped, info = pack_conversations(convs, config=config)
    assert dropped == []
    by_id = {c.conversation_id: c for c in convs}
    seen = [c.conversation_id for row in rows for c in row.conversations]
    assert sorted(seen) == sorted(by_id)
    for row in rows:
        assert row.num_tokens <= 512
        for conv in row.conversations:
            assert conv == by_id[conv.conversation_id]
    total = sum(len(c.input_ids) for c in convs)
    assert info.rows == len(rows) and info.algorithm == "best_fit_decreasing" and info.seed == 5
    assert info.efficiency == pytest.approx(total / (len(rows) * 512))
    assert info.lower_bound_rows == math.ceil(total / 512)
    assert info == describe_packing(rows, config=config)
    assert info.efficiency >= 0.99


def test_rows_are_shuffled_and_seeded() -> None:
    convs = corpus(600, 512)
    rows_a, _, _ = pack_conversations(convs, config=ShardsConfig(max_seq_len=512, seed=1))
    rows_b, _, _ = pack_conversations(list(reversed(convs)), config=ShardsConfig(max_seq_len=512, seed=1))
    rows_c, _, _ = pack_conversations(convs, config=ShardsConfig(max_seq_len=512, seed=2))
    # Same conversations and seed, whatever their arrival order: the same rows in the same order.
    assert row_signature(rows_a) == row_signature(rows_b)
    # Another seed: the same rows in another order.
    assert row_signature(rows_a) != row_signature(rows_c)
    assert sorted(row_signature(rows_a)) == sorted(row_signature(rows_c))
    # BFD opens rows longest sequence first; after the shuffle the longest sequences are spread out.
    longest = [max(row.seq_lengths) for row in rows_a]
    assert longest != sorted(longest, reverse=True)


def test_overlong_conversations_drop() -> None:
    convs = [tokenized("fits", 100, supervised_from=10), tokenized("long", 101, supervised_from=10)]
    rows, dropped, info = pack_conversations(convs, config=ShardsConfig(max_seq_len=100, overlong="drop"))
    assert row_signature(rows) == [("fits",)]
    assert [(d.conversation_id, d.stage, d.reason) for d in dropped] == [("long", "pack", "longer_than_max_seq_len")]
    assert "101" in dropped[0].detail
    assert info.rows == 1


def test_overlong_conversations_truncate() -> None:
    long = tokenized("long", 150, supervised_from=10)
    convs = [tokenized("short", 30, supervised_from=5), long]
    rows, dropped, _ = pack_conversations(convs, config=ShardsConfig(max_seq_len=100, overlong="truncate"))
    assert dropped == []
    truncated = [row for row in rows if row.truncated]
    assert len(truncated) == 1 and truncated[0].conversation_ids == ["long"]
    (cut,) = truncated[0].conversations
    assert cut.input_ids == long.input_ids[:100] and cut.loss_mask == long.loss_mask[:100]
    assert sum(row.truncated for row in rows) == 1
    assert all(row.num_tokens <= 100 for row in rows)


def test_truncation_without_supervised_tokens_drops() -> None:
    # The answer starts after the cut: truncating would leave nothing to train on.
    convs = [tokenized("late-answer", 150, supervised_from=120)]
    rows, dropped, _ = pack_conversations(convs, config=ShardsConfig(max_seq_len=100, overlong="truncate"))
    assert rows == []
    assert [(d.conversation_id, d.reason) for d in dropped] == [("late-answer", "longer_than_max_seq_len")]
    assert "no supervised token" in dropped[0].detail


def test_unpacked_layout_keeps_one_conversation_per_row() -> None:
    convs = corpus(200, 512)
    rows, dropped, info = pack_conversations(convs, config=ShardsConfig(max_seq_len=512, layout="unpacked", seed=3))
    assert dropped == [] and info.algorithm == "none"
    assert all(len(row.conversations) == 1 for row in rows)
    ids = [row.conversation_ids[0] for row in rows]
    assert sorted(ids) == sorted(c.conversation_id for c in convs)
    assert ids != sorted(ids), "rows are shuffled"


@pytest.mark.parametrize(
    "bad",
    [
        TokenizedConversation(conversation_id="a", input_ids=(1, 2), loss_mask=(0,)),
        TokenizedConversation(conversation_id="a", input_ids=(1, 2), loss_mask=(1, 1)),
        TokenizedConversation(conversation_id="a", input_ids=(1, 2), loss_mask=(0, 2)),
        TokenizedConversation(conversation_id="a", input_ids=(), loss_mask=()),
    ],
    ids=["mask-length", "supervised-first-token", "mask-value", "empty"],
)
def test_malformed_tokenized_conversations_raise(bad: TokenizedConversation) -> None:
    with pytest.raises(ValueError):
        pack_conversations([bad], config=ShardsConfig())


def test_duplicate_ids_raise() -> None:
    with pytest.raises(ValueError, match="more than once"):
        pack_conversations([tokenized("a", 5), tokenized("a", 6)], config=ShardsConfig())
