"""padded_batches: every text once, longest first, no batch over its padded budget or its count."""

from __future__ import annotations

import random

import pytest

from curation.contamination.embedding_batches import padded_batches


@pytest.mark.parametrize("seed", range(5))
def test_batches_cover_every_text_once_within_their_budget(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.choice((1, 3, 12, 40, 128, 256, 700)) for _ in range(rng.randrange(0, 400))]
    batches = padded_batches(lengths, max_tokens=1024, max_texts=16)
    assert sorted(i for b in batches for i in b.tolist()) == list(range(len(lengths)))
    longest_each = [max(lengths[i] for i in b) for b in batches]
    assert longest_each == sorted(longest_each, reverse=True)
    for batch, longest in zip(batches, longest_each, strict=True):
        assert 1 <= len(batch) <= 16
        assert len(batch) * longest <= 1024 or len(batch) == 1  # a text over the budget goes alone
        assert lengths[batch[0]] == longest  # the first text sets the padding


def test_short_texts_share_big_batches_and_long_ones_go_few_at_a_time() -> None:
    batches = padded_batches([256] * 40 + [16] * 40, max_tokens=4096, max_texts=256)
    # the third batch is padded to 256 and fills with short texts; the rest share one batch
    assert [len(b) for b in batches] == [16, 16, 16, 32]
    assert padded_batches([16] * 600, max_tokens=4096, max_texts=256)[0].size == 256


def test_no_text_no_batch() -> None:
    assert padded_batches([], max_tokens=4096, max_texts=64) == []
