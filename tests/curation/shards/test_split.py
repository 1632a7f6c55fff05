"""The split stage: pieces fit, nothing is lost silently, and the ledger accounts for every cut.

Synthetic cases count one token per whitespace-separated word, so sizes are exact and readable;
the real-data tests use the Phi-3 tokenizer on the 3003-conversation ShareGPT sample.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from curation.shards.chat_templates import chat_template_for
from curation.shards.pack import pack_conversations, with_unique_ids
from curation.shards.split import count_turn_texts, piece_id, plan_pieces, split_long_conversations
from curation.shards.tokenization import ConversationEncoder
from curation.shards.tokenizer_load import batch_token_counter, load_tokenizer
from schemas import Conversation, Dropped, StageResult, Turn
from schemas.config import ShardsConfig, SplitConfig
from tests.helpers.conversations import conversation, sharegpt_turns

# --- helpers ------------------------------------------------------------------------------------


def count_words(texts: Sequence[str]) -> list[int]:
    return [len(text.split()) for text in texts]


def words(n: int, tag: str) -> str:
    """A text of exactly n "tokens" for count_words, tagged so every turn is distinguishable."""
    return " ".join(f"{tag}.{i}" for i in range(n))


def conv(conv_id: str, *sizes: int, system: int | None = None) -> Conversation:
    """A shaped conversation: an optional system turn, then rounds of (user, assistant) sizes."""
    assert len(sizes) % 2 == 0, "sizes come in (user, assistant) pairs"
    turns = [("system", words(system, f"{conv_id}.s"))] if system else []
    for i in range(0, len(sizes), 2):
        turns.append(("user", words(sizes[i], f"{conv_id}.u{i // 2}")))
        turns.append(("assistant", words(sizes[i + 1], f"{conv_id}.a{i // 2}")))
    return conversation(
        *turns,
        id=conv_id,
        model="Model: GPT-4",
        input_file="dump.json",
        byte_offset=17,
        record_index=3,
        content_hash="ab" * 16,
    )


def split(convs: list[Conversation], max_tokens: int, overhead: int = 0, repeat: bool = False) -> StageResult:
    """The stage at piece_target_ratio 1.0 (split only what does not fit), so sizes read plainly."""
    config = SplitConfig(
        max_tokens=max_tokens, turn_overhead_tokens=overhead, repeat_system_prompt=repeat, piece_target_ratio=1.0
    )
    return split_long_conversations(convs, count_tokens=count_turn_texts(count_words), config=config)


def rounds_of(c: Conversation) -> list[tuple[Turn, Turn]]:
    body = [t for t in c.turns if t.role != "system"]
    return list(zip(body[0::2], body[1::2], strict=True))


def dropped_round_indices(dropped: list[Dropped], conv_id: str) -> list[int]:
    return [
        int(m.group(1))
        for d in dropped
        if d.conversation_id == conv_id and d.scope == "round" and (m := re.match(r"round=(\d+) ", d.detail))
    ]


def check_invariant(inputs: list[Conversation], result: StageResult) -> None:
    """Each input: >= 1 kept record (itself or pieces), or exactly one conversation-scope drop."""
    kept_for = Counter(c.parent_id or c.id for c in result.kept)
    dropped_for = Counter(d.conversation_id for d in result.dropped if d.scope == "conversation")
    for c in inputs:
        assert (kept_for[c.id] >= 1) != (dropped_for[c.id] == 1), c.id
        assert dropped_for[c.id] <= 1, c.id
    assert sum(1 for c in result.kept if not c.split_index) + sum(dropped_for.values()) == len(inputs)


# --- synthetic cases ------------------------------------------------------------------------------


def test_a_conversation_that_fits_passes_unchanged() -> None:
    c = conv("fits", 10, 20, 30, 40)
    result = split([c], max_tokens=100)
    assert len(result.kept) == 1 and result.kept[0] is c
    assert result.kept[0].parent_id is None and result.kept[0].split_index is None
    assert result.dropped == []
    assert result.changed == {"conversations_split": 0, "pieces_written": 0, "rounds_dropped_too_long": 0}


def test_turn_overhead_counts_per_turn() -> None:
    c = conv("edge", 25, 25, 25, 25)  # 100 words, 4 turns
    assert split([c], max_tokens=100, overhead=0).kept == [c]
    pieces = split([c], max_tokens=100, overhead=1).kept  # 104 > 100
    assert [p.id for p in pieces] == ["edge--p0", "edge--p1"]


def test_the_round_that_triggers_the_split_is_kept() -> None:
    """FastChat's loss: when the final round overflows the piece, it was never emitted."""
    c = conv("tail", 20, 20, 20, 20, 20, 20)  # rounds of 40; the third overflows 100
    result = split([c], max_tokens=100)
    assert [len(rounds_of(p)) for p in result.kept] == [2, 1]
    assert result.kept[-1].turns[-2:] == c.turns[-2:]
    assert [r for p in result.kept for r in rounds_of(p)] == rounds_of(c)
    assert result.dropped == []


def test_pieces_carry_ids_parent_and_provenance() -> None:
    c = conv("abc_1", *([10, 30] * 7))  # 7 rounds of 40 -> pieces of 2, 2, 2, 1 at max 80
    result = split([c], max_tokens=80)
    assert (
        [p.id for p in result.kept]
        == [piece_id("abc_1", k) for k in range(4)]
        == [
            "abc_1--p0",
            "abc_1--p1",
            "abc_1--p2",
            "abc_1--p3",
        ]
    )
    assert [p.split_index for p in result.kept] == [0, 1, 2, 3]
    assert {p.parent_id for p in result.kept} == {"abc_1"}
    assert all(p.provenance == c.provenance and p.model == c.model and p.source == c.source for p in result.kept)
    assert result.changed == {"conversations_split": 1, "pieces_written": 4, "rounds_dropped_too_long": 0}


def test_an_over_long_round_in_the_middle_is_cut_out_and_the_others_kept() -> None:
    c = conv("mid", 10, 20, 100, 50, 10, 20, 10, 20)  # round 1 is 150 > 100
    result = split([c], max_tokens=100, overhead=2)
    (row,) = result.dropped
    assert (row.scope, row.reason, row.stage, row.conversation_id) == ("round", "round_too_long", "split", "mid")
    assert row.detail == "round=1 tokens=154 max=100"
    assert (row.input_file, row.byte_offset, row.record_index) == ("dump.json", 17, 3)
    kept_rounds = [r for p in result.kept for r in rounds_of(p)]
    assert kept_rounds == [rounds_of(c)[i] for i in (0, 2, 3)]
    # No piece joins the rounds on either side of the cut: the question after it may refer to it.
    assert [len(rounds_of(p)) for p in result.kept] == [1, 2]
    assert result.changed == {"conversations_split": 1, "pieces_written": 2, "rounds_dropped_too_long": 1}
    check_invariant([c], result)


def test_a_conversation_of_one_over_long_round_is_dropped_with_conversation_scope() -> None:
    c = conv("huge", 300, 900)
    result = split([c], max_tokens=512)
    assert result.kept == []
    (row,) = result.dropped
    assert (row.scope, row.reason, row.conversation_id) == ("conversation", "round_too_long", "huge")
    assert "round=0 tokens=1200" in row.detail and "max=512" in row.detail
    assert result.changed["rounds_dropped_too_long"] == 0
    check_invariant([c], result)


def test_when_no_round_fits_one_conversation_row_is_written() -> None:
    c = conv("all_big", *([100, 100] * 12))
    result = split([c], max_tokens=150)
    assert [d.scope for d in result.dropped] == ["conversation"]
    assert "and 4 more" in result.dropped[0].detail  # 12 rounds, 8 listed
    check_invariant([c], result)


def test_unrepeated_system_turn_opens_the_first_piece_only() -> None:
    c = conv("sys", 20, 20, 20, 20, 20, 20, system=30)
    result = split([c], max_tokens=100)
    first, *rest = result.kept
    assert first.turns[0] == c.turns[0] and first.turns[1].role == "user"
    assert all(p.turns[0].role == "user" for p in rest)
    assert [r for p in result.kept for r in rounds_of(p)] == rounds_of(c)
    assert all(sum(count_words([t.content for t in p.turns])) <= 100 for p in result.kept)


def test_repeat_system_prompt_opens_every_piece_and_counts_in_each() -> None:
    c = conv("rep", 20, 20, 20, 20, 20, 20, system=30)
    result = split([c], max_tokens=100, repeat=True)
    assert len(result.kept) == 3  # 30 + 40 + 40 > 100: one round per piece
    assert all(p.turns[0] == c.turns[0] and p.turns[1].role == "user" for p in result.kept)
    assert all(sum(count_words([t.content for t in p.turns])) <= 100 for p in result.kept)
    assert [r for p in result.kept for r in rounds_of(p)] == rounds_of(c)


def test_a_round_that_fits_alone_but_not_with_the_repeated_system_turn_is_cut() -> None:
    c = conv("rep_big", 20, 20, 40, 40, 20, 20, system=30)
    assert split([c], max_tokens=100).dropped == []  # without repeat, round 1 (80) fits
    result = split([c], max_tokens=100, repeat=True)
    (row,) = result.dropped
    assert (row.scope, row.detail) == ("round", "round=1 tokens=110 system_tokens=30 max=100")
    assert [r for p in result.kept for r in rounds_of(p)] == [rounds_of(c)[0], rounds_of(c)[2]]


def test_an_unrepeated_system_turn_too_long_with_round_0_goes_with_it() -> None:
    c = conv("sys0", 30, 30, 10, 10, system=50)
    result = split([c], max_tokens=100)
    (row,) = result.dropped
    assert (row.scope, row.detail) == ("round", "round=0 tokens=110 system_tokens=50 max=100")
    (piece,) = result.kept
    assert [t.role for t in piece.turns] == ["user", "assistant"] and rounds_of(piece) == rounds_of(c)[1:]


def test_piece_target_ratio_splits_earlier_without_losing_a_round() -> None:
    """Ratio 0.5 at max 100: a 60-token conversation (over the 50 target) is split into pieces of
    at most 50, except a round that is longer than 50 on its own, which still fits in 100."""
    c = conv("t", 10, 10, 10, 10, 40, 30)  # rounds of 20, 20, 70 tokens
    config = SplitConfig(max_tokens=100, turn_overhead_tokens=0, piece_target_ratio=0.5)
    result = split_long_conversations([c], count_tokens=count_turn_texts(count_words), config=config)
    check_invariant([c], result)
    assert [len(rounds_of(p)) for p in result.kept] == [2, 1]
    assert [r for p in result.kept for r in rounds_of(p)] == rounds_of(c)
    assert not result.dropped
    # at ratio 1.0 the same conversation fits and passes unchanged
    assert split([c], max_tokens=120).kept == [c]


def test_plan_pieces_is_greedy_over_whole_rounds() -> None:
    config = SplitConfig(max_tokens=100, piece_target_ratio=1.0)
    plan = plan_pieces([30, 30, 30, 120, 50, 60, 10], system_tokens=0, config=config)
    assert plan.pieces == [[0, 1, 2], [4], [5, 6]]
    assert [(r.index, r.tokens) for r in plan.too_long] == [(3, 120)]


def test_tokens_are_counted_in_one_call_per_batch() -> None:
    calls: list[int] = []

    def counting(texts: Sequence[str]) -> list[int]:
        calls.append(len(texts))
        return count_words(texts)

    convs = [conv(f"c{i}", 50, 60, 70, 80) for i in range(5)]
    split_long_conversations(convs, count_tokens=count_turn_texts(counting), config=SplitConfig(max_tokens=150))
    assert calls == [20]


def test_a_counter_returning_the_wrong_number_of_counts_is_an_error() -> None:
    with pytest.raises(ValueError, match="1 counts for 4 turns"):
        split_long_conversations([conv("x", 1, 1, 1, 1)], count_tokens=lambda convs: [1], config=SplitConfig())


def test_unshaped_conversations_are_refused() -> None:
    good = conv("bad", 10, 10)
    bad = good.model_copy(update={"turns": (good.turns[1], good.turns[0])})
    with pytest.raises(ValueError, match="'bad' has assistant,user"):
        split([bad], max_tokens=100)


def test_split_is_deterministic_and_independent_of_batching() -> None:
    convs = [conv(f"d{i}", *([7 * (i % 5) + 3, 11 * (i % 7) + 5] * (i % 9 + 1))) for i in range(60)]
    convs += [conv("d_big", 10, 10, 300, 10, 10, 10), conv("d_huge", 400, 400)]
    first = split(convs, max_tokens=64, overhead=3)
    again = split(list(convs), max_tokens=64, overhead=3)
    halves = [split(convs[:31], max_tokens=64, overhead=3), split(convs[31:], max_tokens=64, overhead=3)]
    assert first.kept == again.kept and first.dropped == again.dropped and first.changed == again.changed
    assert first.kept == halves[0].kept + halves[1].kept
    assert first.dropped == halves[0].dropped + halves[1].dropped
    assert first.changed["conversations_split"] > 0 and first.changed["rounds_dropped_too_long"] > 0
    check_invariant(convs, first)


# --- the real sample with the Phi-3 tokenizer --------------------------------------------------------

_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "bing": "assistant", "chatgpt": "assistant"}


def shaped_sample(records: list[dict[str, Any]]) -> list[Conversation]:
    """The sample conversations that already alternate user/assistant (after dropping one leading
    assistant turn) and end with an answer: the shape stage's output, without its repairs."""
    out = []
    for index, record in enumerate(records):
        turns = sharegpt_turns(record["conversations"], _ROLES)  # type: ignore[arg-type]
        if len(turns) != len(record["conversations"]):
            continue  # a system or unknown role: not this helper's business
        if turns and turns[0].role == "assistant":
            turns = turns[1:]
        alternating = all(t.role == ("user" if i % 2 == 0 else "assistant") for i, t in enumerate(turns))
        if turns and alternating and len(turns) % 2 == 0:
            out.append(
                conversation(
                    *turns, id=record["id"], input_file="sample.json", record_index=index, content_hash=f"{index:032x}"
                )
            )
    return out


@pytest.fixture(scope="module")
def phi3(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    spec = str(shared_data / "tokenizers/phi-3/tokenizer.json")
    return load_tokenizer(spec, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def real_convs(sharegpt_sample: list[dict[str, Any]]) -> list[Conversation]:
    convs = shaped_sample(sharegpt_sample)
    assert len(convs) > 2000, "the shaping helper kept too little of the sample to test anything"
    return convs


@pytest.fixture(scope="module")
def recount(phi3: Any, real_convs: list[Conversation]) -> dict[str, int]:
    """Each turn text's token count, straight from the tokenizer (not through the stage's counter)."""
    texts = sorted({t.content for c in real_convs for t in c.turns})
    return {text: len(e.ids) for text, e in zip(texts, phi3.encode_batch(texts, add_special_tokens=False), strict=True)}


@pytest.fixture(scope="module")
def phi3_counter(phi3: Any) -> Callable[[Sequence[str]], list[int]]:
    """The stage's own counter (batch_token_counter) behind a memo, so that the module's four splits
    of the real sample tokenize each text once."""
    count_tokens = batch_token_counter(phi3)
    memo: dict[str, int] = {}

    def counted(texts: Sequence[str]) -> list[int]:
        missing = [t for t in dict.fromkeys(texts) if t not in memo]
        memo.update(zip(missing, count_tokens(missing), strict=True))
        return [memo[t] for t in texts]

    return counted


@pytest.fixture(scope="module", params=[512, 2048])
def real_split(
    request: pytest.FixtureRequest, phi3_counter: Callable[[Sequence[str]], list[int]], real_convs: list[Conversation]
) -> tuple[int, StageResult]:
    max_tokens: int = request.param
    config = SplitConfig(max_tokens=max_tokens)
    result = split_long_conversations(real_convs, count_tokens=count_turn_texts(phi3_counter), config=config)
    return max_tokens, result


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_pieces_fit_and_open_with_a_user_turn(
    real_split: tuple[int, StageResult], recount: dict[str, int]
) -> None:
    max_tokens, result = real_split
    overhead = SplitConfig().turn_overhead_tokens
    for piece in result.kept:
        assert sum(recount[t.content] + overhead for t in piece.turns) <= max_tokens, piece.id
        # The helper keeps no system turns, so every piece is whole rounds, user first.
        roles = [t.role for t in piece.turns]
        assert roles and roles == ["user", "assistant"] * (len(roles) // 2), piece.id
    assert result.changed["conversations_split"] > 0


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_pieces_give_back_every_round_but_the_ledgered_ones(
    real_split: tuple[int, StageResult], real_convs: list[Conversation], recount: dict[str, int]
) -> None:
    max_tokens, result = real_split
    overhead = SplitConfig().turn_overhead_tokens
    pieces_of: dict[str, list[Conversation]] = defaultdict(list)
    for c in result.kept:
        if c.parent_id is not None:
            pieces_of[c.parent_id].append(c)
    unchanged = {id(c) for c in result.kept if c.parent_id is None}
    dropped_whole = {d.conversation_id for d in result.dropped if d.scope == "conversation"}
    for c in real_convs:
        rounds = rounds_of(c)
        sizes = [recount[u.content] + recount[a.content] + 2 * overhead for u, a in rounds]
        if id(c) in unchanged:
            assert c.id not in pieces_of and sum(sizes) <= max_tokens
            continue
        cut = dropped_round_indices(result.dropped, c.id)
        assert all(sizes[i] > max_tokens for i in cut), c.id
        if c.id in dropped_whole:
            assert all(size > max_tokens for size in sizes) and not cut, c.id
            continue
        pieces = pieces_of[c.id]
        assert [p.id for p in pieces] == [piece_id(c.id, k) for k in range(len(pieces))]
        assert [p.split_index for p in pieces] == list(range(len(pieces)))
        assert all(p.provenance == c.provenance for p in pieces)
        kept_rounds = [r for p in pieces for r in rounds_of(p)]
        assert kept_rounds == [r for i, r in enumerate(rounds) if i not in cut], c.id
    check_invariant(real_convs, result)
    round_rows = [d for d in result.dropped if d.scope == "round"]
    assert result.changed == {
        "conversations_split": len(pieces_of),
        "pieces_written": sum(len(p) for p in pieces_of.values()),
        "rounds_dropped_too_long": len(round_rows),
    }


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_split_is_deterministic_and_independent_of_batching(
    real_convs: list[Conversation], recount: dict[str, int]
) -> None:
    def from_recount(texts: Sequence[str]) -> list[int]:
        return [recount[t] for t in texts]

    config = SplitConfig(max_tokens=512)
    whole = split_long_conversations(real_convs, count_tokens=count_turn_texts(from_recount), config=config)
    parts = [
        split_long_conversations(real_convs[i : i + 700], count_tokens=count_turn_texts(from_recount), config=config)
        for i in range(0, len(real_convs), 700)
    ]
    assert whole.kept == [c for p in parts for c in p.kept]
    assert whole.dropped == [d for p in parts for d in p.dropped]
    assert whole == split_long_conversations(real_convs, count_tokens=count_turn_texts(from_recount), config=config)


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("max_seq_len", [2048, 4096])
def test_default_splitting_packs_the_real_sample_at_99_5_percent(
    max_seq_len: int, phi3: Any, phi3_counter: Callable[[Sequence[str]], list[int]], real_convs: list[Conversation]
) -> None:
    # Only the length changes; everything else is the default. FastChat's rule (split only what does
    # not fit) leaves too many pieces over half a row at 2048 for any packing to pass ~98%
    # (docs/defaults.md#split).
    split_config = SplitConfig(max_tokens=max_seq_len)
    shards_config = ShardsConfig(max_seq_len=max_seq_len)
    # As a run does: split counts with the encoder that then tokenizes.
    encoder = ConversationEncoder(phi3, chat_template_for(shards_config.template))
    pieces = split_long_conversations(real_convs, count_tokens=encoder.content_token_counts, config=split_config).kept
    tokenized, _ = encoder.tokenize(pieces)
    rows, dropped, info = pack_conversations(with_unique_ids(tokenized), config=shards_config)
    print(f"max_seq_len {max_seq_len}: {len(pieces)} pieces in {info.rows} rows, efficiency {info.efficiency:.2%}")
    assert dropped == []
    assert info.efficiency >= 0.995
