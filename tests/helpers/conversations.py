"""The one place tests build `schemas.Conversation` records.

A turn is `(role, content)`, `(role, content, weight)` or a ready `Turn` (for a source role the
derivation below would not give). Unless told otherwise a turn's source role is the one ShareGPT
spells its role with: user -> "human", assistant -> "gpt", any other role as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schemas.conversation import Conversation, Provenance, Role, Turn

TurnSpec = tuple[Role, str] | tuple[Role, str, float | None] | Turn

# ShareGPT's role names for chatsift's roles, and back (the real dump also has "bing").
SOURCE_ROLE: dict[str, str] = {"user": "human", "assistant": "gpt"}
SHAREGPT_ROLES: dict[str, Role] = {"human": "user", "gpt": "assistant", "bing": "assistant", "system": "system"}


def turn(role: Role, content: str, weight: float | None = None, *, source_role: str | None = None) -> Turn:
    """One turn; its source role derived as ShareGPT spells it unless given."""
    if source_role is None:
        source_role = SOURCE_ROLE.get(role, role)
    return Turn(role=role, content=content, source_role=source_role, weight=weight)


def conversation(
    *turns: TurnSpec,
    id: str = "c1",
    model: str | None = None,
    title: str | None = None,
    source: str = "sharegpt_json",
    input_file: str = "in.json",
    byte_offset: int | None = None,
    record_index: int | None = 0,
    content_hash: str = "0",
    parent_id: str | None = None,
    split_index: int | None = None,
) -> Conversation:
    """A conversation of `turns`, with the provenance given (or a plain one)."""
    return Conversation(
        id=id,
        source=source,
        model=model,
        title=title,
        turns=tuple(t if isinstance(t, Turn) else turn(*t) for t in turns),
        parent_id=parent_id,
        split_index=split_index,
        provenance=Provenance(
            input_file=input_file, byte_offset=byte_offset, record_index=record_index, content_hash=content_hash
        ),
    )


def alternating(*texts: str, first: Role = "user", **fields: Any) -> Conversation:
    """A conversation whose turns alternate user/assistant, starting with `first`; `fields` as for
    `conversation`."""
    other: Role = "assistant" if first == "user" else "user"
    return conversation(*((first if i % 2 == 0 else other, text) for i, text in enumerate(texts)), **fields)


def sharegpt_turns(messages: Iterable[Mapping[str, Any]], roles: Mapping[str, Role] = SHAREGPT_ROLES) -> list[Turn]:
    """A ShareGPT record's messages as turns, each keeping the role name it was written with;
    messages whose role is not in `roles` are left out."""
    return [turn(roles[m["from"]], m["value"], source_role=m["from"]) for m in messages if m["from"] in roles]
