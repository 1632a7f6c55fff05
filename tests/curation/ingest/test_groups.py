"""A stream of ingest results cut into parts: by conversations, by characters of text, with every drop kept."""

from __future__ import annotations

from curation.ingest.groups import partition_records
from schemas import Conversation, Dropped
from tests.helpers.conversations import conversation


def _conv(i: int, chars: int) -> Conversation:
    return conversation(("user", "q" * (chars // 2)), ("assistant", "a" * (chars - chars // 2)), id=f"c{i}")


def _drop(i: int) -> Dropped:
    return Dropped.of(_conv(i, 2), stage="ingest", reason="invalid_record", detail="test")


def _sizes(batches: list[tuple[list[Conversation], list[Dropped]]]) -> list[int]:
    return [len(kept) for kept, _ in batches]


def test_parts_close_at_batch_size_or_at_the_text_bound_whichever_comes_first() -> None:
    records = [_conv(i, 100) for i in range(10)]
    assert _sizes(list(partition_records(records, batch_size=4))) == [4, 4, 2]
    # 250 characters: a part closes with the conversation that reaches it
    assert _sizes(list(partition_records(records, batch_size=4, max_text_chars=250))) == [3, 3, 3, 1]
    assert _sizes(list(partition_records(records, batch_size=2, max_text_chars=250))) == [2, 2, 2, 2, 2]
    # one conversation over the bound is a part of its own
    mixed = [_conv(0, 10), _conv(1, 1000), _conv(2, 10), _conv(3, 10)]
    assert _sizes(list(partition_records(mixed, batch_size=100, max_text_chars=500))) == [2, 2]


def test_every_drop_travels_with_the_part_after_it_and_none_is_lost() -> None:
    records: list[Conversation | Dropped] = [_drop(0), _conv(1, 300), _drop(2), _conv(3, 300), _drop(4)]
    batches = list(partition_records(records, batch_size=100, max_text_chars=250))
    assert [([c.id for c in kept], [d.conversation_id for d in dropped]) for kept, dropped in batches] == [
        (["c1"], ["c0"]),
        (["c3"], ["c2"]),
        ([], ["c4"]),
    ]


def test_appending_records_changes_only_the_last_parts() -> None:
    records = [_conv(i, 40 + 7 * (i % 5)) for i in range(40)]
    before = list(partition_records(records, batch_size=6, max_text_chars=200))
    after = list(
        partition_records([*records, *(_conv(100 + i, 50) for i in range(9))], batch_size=6, max_text_chars=200)
    )
    assert after[: len(before) - 1] == before[:-1]
