"""`chatsift shards export --format messages`: the shards' conversations as text, for chat-template loaders.

Each line (JSONL) or row (Parquet) is `{"id": ..., "messages": [{"role", "content", "training"}, ...]}`,
the shape TRL's and axolotl's conversational loaders read. `training` is the flag axolotl's
`chat_template` loader takes per message (`message_field_training: training`): true on the answers the
shards supervise, false on every other turn, so a zero-weighted refusal stays untrained. (TRL's
`assistant_only_loss` does not read it and would train every answer.)

The text comes from the run's conversations/ (beside shards/ in a curate run); the export holds
exactly the conversations the shards hold, under the shards' ids (a repeated id gets "~2", "~3" as
the pack step gave it), and is checked against the shards: every conversation found, and as many
training answers as the shards have supervised spans in it. A conversation the shards cut to
max_seq_len is exported whole (the manifest counts them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.parquet import atomic_write_table, read_conversations_parquet
from curation.shards.chat_templates import is_supervised
from curation.shards.pack import repeat_id
from curation.shards.verify import flat_and_lengths
from schemas.arrow import KIND_KEY, SCHEMA_VERSION, SCHEMA_VERSION_KEY
from schemas.conversation import Conversation
from schemas.errors import ConfigError, InputError
from schemas.files import atomic_write_text, file_sha256
from schemas.run_layout import conversation_parts
from schemas.shards import LOSS_MASK_COLUMN, ExportFile, ShardsManifest

MESSAGES_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field(
            "messages",
            pa.list_(
                pa.struct(
                    [
                        pa.field("role", pa.string(), nullable=False),
                        pa.field("content", pa.string(), nullable=False),
                        pa.field("training", pa.bool_(), nullable=False),
                    ]
                )
            ),
            nullable=False,
        ),
    ],
    metadata={SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode(), KIND_KEY: b"messages"},
)


class ShardConversation(NamedTuple):
    """What the shards hold of one conversation: its supervised tokens and answer spans."""

    supervised_tokens: int
    spans: int


def shard_conversations(shards_dir: Path, source: ShardsManifest) -> dict[str, ShardConversation]:
    """Every conversation of the shards by its id there, in order."""
    found: dict[str, ShardConversation] = {}
    for info in source.shards:
        table = pq.read_table(shards_dir / info.file)
        mask, row_lengths = flat_and_lengths(table[LOSS_MASK_COLUMN])
        if source.layout == "packed":
            lengths = flat_and_lengths(table["seq_lengths"])[0]
            ids = [i for row in table["conversation_ids"].to_pylist() for i in row]
        else:
            lengths, ids = row_lengths, table["conversation_id"].to_pylist()
        ends = np.cumsum(lengths)
        for conversation_id, start, end in zip(ids, ends - lengths, ends, strict=True):
            own = mask[start:end].astype(np.int8)
            opens = int(own[0]) + int((np.diff(own) == 1).sum()) if len(own) else 0
            found[conversation_id] = ShardConversation(int(own.sum()), opens)
    return found


def _named_as_in_shards(
    conversations_dir: Path, in_shards: dict[str, ShardConversation]
) -> Iterator[tuple[str, Conversation]]:
    """The conversations of `conversations_dir` the shards hold, under their ids there: the pack step
    numbers a repeated id among the conversations tokenize kept (those with an answer to train on)."""
    seen: dict[str, int] = {}
    for part in conversation_parts(conversations_dir):
        for conv in read_conversations_parquet(Path(part)):
            if not any(is_supervised(t) for t in conv.turns):
                continue  # tokenize dropped it (no_supervised_tokens): the run's ledger has it
            n = seen[conv.id] = seen.get(conv.id, 0) + 1
            shard_id = repeat_id(conv.id, n)
            if shard_id in in_shards:
                yield shard_id, conv


def messages_record(shard_id: str, conv: Conversation) -> dict[str, object]:
    return {
        "id": shard_id,
        "messages": [{"role": t.role, "content": t.content, "training": is_supervised(t)} for t in conv.turns],
    }


def write_messages(
    shards_dir: Path, folder: Path, source: ShardsManifest, *, conversations_dir: Path | None, file_format: str
) -> ExportFile:
    """The shards' conversations as messages in `folder` (data-00000.jsonl or .parquet), checked against the
    shards; the file's entry for the manifest."""
    conversations_dir = conversations_dir or shards_dir.parent / "conversations"
    if not conversation_parts(conversations_dir):
        raise ConfigError(
            f"the messages export reads the conversations' text, and {conversations_dir} holds no conversation parts: "
            "pass the run's conversations/ folder with --conversations"
        )
    in_shards = shard_conversations(shards_dir, source)
    records = [messages_record(shard_id, conv) for shard_id, conv in _named_as_in_shards(conversations_dir, in_shards)]
    problems = check_messages(records, in_shards, truncated=bool(source.packing and source.packing.truncated))
    if problems:
        raise InputError(f"{conversations_dir} does not hold the conversations of {shards_dir}: " + "; ".join(problems))
    path = folder / f"data-00000.{file_format}"
    if file_format == "jsonl":
        text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        atomic_write_text(path, text)
    else:
        atomic_write_table(path, pa.Table.from_pylist(records, schema=MESSAGES_SCHEMA), schema=MESSAGES_SCHEMA)
    supervised = sum(in_shards[str(r["id"])].supervised_tokens for r in records)
    # no token count: the trainer tokenizes the text; supervised: the shards' count for these conversations
    return ExportFile(
        file=path.name, sha256=file_sha256(path), rows=len(records), tokens=0, supervised_tokens=supervised
    )


def read_messages(path: Path) -> list[dict[str, object]]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    rows: list[dict[str, object]] = pq.read_table(path).to_pylist()
    return rows


def check_messages(
    records: list[dict[str, object]], in_shards: dict[str, ShardConversation], *, truncated: bool = False
) -> list[str]:
    """Every way `records` fail to be the shards' conversations: one missing, one extra, or training
    flags on other answers than the shards supervise (their count against the shards' spans; where the
    shards cut conversations to max_seq_len, a cut one may have fewer spans)."""
    problems: list[str] = []
    ids = [str(r["id"]) for r in records]
    missing = [i for i in in_shards if i not in set(ids)]
    if missing:
        problems.append(f"{len(missing)} conversation(s) of the shards not found, e.g. {missing[0]!r}")
    extra = [i for i in ids if i not in in_shards]
    if extra or len(set(ids)) != len(ids):
        problems.append(f"conversation(s) the shards do not hold, or held twice, e.g. {(extra or ids)[0]!r}")
    wrong = []
    for record in records:
        messages = record["messages"]
        assert isinstance(messages, list)
        training = sum(1 for m in messages if m["training"])
        shard = in_shards.get(str(record["id"]))
        if shard is not None and (training < shard.spans if truncated else training != shard.spans):
            wrong.append(f"{record['id']!r} trains {training} answer(s), the shards supervise {shard.spans}")
    if wrong:
        problems.append(f"{len(wrong)} conversation(s) with other training flags than the shards' mask: {wrong[0]}")
    return problems
