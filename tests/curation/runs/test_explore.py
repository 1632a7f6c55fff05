"""explore.html's parts that need no run: the token sample and its counts, and the embedding map."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curation.parquet import write_conversations
from curation.runs.explore import counting_each_text_once, token_distribution
from curation.runs.explore_map import MapLayer, map_html
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


def test_the_samples_before_and_after_a_split_hold_the_same_conversations_each_text_counted_once(
    tmp_path: Path,
) -> None:
    """After curation, a split conversation's pieces are drawn by their parent's id: the two samples share
    their turns, and the page's counter encodes each text once."""
    before = _parts(tmp_path / "before", 40)
    whole = pl.read_parquet(before)
    pieces = whole.with_columns(parent_id=pl.col("id"), id=pl.col("id") + "#0")
    (tmp_path / "after").mkdir()
    pieces.write_parquet(tmp_path / "after" / "part-0.parquet")
    counted: list[str] = []

    def lengths(texts: Sequence[str]) -> list[int]:
        counted.extend(texts)
        return [len(t) for t in texts]

    count = counting_each_text_once(lengths)
    drawn_after = token_distribution([tmp_path / "after" / "part-0.parquet"], count, limit=7)
    calls_after = len(counted)
    drawn_before = token_distribution(before, count, limit=7)
    assert drawn_after is not None and drawn_before is not None
    assert np.array_equal(np.sort(drawn_after.per_conversation), np.sort(drawn_before.per_conversation))
    assert calls_after == 14 and len(counted) == 14  # 7 conversations of two distinct turns, counted once
    seen = counted[0]
    assert count(["new text", seen, "new text"]) == [8, len(seen), 8] and counted[14:] == ["new text"]


_TOPICS = ("How do I sort a list in Python?", "What is the capital of France?", "Write a poem about the sea.",
           "Explain photosynthesis to a child.", "Fix this SQL query: SELECT * FORM users")  # fmt: skip


def _layer(name: str, n: int, total: int | None = None) -> MapLayer:
    frame = pl.DataFrame(
        {
            "id": [f"{name}{k}" for k in range(n)],
            "source": ["sharegpt_json" if k % 3 else "sharegpt_page" for k in range(n)],
            "model": [None if k % 2 else "Model: GPT-4" for k in range(n)],
            "text": [f"{_TOPICS[k % len(_TOPICS)]} (variant {k})" for k in range(n)],
        }
    )
    return MapLayer(name, frame, total if total is not None else n)


def _points(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<circle class="([^"]*)" cx="[\d.]+" cy="[\d.]+"><title>([^<]*)</title>', html)


def test_the_map_draws_each_layer_says_what_it_sampled_and_clusters_by_topic(embed_units: Any) -> None:
    """The real MiniLM: a point per drawn conversation, the sample stated, k-means clusters that follow the topics,
    and the same page each time."""
    embed = lambda texts: embed_units(texts).vectors  # noqa: E731
    layers = [_layer("kept", 60, total=250_000), _layer("dropped", 9), _layer("contaminated", 0)]
    html = map_html(layers, embed, limit=60)
    points = _points(html)
    assert sum(c.startswith("k ") for c, _ in points) == 60 and sum(c == "d" for c, _ in points) == 9
    assert (
        "kept: a sample of 60 of 250000 conversations, drawn by a hash of the id ([run] explore_map_points = 60)"
        in (html)
    )
    assert "dropped: all 9 conversations; 9 points." in html and "contaminated: none in this run." in html
    # the five topics are five clusters: every variant of a topic in the cluster of its first one
    cluster_of = {t.split(" · ")[0]: c.split()[3] for c, t in points if c.startswith("k ")}
    for k in range(60):
        assert cluster_of[f"kept{k}"] == cluster_of[f"kept{k % len(_TOPICS)}"]
    assert len(set(cluster_of.values())) == len(_TOPICS)
    assert map_html(layers, embed, limit=60) == html
    # the legends name each source and model with its count
    assert "sharegpt_page (20)" in html and "no model banner (30)" in html


def test_a_tiny_or_empty_map(embed_units: Any) -> None:
    embed = lambda texts: embed_units(texts).vectors  # noqa: E731
    html = map_html([_layer("kept", 3), _layer("dropped", 0)], embed, limit=10)
    assert len(_points(html)) == 3 and "dropped: none in this run." in html
    empty = map_html([_layer("kept", 0)], embed, limit=10)
    assert "No conversation with a user turn to map." in empty and "<svg" not in empty
