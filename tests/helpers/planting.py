"""Benchmark items planted in real ShareGPT conversations, for the contamination check's recall
(tests/curation/contamination/test_check_real.py and bench/contamination.py), and the rephrased
benchmark items of rephrased_dev.jsonl with their held-out split."""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any, NamedTuple

from curation.contamination.check import BenchmarkIndex, benchmark_views, build_benchmark_index
from schemas import Conversation
from schemas.config import ContaminationConfig
from schemas.contamination import BenchmarkItem
from schemas.conversation import Role
from tests.helpers.conversations import conversation, sharegpt_turns, turn

# The roles kept from a real record (its one "bing" turn and empty values are left out).
REAL_ROLES: dict[str, Role] = {"human": "user", "gpt": "assistant", "system": "system"}
REQUESTS = ("Can you help me with this question? ", "Please answer the following. ", "Quick one for you: ")


def embedded_index(items: list[BenchmarkItem], embed_units: Any) -> BenchmarkIndex:
    """A CPU index of `items` and their second views with the default config, embedded by `embed_units`."""
    config = ContaminationConfig()
    views = benchmark_views(items, config)
    return build_benchmark_index(
        items,
        embed_units([i.text for i in items]).vectors,
        config=config,
        gpu=False,
        view_vectors=embed_units([text for _, _, text in views]).vectors,
    )


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


# One shuffle of the real sample for every test that plants into it: the tests check the same
# conversations, so the suite's shared embedding cache (tests/conftest.py) embeds them once.
REAL_SHUFFLE_SEED = 20261121


def untouched_and_hosts(sample: list[dict[str, Any]], untouched: int) -> tuple[list[Conversation], list[Conversation]]:
    """The real sample's conversations in one fixed shuffled order: the first `untouched` are left as
    they are, the others are hosts to plant items into (taken from the end)."""
    convs = [c for i, raw in enumerate(sample) if (c := real_conversation(raw, i)) is not None]
    random.Random(REAL_SHUFFLE_SEED).shuffle(convs)
    return convs[:untouched], convs[untouched:]


def opening_round(conv: Conversation) -> Conversation:
    """`conv` up to the answer to its first user turn: every plant mode puts its item there or just
    after it, and the later turns are only more text to embed (their false positives are what the
    untouched conversations measure)."""
    first_user = next(i for i, t in enumerate(conv.turns) if t.role == "user")
    end = next((i for i in range(first_user + 1, len(conv.turns)) if conv.turns[i].role == "assistant"), first_user)
    return conv.model_copy(update={"turns": conv.turns[: end + 1]})


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


class Rephrasing(NamedTuple):
    """One row of ../shared/data/benchmarks/rephrased_dev.jsonl, keyed as the local presets key the item."""

    benchmark: str
    item_id: str
    original: str
    rephrased: str


def read_rephrasings(path: Path) -> list[Rephrasing]:
    """rephrased_dev.jsonl's rows with the preset item ids: its GSM8K "test/<row>" is "gsm8k_test/<row>", its MMLU
    "<subject>/<row>" is "<subject>_test/<row>" (the file stems of the local presets); HumanEval's task ids are kept."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        benchmark, item_id = row["benchmark"], row["id"]
        if benchmark == "gsm8k":
            item_id = "gsm8k_test/" + item_id.split("/", 1)[1]
        elif benchmark == "mmlu":
            subject, number = item_id.split("/", 1)
            item_id = f"{subject}_test/{number}"
        out.append(Rephrasing(benchmark, item_id, row["original"], row["rephrased"]))
    return out


def held_out(r: Rephrasing) -> bool:
    """The fifth of rephrased_dev held out from calibration, chosen by a hash of the item's key (stable across runs)."""
    return hashlib.blake2b(f"{r.benchmark}/{r.item_id}".encode(), digest_size=8).digest()[0] % 5 == 0
