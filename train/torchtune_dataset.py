"""torchtune reads `chatsift shards export --format torchtune` through this dataset builder.

torchtune's own builders (chat_dataset, SFTDataset) tokenize text and mask by role, so a turn chatsift
zero-weights (a refusal) would be trained on. This builder hands torchtune the export's tokens and labels as
they are, in the shapes its recipes collate: one conversation a sample ({"tokens", "labels"}, lists, for
padded_collate_sft), or with `packed: True` packs of `max_seq_len` tokens ({"tokens", "labels", "input_pos",
"seq_lens"}, tensors, for padded_collate_packed). A recipe config names it like any torchtune builder:

    dataset:
      _component_: train.torchtune_dataset.chatsift_dataset
      data_dir: runs/<run-id>/exports/torchtune
      packed: true

The recipe passes its tokenizer first; only its vocabulary size (checked against the export's), pad id and
max_seq_len are read. Imports torchtune only when packing an unpacked export (its PackedDataset); never
curation or flows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from schemas.shards import IGNORE_INDEX, ExportManifest, read_export_manifest

__all__ = ["ExportRows", "chatsift_dataset"]


class ExportRows(Dataset[dict[str, Any]]):
    """The rows of a torchtune export, in order: each a dict of its columns as Python lists."""

    def __init__(self, data_dir: str | Path, manifest: ExportManifest) -> None:
        tables = [pq.read_table(Path(data_dir) / info.file) for info in manifest.files]
        self.table = pa.concat_tables(tables) if tables else pa.table({"tokens": [], "labels": []})
        self.columns = self.table.column_names

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {name: self.table[name][index].as_py() for name in self.columns}


class _PaddedPacks(Dataset[dict[str, torch.Tensor]]):
    """chatsift's packed rows padded to `max_seq_len` as torchtune pads its own packs: padding ids, labels
    never trained, positions counting on (clamped below max_seq_len), and the padding as one more entry of
    seq_lens, so that padded_collate_packed's block-causal mask keeps it apart from every conversation."""

    def __init__(self, rows: ExportRows, *, max_seq_len: int, pad_id: int) -> None:
        self.rows, self.max_seq_len, self.pad_id = rows, max_seq_len, pad_id

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = self.rows[index]
        tokens = np.asarray(row["tokens"], dtype=np.int64)
        padding = self.max_seq_len - len(tokens)
        if padding < 0:
            raise ValueError(f"packed row {index} holds {len(tokens)} tokens, more than max_seq_len {self.max_seq_len}")
        positions = np.asarray(row["input_pos"], dtype=np.int64)
        after = (positions[-1] if len(positions) else -1) + 1 + np.arange(padding)
        return {
            "tokens": torch.from_numpy(np.pad(tokens, (0, padding), constant_values=self.pad_id)),
            "labels": torch.from_numpy(
                np.pad(np.asarray(row["labels"], dtype=np.int64), (0, padding), constant_values=IGNORE_INDEX)
            ),
            "input_pos": torch.from_numpy(np.concatenate([positions, np.minimum(after, self.max_seq_len - 1)])),
            "seq_lens": torch.tensor([*row["seq_lens"], *([padding] if padding else [])], dtype=torch.int64),
        }


def chatsift_dataset(
    tokenizer: Any = None,
    *,
    data_dir: str,
    packed: bool = False,
    max_seq_len: int | None = None,
    split_across_pack: bool = False,
) -> Dataset[Any]:
    """The torchtune export in `data_dir` as a torchtune dataset.

    `packed`: an unpacked export is packed by torchtune's PackedDataset; a packed export keeps chatsift's
    rows, padded to `max_seq_len`, and must be read packed (unpacked, its conversations would attend to
    each other). `max_seq_len`: default the tokenizer's, else the longest row.
    """
    manifest = read_export_manifest(data_dir)
    if manifest.format != "torchtune":
        raise ValueError(f"{data_dir} holds a {manifest.format} export: export the shards with --format torchtune")
    vocab = getattr(tokenizer, "vocab_size", None)
    if vocab is not None and int(vocab) != manifest.tokenizer.vocab_size:
        raise ValueError(
            f"the recipe's tokenizer has {vocab} tokens but {data_dir} was tokenized with "
            f"{manifest.tokenizer.name} ({manifest.tokenizer.vocab_size}): configure the model's own tokenizer"
        )
    rows = ExportRows(data_dir, manifest)
    if manifest.layout == "packed" and not packed:
        raise ValueError(
            f"{data_dir} holds packed rows: set `packed: True` in the dataset config, so that torchtune masks "
            "each conversation apart, or export the shards with --layout unpacked"
        )
    if not packed:
        return rows
    pad_id = getattr(tokenizer, "pad_id", None)
    pad_id = pad_id if pad_id is not None else (manifest.tokenizer.pad_id or 0)
    max_seq_len = max_seq_len or getattr(tokenizer, "max_seq_len", None)
    if manifest.layout == "packed":
        longest = pc.max(pc.list_value_length(rows.table["tokens"])).as_py() or 0
        return _PaddedPacks(rows, max_seq_len=max_seq_len or longest, pad_id=int(pad_id))
    if max_seq_len is None:
        raise ValueError("packing needs max_seq_len: set it on the dataset or on the tokenizer")
    from torchtune.datasets import PackedDataset

    return PackedDataset(rows, max_seq_len=max_seq_len, padding_idx=int(pad_id), split_across_pack=split_across_pack)
