"""Training shards: round trip, layout on disk, determinism, the verifier, and other readers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from curation.shards.pack import PackedRow, pack_conversations
from curation.shards.verify import SUPERVISED_CLOSE, SUPERVISED_OPEN, inspect_shards, verify_shards
from curation.shards.write import unpack_row, write_shards
from schemas.config import ShardsConfig
from schemas.shards import (
    LOSS_MASK_COLUMN,
    MANIFEST_NAME,
    ShardsManifest,
    TokenizedConversation,
    TokenizerInfo,
    read_manifest,
    shard_name,
)

TOKENIZER = TokenizerInfo(name="test-tokenizer", sha256="0" * 64, vocab_size=32000, special_ids={"</s>": 2, "<s>": 1})
MAX_SEQ_LEN = 256


def chat(conversation_id: str, rng: np.random.Generator) -> TokenizedConversation:
    """A template-like conversation: <s>, then rounds of prompt tokens (mask 0) and answer tokens
    ending in </s> (mask 1)."""
    ids, mask = [1], [0]
    for _ in range(int(rng.integers(1, 4))):
        prompt = rng.integers(3, 32000, int(rng.integers(4, 40))).tolist()
        answer = [*rng.integers(3, 32000, int(rng.integers(2, 80))).tolist(), 2]
        ids += prompt + answer
        mask += [0] * len(prompt) + [1] * len(answer)
    return TokenizedConversation(conversation_id=conversation_id, input_ids=tuple(ids), loss_mask=tuple(mask))


@pytest.fixture(scope="module")
def conversations() -> list[TokenizedConversation]:
    rng = np.random.default_rng(42)
    return [chat(f"sharegpt-{i:04d}--p0", rng) for i in range(400)]


def make_config(**overrides: object) -> ShardsConfig:
    options: dict[str, object] = {"max_seq_len": MAX_SEQ_LEN, "rows_per_row_group": 16, "seed": 7}
    return ShardsConfig.model_validate(options | overrides)


def write(convs: list[TokenizedConversation], out: Path, config: ShardsConfig) -> ShardsManifest:
    rows, _, _ = pack_conversations(convs, config=config)
    return write_shards(
        rows, out, config=config, tokenizer_info=TOKENIZER, template="llama2", run_id="run-1", config_hash="abc"
    )


def read_rows(out: Path) -> list[dict]:
    manifest = read_manifest(out)
    return [row for info in manifest.shards for row in pq.read_table(out / info.file).to_pylist()]


def fitting(convs: list[TokenizedConversation]) -> dict[str, TokenizedConversation]:
    return {c.conversation_id: c for c in convs if len(c.input_ids) <= MAX_SEQ_LEN}


@pytest.mark.parametrize("layout", ["packed", "unpacked"])
def test_round_trip_gives_back_every_conversation_once(
    conversations: list[TokenizedConversation], tmp_path: Path, layout: str
) -> None:
    manifest = write(conversations, tmp_path, make_config(layout=layout))
    expected = fitting(conversations)
    assert 0 < len(expected) < len(conversations), "the fixture has overlong conversations too"
    pieces = [piece for row in read_rows(tmp_path) for piece in unpack_row(row)]
    assert sorted(cid for cid, _, _ in pieces) == sorted(expected)
    for cid, ids, mask in pieces:
        assert tuple(ids) == expected[cid].input_ids and tuple(mask) == expected[cid].loss_mask
    assert manifest.total_conversations == len(expected)
    assert manifest.total_tokens == sum(len(c.input_ids) for c in expected.values())
    assert manifest.total_loss_tokens == sum(sum(c.loss_mask) for c in expected.values())
    if layout == "packed":
        assert manifest.packing is not None and manifest.packing.rows == manifest.total_rows
        assert manifest.total_rows < len(expected)
    else:
        assert manifest.packing is None and manifest.total_rows == len(expected)
    assert verify_shards(tmp_path) == []


def test_row_groups_have_the_configured_size_and_shards_split(
    conversations: list[TokenizedConversation], tmp_path: Path
) -> None:
    config = make_config(rows_per_row_group=8, target_shard_bytes=20_000)
    manifest = write(conversations, tmp_path, config)
    assert len(manifest.shards) > 1
    assert [info.file for info in manifest.shards] == [shard_name(i) for i in range(len(manifest.shards))]
    sizes = []
    for info in manifest.shards:
        meta = pq.ParquetFile(tmp_path / info.file).metadata
        sizes += [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        assert meta.row_group(0).column(0).compression == "ZSTD"
        # A shard grows past the target only when it holds a single row group.
        assert info.row_groups == 1 or (tmp_path / info.file).stat().st_size <= config.target_shard_bytes * 1.1
    assert all(size == 8 for size in sizes[:-1]) and 0 < sizes[-1] <= 8
    assert sum(sizes) == manifest.total_rows


def test_manifest_matches_files(conversations: list[TokenizedConversation], tmp_path: Path) -> None:
    manifest = write(conversations, tmp_path, make_config(target_shard_bytes=30_000))
    assert read_manifest(tmp_path) == manifest
    for info in manifest.shards:
        path = tmp_path / info.file
        assert hashlib.sha256(path.read_bytes()).hexdigest() == info.sha256
        table = pq.read_table(path)
        assert table.num_rows == info.rows
        assert pq.ParquetFile(path).metadata.num_row_groups == info.row_groups
        assert sum(table["num_tokens"].to_pylist()) == info.tokens
        assert sum(table["num_loss_tokens"].to_pylist()) == info.loss_tokens
        assert sum(len(ids) for ids in table["conversation_ids"].to_pylist()) == info.conversations
    assert manifest.total_rows == sum(info.rows for info in manifest.shards)
    assert (manifest.run_id, manifest.config_hash, manifest.template) == ("run-1", "abc", "llama2")


def dir_bytes(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_same_input_and_seed_give_byte_identical_files(
    conversations: list[TokenizedConversation], tmp_path: Path
) -> None:
    config = make_config(target_shard_bytes=30_000)
    write(conversations, tmp_path / "a", config)
    write(list(reversed(conversations)), tmp_path / "b", config)
    first, second = dir_bytes(tmp_path / "a"), dir_bytes(tmp_path / "b")
    assert len(first) > 2 and first == second
    write(conversations, tmp_path / "c", make_config(target_shard_bytes=30_000, seed=8))
    other = dir_bytes(tmp_path / "c")
    assert other["shard-00000.parquet"] != first["shard-00000.parquet"]
    rows_a = [tuple(r["conversation_ids"]) for r in read_rows(tmp_path / "a")]
    rows_c = [tuple(r["conversation_ids"]) for r in read_rows(tmp_path / "c")]
    assert rows_a != rows_c and sorted(rows_a) == sorted(rows_c)


def test_rewriting_a_folder_removes_stale_shards(conversations: list[TokenizedConversation], tmp_path: Path) -> None:
    many = write(conversations, tmp_path, make_config(target_shard_bytes=20_000))
    few = write(conversations[:50], tmp_path, make_config())
    assert len(many.shards) > len(few.shards) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST_NAME, "shard-00000.parquet"]
    assert verify_shards(tmp_path) == []


def test_no_rows_write_a_manifest_and_no_shards(tmp_path: Path) -> None:
    manifest = write_shards(
        [], tmp_path, config=make_config(), tokenizer_info=TOKENIZER, template="llama2", run_id="r", config_hash="h"
    )
    assert manifest.shards == [] and manifest.total_rows == 0
    assert verify_shards(tmp_path) == []


def test_writer_refuses_rows_that_break_the_contract(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    conv = chat("a", rng)
    with pytest.raises(ValueError, match="more than once"):
        write_shards(
            [PackedRow((conv,)), PackedRow((conv,))],
            tmp_path,
            config=make_config(),
            tokenizer_info=TOKENIZER,
            template="llama2",
            run_id="r",
            config_hash="h",
        )
    with pytest.raises(ValueError, match="longer than max_seq_len"):
        write_shards(
            [PackedRow((conv,))],
            tmp_path,
            config=make_config(max_seq_len=len(conv.input_ids) - 1),
            tokenizer_info=TOKENIZER,
            template="llama2",
            run_id="r",
            config_hash="h",
        )


# --- the verifier finds planted corruption ------------------------------------------------------


@pytest.fixture
def shards_dir(conversations: list[TokenizedConversation], tmp_path: Path) -> Path:
    out = tmp_path / "shards"
    write(conversations, out, make_config(target_shard_bytes=30_000))
    assert verify_shards(out) == []
    return out


def rewrite(out: Path, file: str, table: pa.Table, *, keep_manifest_sha: bool = False) -> None:
    """Replace a shard with `table` (same row-group size) and, unless asked not to, record its new
    sha256 in the manifest, so that only the planted problem remains to be found."""
    path = out / file
    pq.write_table(table, path, compression="zstd", row_group_size=make_config().rows_per_row_group)
    if not keep_manifest_sha:
        edit_manifest(out, lambda m: _set_sha(m, file, hashlib.sha256(path.read_bytes()).hexdigest()))


def _set_sha(manifest: dict, file: str, sha: str) -> None:
    for info in manifest["shards"]:
        if info["file"] == file:
            info["sha256"] = sha


def edit_manifest(out: Path, change) -> None:
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    change(manifest)
    (out / MANIFEST_NAME).write_text(json.dumps(manifest))


def with_column(table: pa.Table, name: str, values: list) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, table.schema.field(name), pa.array(values, type=table.schema.field(name).type))


def first_multi_conversation_row(table: pa.Table) -> int:
    return next(i for i, seqs in enumerate(table["seq_lengths"].to_pylist()) if len(seqs) >= 2)


def test_verifier_finds_a_supervised_conversation_start(shards_dir: Path) -> None:
    table = pq.read_table(shards_dir / "shard-00000.parquet")
    row = first_multi_conversation_row(table)
    masks = table[LOSS_MASK_COLUMN].to_pylist()
    start = table["seq_lengths"].to_pylist()[row][0]  # the second conversation's first token
    assert masks[row][start] == 0
    masks[row][start] = 1
    loss = table["num_loss_tokens"].to_pylist()
    loss[row] += 1  # keep the count right so only the start is wrong
    table = with_column(with_column(table, LOSS_MASK_COLUMN, masks), "num_loss_tokens", loss)
    rewrite(shards_dir, "shard-00000.parquet", table)
    problems = verify_shards(shards_dir)
    assert any(f"{LOSS_MASK_COLUMN} 1 at a conversation start" in p and f"rows {row}" in p for p in problems), problems
    # The manifest's loss-token count is now off by one as well; nothing else is wrong.
    assert len(problems) == 2 and any("loss_tokens" in p for p in problems), problems


def test_verifier_finds_a_wrong_seq_length(shards_dir: Path) -> None:
    table = pq.read_table(shards_dir / "shard-00000.parquet")
    row = first_multi_conversation_row(table)
    seqs = table["seq_lengths"].to_pylist()
    seqs[row][0] += 1
    rewrite(shards_dir, "shard-00000.parquet", with_column(table, "seq_lengths", seqs))
    problems = verify_shards(shards_dir)
    assert problems and any("sum(seq_lengths) != len(input_ids)" in p for p in problems), problems


def test_verifier_finds_a_shifted_conversation_boundary(shards_dir: Path) -> None:
    # Lengths that still add up, but the boundary moves one token left, onto the previous
    # conversation's supervised </s>: the second conversation now "starts" supervised.
    table = pq.read_table(shards_dir / "shard-00000.parquet")
    row = first_multi_conversation_row(table)
    seqs = table["seq_lengths"].to_pylist()
    seqs[row][0] -= 1
    seqs[row][1] += 1
    rewrite(shards_dir, "shard-00000.parquet", with_column(table, "seq_lengths", seqs))
    assert any("conversation start" in p for p in verify_shards(shards_dir))


def test_verifier_finds_a_tampered_file(shards_dir: Path) -> None:
    table = pq.read_table(shards_dir / "shard-00001.parquet")
    ids = table["input_ids"].to_pylist()
    ids[0][3] += 1  # a different token: every count still matches, only the bytes differ
    rewrite(shards_dir, "shard-00001.parquet", with_column(table, "input_ids", ids), keep_manifest_sha=True)
    assert verify_shards(shards_dir) == ["shard-00001.parquet: sha256 differs from the manifest"]


def test_verifier_finds_a_duplicated_conversation(shards_dir: Path) -> None:
    # Shard 1's first row replaced by a copy of shard 0's first row.
    donor = pq.read_table(shards_dir / "shard-00000.parquet").slice(0, 1)
    table = pq.read_table(shards_dir / "shard-00001.parquet")
    rewrite(shards_dir, "shard-00001.parquet", pa.concat_tables([donor, table.slice(1)]))
    problems = verify_shards(shards_dir)
    duplicated = donor["conversation_ids"].to_pylist()[0][0]
    assert any("appear more than once" in p and duplicated in p for p in problems), problems


def test_verifier_finds_a_missing_shard_and_a_stray_one(shards_dir: Path) -> None:
    (shards_dir / "shard-00001.parquet").rename(shards_dir / "shard-09999.parquet")
    problems = verify_shards(shards_dir)
    assert "shard-00001.parquet: listed in the manifest but missing" in problems
    assert "shard-09999.parquet: a shard file the manifest does not list" in problems


def test_verifier_finds_mask_values_and_overlong_rows(shards_dir: Path) -> None:
    table = pq.read_table(shards_dir / "shard-00000.parquet")
    masks = table[LOSS_MASK_COLUMN].to_pylist()
    position = masks[0].index(1)
    masks[0][position] = 2
    loss = table["num_loss_tokens"].to_pylist()
    loss[0] += 1
    rewrite(
        shards_dir,
        "shard-00000.parquet",
        with_column(with_column(table, LOSS_MASK_COLUMN, masks), "num_loss_tokens", loss),
    )
    assert any(f"{LOSS_MASK_COLUMN} not 0/1" in p for p in verify_shards(shards_dir))
    edit_manifest(shards_dir, lambda m: m.update(max_seq_len=100))
    assert any("longer than max_seq_len 100" in p for p in verify_shards(shards_dir))


def test_verifier_checks_schema_metadata_and_manifest_counts(shards_dir: Path) -> None:
    table = pq.read_table(shards_dir / "shard-00000.parquet")
    old_meta = table.schema.metadata
    rewrite(shards_dir, "shard-00000.parquet", table.replace_schema_metadata(old_meta | {b"chatsift.kind": b"other"}))
    edit_manifest(shards_dir, lambda m: m["shards"][1].update(rows=m["shards"][1]["rows"] + 1))
    problems = verify_shards(shards_dir)
    assert any("shard-00000.parquet: metadata chatsift.kind" in p for p in problems), problems
    assert any("shard-00001.parquet: manifest says rows=" in p for p in problems), problems
    assert any("total_rows" in p for p in problems), problems
    (shards_dir / MANIFEST_NAME).unlink()
    assert verify_shards(shards_dir)[0].startswith(f"{MANIFEST_NAME}: cannot be read")


# --- inspect ------------------------------------------------------------------------------------


def test_inspect_reports_stats_and_marks_supervised_spans(shards_dir: Path) -> None:
    manifest = read_manifest(shards_dir)
    report = inspect_shards(shards_dir, decode=lambda ids: "".join(f"<{i}>" for i in ids), sample_rows=2)
    assert f"rows {manifest.total_rows}," in report and f"tokens {manifest.total_tokens}," in report
    assert "row length histogram" in report and "conversation length histogram" in report
    assert report.count("--- sample row") == 2
    first = read_rows(shards_dir)[0]
    for cid, ids, mask in unpack_row(first):
        supervised = [i for i, m in zip(ids, mask, strict=True) if m]
        # The supervised tokens, and only they, sit inside the brackets.
        line = report.split(f"[{cid}]", 1)[1].splitlines()[1]
        inside = "".join(part.split(SUPERVISED_CLOSE)[0] for part in line.split(SUPERVISED_OPEN)[1:])
        assert inside == "".join(f"<{i}>" for i in supervised)
    assert SUPERVISED_OPEN in inspect_shards(shards_dir, decode=None, sample_rows=1)


# --- other readers open the shards as they are --------------------------------------------------


def canonical(rows: list[dict]) -> list[tuple]:
    return [tuple((k, tuple(v) if isinstance(v, list | np.ndarray) else v) for k, v in sorted(r.items())) for r in rows]


@pytest.mark.parametrize("layout", ["packed", "unpacked"])
def test_shards_open_in_polars_pyarrow_duckdb_and_datasets(
    conversations: list[TokenizedConversation], tmp_path: Path, layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "shards"
    manifest = write(conversations, out, make_config(layout=layout, target_shard_bytes=30_000))
    assert len(manifest.shards) > 1
    files = [str(out / info.file) for info in manifest.shards]
    expected = canonical(read_rows(out))
    assert len(expected) == manifest.total_rows

    import polars as pl

    frame = pl.read_parquet(str(out / "shard-*.parquet"))
    assert frame.schema["input_ids"] == pl.List(pl.Int32) and frame.schema[LOSS_MASK_COLUMN] == pl.List(pl.UInt8)
    assert canonical(frame.to_dicts()) == expected

    dataset = pads.dataset(files, format="parquet")
    assert dataset.count_rows() == manifest.total_rows
    assert canonical(dataset.to_table().to_pylist()) == expected

    duckdb = pytest.importorskip("duckdb")
    relation = duckdb.sql(f"SELECT * FROM read_parquet('{out}/shard-*.parquet')")
    columns = [c for c in relation.columns]
    duck_rows = [dict(zip(columns, values, strict=True)) for values in relation.fetchall()]
    assert sorted(canonical(duck_rows)) == sorted(expected)

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert loaded.num_rows == manifest.total_rows
    assert canonical(loaded.to_list()) == expected


@pytest.mark.parametrize("damage", ["truncate", "flip-a-byte"])
def test_verifier_reports_a_damaged_file_without_raising(shards_dir: Path, damage: str) -> None:
    path = shards_dir / "shard-00001.parquet"
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = verify_shards(shards_dir)
    assert problems[0] == "shard-00001.parquet: sha256 differs from the manifest"
    if damage == "truncate":
        assert any("not a readable Parquet file" in p for p in problems), problems
