"""The split stage: conversations longer than a token budget cut into pieces of whole rounds.

A round is a user turn and the assistant turn answering it. A conversation that fits passes
unchanged; a longer one is packed greedily, round by round, into pieces that each fit, and every
piece opens with a user turn (or with the system turn, then a user turn). Nothing is lost
silently, unlike FastChat's splitter (docs/sharegpt.md#splitting-long-conversations): the round that overflows a piece
opens the next one, and a round too long for any piece is cut out with a round-scope ledger row
while the rounds around it go on. Only when no round fits at all does the conversation drop.

The system turn, when there is one, opens the first piece only; with `repeat_system_prompt` it
opens every piece and its tokens count in each. Either way a round's "own" size includes the
system turn when the system turn must sit in the same piece (every round when repeated, round 0
otherwise), so a dropped round 0 takes an unrepeated system turn with it, and its ledger detail
says so.

Invariant: for each input conversation, either at least one record is kept (itself or its pieces,
the first with split_index 0), or exactly one conversation-scope Dropped is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from curation.stage import Stage
from schemas.config import SplitConfig
from schemas.conversation import Conversation, Turn
from schemas.ledger import Dropped, StageResult

__all__ = [
    "TextTokenCounter",
    "TurnTokenCounter",
    "count_turn_texts",
    "piece_id",
    "plan_pieces",
    "split_long_conversations",
]

# Token counts of many texts in one call (one batch call is much faster than one per text).
TextTokenCounter = Callable[[Sequence[str]], list[int]]
# The content tokens of every turn of a batch of conversations, flat, in order: the stage's counts.
# In a run, ConversationEncoder.content_token_counts, whose encodings tokenize then reuses.
TurnTokenCounter = Callable[[Sequence[Conversation]], list[int]]


def count_turn_texts(count_texts: TextTokenCounter) -> TurnTokenCounter:
    """A turn counter that counts each turn's content as plain text (no chat template), in one call."""

    def count_turns(convs: Sequence[Conversation]) -> list[int]:
        return count_texts([turn.content for conv in convs for turn in conv.turns])

    return count_turns


# A conversation-scope detail lists at most this many rounds; the ledger is read by people.
_DETAIL_ROUNDS = 8


# What piece_id appends to its conversation's id (a regular expression, anchored at the end).
PIECE_ID_SUFFIX = r"--p\d+$"


def piece_id(conversation_id: str, index: int) -> str:
    """The id of piece `index` of a split conversation (it ends in PIECE_ID_SUFFIX)."""
    return f"{conversation_id}--p{index}"


@dataclass(frozen=True)
class RoundTooLong:
    """A round that fits no piece: `tokens` is its size, `system_tokens` of which the system turn's."""

    index: int
    tokens: int
    system_tokens: int

    def describe(self) -> str:
        system = f" system_tokens={self.system_tokens}" if self.system_tokens else ""
        return f"round={self.index} tokens={self.tokens}{system}"


@dataclass(frozen=True)
class PiecePlan:
    """Round indices for each piece, in order, and the rounds that fit no piece."""

    pieces: list[list[int]]
    too_long: list[RoundTooLong]


def plan_pieces(round_tokens: Sequence[int], *, system_tokens: int, config: SplitConfig) -> PiecePlan:
    """Greedy packing of rounds (sizes already include per-turn overhead) into pieces of at most
    config.max_tokens, closed at max_tokens * piece_target_ratio when the next round would pass it;
    `system_tokens` is the system turn's size, 0 without one."""
    # Tokens every piece starts with: the system turn when it is repeated, else nothing.
    opening = system_tokens if config.repeat_system_prompt else 0
    # A piece is closed once the next round would take it past the target; a round alone may still
    # use everything up to max_tokens, so no round is lost to the target.
    target = max(1, int(config.max_tokens * config.piece_target_ratio))
    pieces: list[list[int]] = []
    too_long: list[RoundTooLong] = []
    current: list[int] = []
    used = opening
    for index, tokens in enumerate(round_tokens):
        # An unrepeated system turn sits in the first piece, before round 0: it travels with it.
        carried = system_tokens if not config.repeat_system_prompt and index == 0 else 0
        size = tokens + carried
        if opening + size > config.max_tokens:
            too_long.append(RoundTooLong(index, opening + size, opening + carried))
            # Close the piece here, so each piece is a contiguous stretch of the original: the
            # next question may refer to the answer that was cut out.
            if current:
                pieces.append(current)
            current, used = [], opening
            continue
        if current and used + size > target:
            pieces.append(current)
            current, used = [], opening
        current.append(index)
        used += size
    if current:
        pieces.append(current)
    return PiecePlan(pieces, too_long)


def split_long_conversations(
    convs: Iterable[Conversation], *, count_tokens: TurnTokenCounter, config: SplitConfig
) -> StageResult:
    """Conversations over config.max_tokens replaced by pieces that fit; see the module doc.

    A turn's size is its content's tokens (`count_tokens`) + config.turn_overhead_tokens.
    """
    batch = list(convs)
    counts = count_tokens(batch)
    turns = sum(len(conv.turns) for conv in batch)
    if len(counts) != turns:
        raise ValueError(f"count_tokens returned {len(counts)} counts for {turns} turns")
    kept: list[Conversation] = []
    dropped: list[Dropped] = []
    changed = {"conversations_split": 0, "pieces_written": 0, "rounds_dropped_too_long": 0}
    start = 0
    for conv in batch:
        turn_tokens = [n + config.turn_overhead_tokens for n in counts[start : start + len(conv.turns)]]
        start += len(conv.turns)
        system, rounds = _system_and_rounds(conv)
        if sum(turn_tokens) <= int(config.max_tokens * config.piece_target_ratio):
            kept.append(conv)
            continue
        body_tokens = turn_tokens[1:] if system else turn_tokens
        round_tokens = [body_tokens[i] + body_tokens[i + 1] for i in range(0, len(body_tokens), 2)]
        plan = plan_pieces(round_tokens, system_tokens=turn_tokens[0] if system else 0, config=config)
        if not plan.pieces:
            dropped.append(_dropped(conv, _all_rounds_detail(plan.too_long, config), scope="conversation"))
            continue
        for r in plan.too_long:
            dropped.append(_dropped(conv, f"{r.describe()} max={config.max_tokens}", scope="round"))
        pieces = [_piece(conv, k, system, rounds, indices, config) for k, indices in enumerate(plan.pieces)]
        kept.extend(pieces)
        changed["conversations_split"] += 1
        changed["pieces_written"] += len(pieces)
        changed["rounds_dropped_too_long"] += len(plan.too_long)
    return StageResult(kept=kept, dropped=dropped, changed=changed)


def _system_and_rounds(conv: Conversation) -> tuple[Turn | None, list[tuple[Turn, Turn]]]:
    """The leading system turn (or None) and the (user, assistant) rounds; the shape stage
    guarantees this layout, so anything else is a pipeline bug and raises."""
    system = conv.turns[0] if conv.turns and conv.turns[0].role == "system" else None
    body = conv.turns[1:] if system else conv.turns
    users, assistants = body[0::2], body[1::2]
    if (
        not body
        or len(users) != len(assistants)
        or any(t.role != "user" for t in users)
        or any(t.role != "assistant" for t in assistants)
    ):
        roles = ",".join(t.role for t in conv.turns)
        raise ValueError(
            f"split needs shaped conversations (optional system, then user/assistant rounds); {conv.id!r} has {roles}"
        )
    return system, list(zip(users, assistants, strict=True))


def _piece(
    conv: Conversation,
    index: int,
    system: Turn | None,
    rounds: list[tuple[Turn, Turn]],
    round_indices: list[int],
    config: SplitConfig,
) -> Conversation:
    # An unrepeated system turn opens only the piece holding round 0: plan_pieces keeps the two
    # together, so if round 0 went to the ledger the system turn went with it.
    opening: tuple[Turn, ...] = ()
    if system is not None and (config.repeat_system_prompt or round_indices[0] == 0):
        opening = (system,)
    turns = opening + tuple(turn for i in round_indices for turn in rounds[i])
    update = {"id": piece_id(conv.id, index), "turns": turns, "parent_id": conv.id, "split_index": index}
    # model_copy keeps everything else, provenance included: a piece points at its raw record.
    return conv.model_copy(update=update)


def _all_rounds_detail(too_long: list[RoundTooLong], config: SplitConfig) -> str:
    listed = "; ".join(r.describe() for r in too_long[:_DETAIL_ROUNDS])
    more = f"; and {len(too_long) - _DETAIL_ROUNDS} more" if len(too_long) > _DETAIL_ROUNDS else ""
    return f"no round fits: {listed}{more} max={config.max_tokens}"


def _dropped(conv: Conversation, detail: str, *, scope: Literal["conversation", "round"]) -> Dropped:
    return Dropped.of(conv, stage="split", reason="round_too_long", detail=detail, scope=scope)


# Per part; the flow counts with the tokenizer and the chat template (a content's tokens depend on
# the header before it), so both are in the key.
SPLIT = Stage("split", split_long_conversations, config="split", also_keyed=("tokenizer", "shards.template"))
