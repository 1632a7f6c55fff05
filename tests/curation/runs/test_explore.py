"""explore.html's parts that need no run: the token sample and its counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curation.parquet import write_conversations
from curation.runs.explore import token_distribution
from curation.shards.tokenizer_load import BUILTIN_MISTRAL, batch_token_counter, load_tokenizer
from tests.helpers.conversations import conversation


def _parts(tmp_path: Path, n: int) -> list[Path]:
    convs = [
        conversation(("user", f"question {k} " * (k % 7 + 1)), ("assistant", f"answer {k} " * (k % 5 + 2)), id=f"c{k}")
        for k in range(n)
    ]
    write_conversations(tmp_path / "part-0.parquet", convs[: n // 2])
    write_conversations(tmp_path / "part-1.parquet", convs[n // 2 :])
    return [tmp_path / "part-0.parquet", tmp_path / "part-1.parquet"]


def test_tokens_per_conversation_and_role_are_the_tokenizers_counts(tmp_path: Path) -> None:
    tokenizer = load_tokenizer(BUILTIN_MISTRAL, cache_dir=tmp_path / "tok")
    count = batch_token_counter(tokenizer)
    parts = _parts(tmp_path, 40)
    tokens = token_distribution(parts, count, limit=100)
    assert tokens is not None and (tokens.sampled, tokens.total) == (40, 40)
    expected_user = sorted(count([f"question {k} " * (k % 7 + 1) for k in range(40)]))
    assert sorted(tokens.by_role["user"].tolist()) == expected_user
    assert set(tokens.by_role) == {"user", "assistant"}
    assert int(tokens.per_conversation.sum()) == int(tokens.by_role["user"].sum() + tokens.by_role["assistant"].sum())


def test_a_sample_is_drawn_by_the_id_the_same_each_time(tmp_path: Path) -> None:
    parts = _parts(tmp_path, 40)
    lengths = lambda texts: [len(t) for t in texts]  # noqa: E731
    first, again = token_distribution(parts, lengths, limit=7), token_distribution(parts, lengths, limit=7)
    assert first is not None and again is not None
    assert (first.sampled, first.total) == (7, 40) and len(first.per_conversation) == 7
    assert np.array_equal(np.sort(first.per_conversation), np.sort(again.per_conversation))
    assert token_distribution([], lengths, limit=7) is None
