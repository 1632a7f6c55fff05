"""train.data: the streaming shard reader, its row-group plan across ranks and workers, and versions."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

from curation.shards.pack import pack_conversations  # noqa: E402
from curation.shards.write import write_shards  # noqa: E402
from schemas.config import ShardsConfig  # noqa: E402
from schemas.shards import (  # noqa: E402
    LOSS_MASK_COLUMN,
    TokenizedConversation,
    TokenizerInfo,
    read_manifest,  # noqa: E402
)
from train.data import PackedShardDataset, row_group_plan  # noqa: E402

TOKENIZER = TokenizerInfo(name="test-tokenizer", sha256="0" * 64, vocab_size=32000, special_ids={"</s>": 2, "<s>": 1})
MAX_SEQ_LEN = 256
ROWS_PER_GROUP = 4


def chat(conversation_id: str, rng: np.random.Generator) -> TokenizedConversation:
    """A conversation longer than MAX_SEQ_LEN / 2, so every packed row holds exactly one."""
    prompt = rng.integers(3, 32000, int(rng.integers(40, 100))).tolist()
    answer = [*rng.integers(3, 32000, int(rng.integers(100, 140))).tolist(), 2]
    ids = [1, *prompt, *answer]
    mask = [0] * (1 + len(prompt)) + [1] * len(answer)
    return TokenizedConversation(conversation_id=conversation_id, input_ids=tuple(ids), loss_mask=tuple(mask))


def build(out: Path, conversations: int, layout: str = "packed") -> Path:
    rng = np.random.default_rng(conversations)
    convs = [chat(f"c{i:04d}", rng) for i in range(conversations)]
    config = ShardsConfig(
        max_seq_len=MAX_SEQ_LEN,
        layout=layout,  # type: ignore[arg-type]
        rows_per_row_group=ROWS_PER_GROUP,
        target_shard_bytes=8000,
        seed=5,
    )
    rows, dropped, _ = pack_conversations(convs, config=config)
    assert not dropped and len(rows) == conversations
    write_shards(rows, out, config=config, tokenizer_info=TOKENIZER, template="llama2", run_id="r", config_hash="h")
    return out


@pytest.fixture(scope="module")
def even(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("even"), 48)  # 12 row groups


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("odd"), 44)  # 11 row groups


def direct_rows(shards_dir: Path) -> dict[str, tuple[tuple[str, int], dict]]:
    """conversation id -> ((file, row_group), row) as pyarrow reads them, one row group at a time."""
    found: dict[str, tuple[tuple[str, int], dict]] = {}
    for info in read_manifest(shards_dir).shards:
        parquet = pq.ParquetFile(shards_dir / info.file)
        for group in range(parquet.num_row_groups):
            for row in parquet.read_row_group(group).to_pylist():
                (conversation_id,) = row["conversation_ids"]
                found[conversation_id] = ((info.file, group), row)
    return found


def read_rank(shards_dir: Path, *, rank: int, world_size: int, epoch: int, num_workers: int = 2) -> list[dict]:
    dataset = PackedShardDataset(shards_dir, rank=rank, world_size=world_size, seed=11)
    dataset.set_epoch(epoch)
    # spawn, as a CUDA trainer must use: forking a test process that runs Prefect and Dask threads
    # can kill the worker before it starts
    return list(
        DataLoader(
            dataset, batch_size=None, num_workers=num_workers, multiprocessing_context="spawn" if num_workers else None
        )
    )


def test_fixture_has_several_files_and_row_groups(even: Path, odd: Path) -> None:
    for shards_dir, groups in ((even, 12), (odd, 11)):
        manifest = read_manifest(shards_dir)
        assert len(manifest.shards) >= 3
        assert sum(info.row_groups for info in manifest.shards) == groups
        assert any(info.row_groups > 1 for info in manifest.shards)


@pytest.mark.parametrize("epoch", [0, 1])
def test_two_ranks_two_workers_read_every_row_group_once(even: Path, epoch: int) -> None:
    direct = direct_rows(even)
    per_rank = [read_rank(even, rank=rank, world_size=2, epoch=epoch) for rank in range(2)]
    groups = Counter(direct[row["conversation_ids"][0]][0] for rows in per_rank for row in rows)
    all_groups = {group for group, _ in direct.values()}
    assert set(groups) == all_groups and set(groups.values()) == {ROWS_PER_GROUP}  # rows read per row group
    conversations = Counter(c for rows in per_rank for row in rows for c in row["conversation_ids"])
    assert set(conversations) == set(direct) and set(conversations.values()) == {1}
    assert [len(rows) for rows in per_rank] == [24, 24]


def test_uneven_row_groups_are_padded_to_equal_steps(odd: Path) -> None:
    direct = direct_rows(odd)
    per_rank = [read_rank(odd, rank=rank, world_size=2, epoch=0) for rank in range(2)]
    assert [len(rows) for rows in per_rank] == [6 * ROWS_PER_GROUP] * 2  # ceil(11 / 2) full row groups each
    groups = Counter(direct[row["conversation_ids"][0]][0] for rows in per_rank for row in rows)
    assert set(groups) == {group for group, _ in direct.values()}
    assert sorted(groups.values()) == [ROWS_PER_GROUP] * 10 + [2 * ROWS_PER_GROUP]  # one wrapped around
    # Within one rank nothing repeats.
    for rows in per_rank:
        assert len({row["conversation_ids"][0] for row in rows}) == len(rows)


def test_different_epochs_give_different_orders_of_the_same_rows(even: Path) -> None:
    def order(epoch: int) -> list[str]:
        return [row["conversation_ids"][0] for row in read_rank(even, rank=0, world_size=1, epoch=epoch, num_workers=0)]

    first, again, second = order(0), order(0), order(1)
    assert first == again
    assert first != second and sorted(first) == sorted(second) == sorted(direct_rows(even))


def test_rows_equal_what_pyarrow_reads(even: Path) -> None:
    direct = direct_rows(even)
    rows = read_rank(even, rank=0, world_size=1, epoch=3, num_workers=0)
    assert len(rows) == len(direct)
    for row in rows:
        assert set(row) == {"input_ids", "loss_mask", "seq_lengths", "conversation_ids"}
        assert row["input_ids"].dtype == torch.long and row["input_ids"].dim() == 1
        assert row["loss_mask"].dtype == torch.uint8 and row["seq_lengths"].dtype == torch.long
        _, expected = direct[row["conversation_ids"][0]]
        assert row["input_ids"].tolist() == expected["input_ids"]
        assert row["loss_mask"].tolist() == expected[LOSS_MASK_COLUMN]
        assert row["seq_lengths"].tolist() == expected["seq_lengths"]
        assert row["conversation_ids"] == expected["conversation_ids"]
        assert int(row["seq_lengths"].sum()) == len(row["input_ids"])


@pytest.mark.parametrize("n", range(0, 14))
@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
@pytest.mark.parametrize("num_workers", [1, 2, 3])
def test_plan_covers_everything_with_equal_ranks(n: int, world_size: int, num_workers: int) -> None:
    pairs = [(f"shard-{i // 3:05d}.parquet", i % 3) for i in range(n)]
    per_rank = [
        [
            group
            for worker in range(num_workers)
            for group in row_group_plan(
                pairs, rank=rank, world_size=world_size, num_workers=num_workers, worker_id=worker, epoch=2, seed=9
            )
        ]
        for rank in range(world_size)
    ]
    expected = math.ceil(n / world_size)
    assert [len(groups) for groups in per_rank] == [expected] * world_size
    counts = Counter(group for groups in per_rank for group in groups)
    assert set(counts) == set(pairs)
    if n % world_size == 0:
        assert set(counts.values()) <= {1}
    else:
        assert sum(counts.values()) == expected * world_size and max(counts.values()) <= math.ceil(
            expected * world_size / n
        )


def test_plan_order_depends_on_seed_plus_epoch() -> None:
    pairs = [("a", i) for i in range(20)]

    def plan(epoch: int, seed: int) -> list[tuple[str, int]]:
        return row_group_plan(pairs, rank=0, world_size=1, num_workers=1, worker_id=0, epoch=epoch, seed=seed)

    assert plan(0, 1) == plan(1, 0) != plan(1, 1)
    assert sorted(plan(4, 1)) == pairs


def test_unknown_schema_version_is_refused(even: Path, tmp_path: Path) -> None:
    data = json.loads((even / "manifest.json").read_text("utf-8"))
    for version in ("99", None):
        data["schema_version"] = version
        (tmp_path / "manifest.json").write_text(json.dumps(data), "utf-8")
        with pytest.raises(ValueError, match="schema_version"):
            read_manifest(tmp_path)
        with pytest.raises(ValueError, match="does not know"):
            PackedShardDataset(tmp_path)


def test_unpacked_layout_is_refused(tmp_path: Path) -> None:
    build(tmp_path, 8, layout="unpacked")
    with pytest.raises(ValueError, match="packed"):
        PackedShardDataset(tmp_path)
