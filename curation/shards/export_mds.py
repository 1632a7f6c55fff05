"""`chatsift shards export --format mds`: the shards as MosaicML streaming MDS, the tokenized chat samples
LLM Foundry's finetuning loader reads (and Composer through it).

A sample is LLM Foundry's pre-tokenized chat format: one column, `turns` (MDS encoding "json"), a list of
{"input_ids", "attention_mask", "labels"} where `input_ids` is a turn's context and `labels` the tokens that
follow it and are trained. Its collator lays the turns end to end, context then labels, and (with
`target_prompts: none`, `target_responses: all`) trains exactly the labels. chatsift's per-token mask maps onto
that losslessly: every maximal untrained run followed by a trained run is one turn, so a zero-weighted refusal
simply stays in the next turn's context. Two things cannot be carried, and each is written to the export
manifest's `notes` per conversation:
- "untrained_tail_dropped": untrained tokens after a conversation's last trained one (a zero-weighted last
  answer): LLM Foundry's turns end in labels; the tokens change no loss, since nothing after them is trained;
- "trainer_appends_eos": a last answer that does not end in the tokenizer's EOS (a template closing with
  another token, or a conversation cut to max_seq_len): LLM Foundry's collator appends one EOS and trains it.

The layout is MDS version 2 as the `mosaicml-streaming` writer produces it (github.com/mosaicml/streaming,
streaming/base/format/mds): `index.json` naming each `shard.NNNNN.mds`; a shard is the sample count (uint32),
the samples' byte offsets from the file's start (uint32, count + 1), the shard's config as JSON, then the
samples, each the byte size of its variable-size columns (uint32) followed by their data. Uncompressed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from curation.shards.shard_rows import conversation_names, row_groups, token_rows
from schemas.files import atomic_write_bytes, atomic_write_text, file_sha256
from schemas.shards import IGNORE_INDEX, ExportFile, ExportNote, ShardsManifest

MDS_INDEX_NAME = "index.json"
# streaming's default shard size (MDSWriter's size_limit, 1 << 26 bytes)
MDS_SIZE_LIMIT = 1 << 26
_SHARD_CONFIG = {
    "column_encodings": ["json"],
    "column_names": ["turns"],
    "column_sizes": [None],
    "compression": None,
    "format": "mds",
    "hashes": [],
    "size_limit": MDS_SIZE_LIMIT,
    "version": 2,
}
_CONFIG_BYTES = json.dumps(_SHARD_CONFIG, sort_keys=True).encode("utf-8")


class FoundryTurns(NamedTuple):
    """One conversation as LLM Foundry's turns, and what could not be carried."""

    turns: list[dict[str, list[int]]]
    untrained_tail: int  # untrained tokens after the last trained one, left out
    appends_eos: bool  # the collator will append (and train) an EOS after the last turn


def foundry_turns(ids: np.ndarray, supervised: np.ndarray, eos_id: int | None) -> FoundryTurns:
    """A conversation's tokens and per-token supervision as (context, trained tokens) turns."""
    flat = supervised.astype(bool)
    rises = np.flatnonzero(flat & ~np.concatenate([[False], flat[:-1]]))
    falls = np.flatnonzero(flat & ~np.concatenate([flat[1:], [False]])) + 1
    turns, start = [], 0
    for rise, fall in zip(rises.tolist(), falls.tolist(), strict=True):
        context, trained = ids[start:rise].tolist(), ids[rise:fall].tolist()
        turns.append({"input_ids": context, "attention_mask": [1] * len(context), "labels": trained})
        start = fall
    last = turns[-1]["labels"][-1] if turns else None
    return FoundryTurns(turns, len(ids) - start if turns else len(ids), eos_id is not None and last != eos_id)


def _conversations(path: Path, source_layout: str) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(id, token ids, supervision) of each conversation of a shard file, in order."""
    for group in row_groups(path):
        t = token_rows(group, source_layout)
        ends = np.cumsum(t.conversations)
        for name, end, length in zip(
            conversation_names(group, source_layout), ends.tolist(), t.conversations.tolist(), strict=True
        ):
            yield name, t.ids[end - length : end], t.labels[end - length : end] != IGNORE_INDEX


class _ShardWriter:
    """Samples gathered into MDS shards of at most MDS_SIZE_LIMIT bytes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.samples: list[bytes] = []
        self.size = self.tokens = self.supervised = 0  # of the shard being gathered
        self.files: list[ExportFile] = []
        self.index: list[dict[str, Any]] = []  # index.json's entry of each shard written

    def add(self, turns: list[dict[str, list[int]]]) -> None:
        data = json.dumps(turns, separators=(",", ":")).encode("utf-8")
        sample = np.uint32(len(data)).tobytes() + data
        header = 4 * (len(self.samples) + 3) + len(_CONFIG_BYTES)
        if self.samples and header + self.size + len(sample) > MDS_SIZE_LIMIT:
            self.flush()
        self.samples.append(sample)
        self.size += len(sample)
        self.tokens += sum(len(t["input_ids"]) + len(t["labels"]) for t in turns)
        self.supervised += sum(len(t["labels"]) for t in turns)

    def flush(self) -> None:
        if not self.samples:
            return
        count = len(self.samples)
        start = 4 + 4 * (count + 1) + len(_CONFIG_BYTES)
        offsets = start + np.concatenate([[0], np.cumsum([len(s) for s in self.samples])])
        data = b"".join([np.uint32(count).tobytes(), offsets.astype(np.uint32).tobytes(), _CONFIG_BYTES, *self.samples])
        name = f"shard.{len(self.files):05d}.mds"
        atomic_write_bytes(self.folder / name, data)
        self.index.append(
            {
                **_SHARD_CONFIG,
                "raw_data": {"basename": name, "bytes": len(data), "hashes": {}},
                "samples": count,
                "zip_data": None,
            }
        )
        self.files.append(
            ExportFile(
                file=name,
                sha256=file_sha256(self.folder / name),
                rows=count,
                tokens=self.tokens,
                supervised_tokens=self.supervised,
            )
        )
        self.samples, self.size, self.tokens, self.supervised = [], 0, 0, 0


def write_mds(shards_dir: Path, folder: Path, source: ShardsManifest) -> tuple[list[ExportFile], list[ExportNote]]:
    """Every conversation of the shards as one MDS sample of LLM Foundry turns, in the shards' order; the
    shard files and the notes on what could not be carried as is."""
    writer = _ShardWriter(folder)
    notes: list[ExportNote] = []
    eos = source.tokenizer.eos_id
    for info in source.shards:
        for name, ids, mask in _conversations(shards_dir / info.file, source.layout):
            converted = foundry_turns(ids, mask, eos)
            if converted.untrained_tail:
                notes.append(
                    ExportNote(conversation_id=name, reason="untrained_tail_dropped", tokens=converted.untrained_tail)
                )
            if converted.appends_eos:
                notes.append(ExportNote(conversation_id=name, reason="trainer_appends_eos", tokens=1))
            writer.add(converted.turns)
    writer.flush()
    atomic_write_text(folder / MDS_INDEX_NAME, json.dumps({"shards": writer.index, "version": 2}, sort_keys=True))
    return writer.files, notes


def read_mds_samples(folder: Path, name: str) -> list[dict[str, Any]]:
    """The samples of one MDS shard of this export (the `turns` column decoded)."""
    data = (folder / name).read_bytes()
    count = int(np.frombuffer(data[:4], np.uint32)[0])
    offsets = np.frombuffer(data[4 : 4 + 4 * (count + 1)], np.uint32).astype(np.int64)
    samples = []
    for begin, end in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
        size = int(np.frombuffer(data[begin : begin + 4], np.uint32)[0])
        samples.append({"turns": json.loads(data[begin + 4 : begin + 4 + size])})
        if begin + 4 + size != end:
            raise ValueError(f"{name}: a sample's column size disagrees with its offsets")
    return samples


def mds_problems(folder: Path, info: ExportFile) -> tuple[list[str], list[tuple[np.ndarray, np.ndarray]]]:
    """What is wrong with one MDS shard of this export against its manifest entry and index.json, and each
    sample laid out as LLM Foundry's collator lays it out (ids, labels with IGNORE_INDEX on context)."""
    problems: list[str] = []
    index = json.loads((folder / MDS_INDEX_NAME).read_text("utf-8"))
    entry = next((s for s in index.get("shards", []) if s["raw_data"]["basename"] == info.file), None)
    if entry is None or entry["raw_data"]["bytes"] != (folder / info.file).stat().st_size:
        problems.append(f"{info.file}: not in {MDS_INDEX_NAME}, or of another size than it says")
    try:
        samples = read_mds_samples(folder, info.file)
    except (ValueError, json.JSONDecodeError) as e:
        return [*problems, f"{info.file}: not readable as MDS: {e}"], []
    stitched = []
    for sample in samples:
        turns = sample["turns"]
        if not turns or any(not t["input_ids"] or not t["labels"] for t in turns):
            problems.append(f"{info.file}: a sample with a turn of no context or no labels, which LLM Foundry rejects")
            continue
        ids = np.array([x for t in turns for x in (*t["input_ids"], *t["labels"])], dtype=np.int64)
        labels = np.array(
            [x for t in turns for x in (*[IGNORE_INDEX] * len(t["input_ids"]), *t["labels"])], dtype=np.int64
        )
        stitched.append((ids, labels))
    supervised = sum(int((labels != IGNORE_INDEX).sum()) for _, labels in stitched)
    found = (len(samples), sum(len(ids) for ids, _ in stitched), supervised)
    if entry is not None and entry["samples"] != len(samples):
        problems.append(f"{info.file}: {len(samples)} samples; {MDS_INDEX_NAME} says {entry['samples']}")
    if found != (info.rows, info.tokens, info.supervised_tokens):
        problems.append(
            f"{info.file}: samples, tokens, supervised tokens {found}; the manifest says "
            f"{(info.rows, info.tokens, info.supervised_tokens)}"
        )
    return problems, stitched
