"""Benchmark items planted in real ShareGPT conversations, for the contamination check's recall
(tests/curation/contamination/test_check_real.py and bench/contamination.py)."""

from __future__ import annotations

import random
import re
from typing import Any

from schemas import Conversation
from schemas.conversation import Role
from tests.helpers.conversations import conversation, sharegpt_turns, turn

# The roles kept from a real record (its one "bing" turn and empty values are left out).
REAL_ROLES: dict[str, Role] = {"human": "user", "gpt": "assistant", "system": "system"}
REQUESTS = ("Can you help me with this question? ", "Please answer the following. ", "Quick one for you: ")


def real_conversation(raw: dict[str, Any], index: int) -> Conversation | None:
    """Record `index` of the real sample as a Conversation ("real-<index>"); None when it has no
    user turn once unknown roles and empty values are left out."""
    messages = [m for m in raw["conversations"] if m["value"].strip()]
    turns = sharegpt_turns(messages, REAL_ROLES)
    if not any(t.role == "user" for t in turns):
        return None
    return conversation(
        *turns,
        id=f"real-{index}",
        input_file="sharegpt_sample.json",
        record_index=index,
        content_hash=f"{index:032x}",
    )


def light_edit(text: str, rng: random.Random) -> str:
    """A light edit of the kind a user makes when retyping a question: case, spacing, one typo,
    a dropped trailing question mark, a 'please'."""
    edits = rng.sample(["lower", "spaces", "typo", "punct", "please"], 2)
    if "typo" in edits:
        words = [m for m in re.finditer(r"[A-Za-z]{5,}", text)]
        if words:
            w = rng.choice(words)
            i = w.start() + rng.randrange(1, len(w.group()) - 2)
            text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if "lower" in edits:
        text = text.lower()
    if "spaces" in edits:
        text = re.sub(r"[ \t]+", "  ", text)
    if "punct" in edits:
        text = text.rstrip().rstrip("?.!")
    if "please" in edits:
        text = "Please: " + text
    return text


def plant(host: Conversation, text: str, mode: str, pid: str) -> tuple[Conversation, int]:
    """`host` with `text` planted, renamed `pid`; returns it and the index of the turn holding the
    plant. Modes: "new_round" (a new user turn and its answer at the end), "paragraph" (a
    paragraph after the first user turn's text), "request" (the first user turn replaced by a
    request phrase and `text`)."""
    turns = list(host.turns)
    if mode == "new_round":
        turns += [turn("user", text), turn("assistant", "Here is a worked answer.")]
        at = len(turns) - 2
    else:
        at = next(i for i, t in enumerate(turns) if t.role == "user")
        content = turns[at].content + "\n\n" + text if mode == "paragraph" else request_phrase(pid) + text
        turns[at] = turns[at].model_copy(update={"content": content})
    return host.model_copy(update={"id": pid, "turns": tuple(turns)}), at


def request_phrase(pid: str) -> str:
    """The request phrase a "request" plant puts before the item, chosen by the plant's id."""
    return REQUESTS[sum(map(ord, pid)) % len(REQUESTS)]
