"""Hostile input files: each becomes recorded drops with a clear reason, and the reading goes on."""

from __future__ import annotations

import gzip
import json
import os
import socket
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from curation.ingest.read import ingest_paths, list_inputs, read_conversations
from demo.chatgpt_html import sharegpt_page_html
from schemas import Conversation, Dropped
from schemas.config import IngestConfig
from tests.helpers.fifo import fifo_unblocked_after

CONFIG = IngestConfig()
DEEP = "[" * 1000 + "]" * 1000


def _good(record_id: str) -> dict[str, Any]:
    turns = [("human", f"question {record_id} " * 30), ("gpt", f"answer {record_id}")]
    return {"id": record_id, "conversations": [{"from": f, "value": v} for f, v in turns]}


def _outcomes(records: list[Conversation | Dropped]) -> list[tuple[str, str]]:
    return [("kept", r.id) if isinstance(r, Conversation) else ("dropped", r.reason) for r in records]


def _read(path: Path, config: IngestConfig = CONFIG) -> list[Conversation | Dropped]:
    return list(read_conversations(path, config=config))


def _drops(records: list[Conversation | Dropped]) -> list[Dropped]:
    return [r for r in records if isinstance(r, Dropped)]


# --- item 1: nesting depth, checked without recursion -------------------------------------------


@pytest.mark.parametrize("layout", ["array", "jsonl"])
def test_a_deeply_nested_record_is_one_drop_and_the_records_around_it_read(tmp_path: Path, layout: str) -> None:
    deep_record = '{"id": "deep", "conversations": ' + DEEP + "}"
    lines = [json.dumps(_good("a")), deep_record, json.dumps(_good("b"))]
    if layout == "array":
        path = tmp_path / "d.json"
        path.write_text("[" + ",\n".join(lines) + "]")
    else:
        path = tmp_path / "d.jsonl"
        path.write_text("\n".join(lines) + "\n")
    records = _read(path)
    assert _outcomes(records) == [("kept", "a"), ("dropped", "too_deeply_nested"), ("kept", "b")]
    [drop] = _drops(records)
    assert drop.byte_offset == path.read_bytes().index(b'{"id": "deep"')
    assert "1001" in drop.detail and "ingest.max_json_depth=64" in drop.detail


def test_a_file_that_is_one_deep_value_is_one_drop(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text(DEEP)
    (tmp_path / "deep_object.json").write_text('{"a":' * 5000 + "1" + "}" * 5000)
    (tmp_path / "z.json").write_text(json.dumps([_good("after")]))
    records = _read(tmp_path)
    assert _outcomes(records) == [
        ("dropped", "too_deeply_nested"),
        ("dropped", "too_deeply_nested"),
        ("kept", "after"),
    ]


def test_a_saved_page_whose_next_data_nests_too_deep_is_one_drop(tmp_path: Path) -> None:
    page = sharegpt_page_html(page_id="p1", items=[{"from": "human", "value": "hi"}])
    deep = page.replace('"props":', '"junk": ' + DEEP + ', "props":', 1)
    assert deep != page
    (tmp_path / "p.html").write_text(deep)
    assert _outcomes(_read(tmp_path / "p.html")) == [("dropped", "too_deeply_nested")]


def test_the_depth_limit_counts_from_the_record_and_brackets_in_strings_do_not_count(tmp_path: Path) -> None:
    # A ShareGPT record is 3 deep: the record, its conversations list, a turn.
    record = _good("three")
    record["conversations"][0]["value"] = "[[[[{{{{ not nesting"
    nested_turn = {"id": "four", "conversations": [{"from": "human", "value": "x", "meta": {"k": 1}}]}
    for name, data in [
        ("d.json", json.dumps([record, nested_turn])),
        ("d.jsonl", json.dumps(record) + "\n" + json.dumps(nested_turn) + "\n"),
    ]:
        (tmp_path / name).write_text(data)
        outcomes = _outcomes(_read(tmp_path / name, IngestConfig(max_json_depth=3)))
        assert outcomes == [("kept", "three"), ("dropped", "too_deeply_nested")], name


# --- items 2 and 3: only regular files are read -------------------------------------------------


@contextmanager
def _listening_socket(path: Path) -> Iterator[None]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        yield
    finally:
        sock.close()


def test_links_fifos_and_sockets_in_a_folder_are_drops_and_the_files_still_read(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps([_good("a")]))
    (folder / "b_dangling.json").symlink_to(folder / "gone.json")
    (folder / "c_loop.json").symlink_to(folder / "c_loop.json")
    (tmp_path / "outside.json").write_text(json.dumps([_good("linked")]))
    (folder / "d_link.json").symlink_to(tmp_path / "outside.json")
    os.mkfifo(folder / "e_fifo.json")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.json").write_text(json.dumps([_good("x")]))
    (folder / "g_linked_dir").symlink_to(tmp_path / "elsewhere")
    with _listening_socket(folder / "f.sock"), fifo_unblocked_after(folder / "e_fifo.json", seconds=20):
        records = _read(folder)
    assert _outcomes(records) == [
        ("kept", "a"),
        ("dropped", "not_a_readable_file"),
        ("dropped", "not_a_readable_file"),
        ("kept", "linked"),
        ("dropped", "not_a_readable_file"),
        ("dropped", "not_a_readable_file"),
        ("dropped", "not_a_readable_file"),
    ]
    details = {Path(d.input_file or "").name: d.detail for d in _drops(records)}
    assert "symbolic link" in details["b_dangling.json"] and "does not exist" in details["b_dangling.json"]
    assert "symbolic link" in details["c_loop.json"]
    assert "FIFO" in details["e_fifo.json"]
    assert "socket" in details["f.sock"]
    assert "directory" in details["g_linked_dir"] and "not read" in details["g_linked_dir"]


def test_a_fifo_given_as_the_input_path_is_a_drop(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with fifo_unblocked_after(fifo, seconds=20):
        records = _read(fifo)
    assert _outcomes(records) == [("dropped", "not_a_readable_file")]
    assert _drops(records)[0].input_file == str(fifo)


def test_a_character_device_is_a_drop(tmp_path: Path) -> None:
    if not Path("/dev/null").is_char_device():
        pytest.skip("needs /dev/null")
    (tmp_path / "null.json").symlink_to("/dev/null")
    [drop] = _drops(_read(tmp_path))
    assert drop.reason == "not_a_readable_file" and "character device" in drop.detail


@pytest.mark.skipif(os.geteuid() == 0, reason="root opens a file whatever its permission bits")
def test_a_file_that_cannot_be_opened_is_a_drop(tmp_path: Path) -> None:
    locked = tmp_path / "locked.json"
    locked.write_text(json.dumps([_good("a")]))
    locked.chmod(0)
    [drop] = _drops(_read(tmp_path))
    assert drop.reason == "not_a_readable_file" and "Permission" in drop.detail


# --- items 4 and 5: damaged gzip keeps what came before the damage; gzip is told by its bytes ---


def _dump(n: int) -> tuple[bytes, list[int]]:
    """A JSON array of `n` records, and the byte offset where each record ends."""
    data, ends = bytearray(b"["), []
    for i in range(n):
        if i:
            data += b",\n"
        data += json.dumps(_good(f"r{i}")).encode()
        ends.append(len(data))
    data += b"]\n"
    return bytes(data), ends


def _gzip_prefix(compressed: bytes) -> bytes:
    """The decompressed bytes zlib gives for `compressed` before it stops or fails, fed one byte at a time."""
    d = zlib.decompressobj(wbits=31)
    out = bytearray()
    for i in range(len(compressed)):
        try:
            out += d.decompress(compressed[i : i + 1])
        except zlib.error:
            break
    return bytes(out)


@pytest.mark.parametrize("chunk", [4096, 1024 * 1024])
def test_a_truncated_gzip_keeps_every_record_before_the_cut(tmp_path: Path, chunk: int) -> None:
    data, ends = _dump(20)
    compressed = gzip.compress(data)
    cut = compressed[: len(compressed) // 2]
    path = tmp_path / "d.json.gz"
    path.write_bytes(cut)
    records = _read(path, IngestConfig(read_chunk_bytes=chunk))
    readable_bytes = _gzip_prefix(cut)
    assert data.startswith(readable_bytes)
    readable = sum(1 for end in ends if end <= len(readable_bytes))
    assert readable >= 5
    assert _outcomes(records) == [("kept", f"r{i}") for i in range(readable)] + [("dropped", "corrupt_compression")]
    [drop] = _drops(records)
    assert drop.byte_offset == len(cut)
    assert f"compressed byte {len(cut)}" in drop.detail and "truncated" in drop.detail


def test_flipped_bytes_in_a_gzip_keep_the_records_before_the_damage(tmp_path: Path) -> None:
    data, _ = _dump(20)
    compressed = bytearray(gzip.compress(data))
    middle = len(compressed) // 2
    compressed[middle : middle + 8] = bytes(b ^ 0xFF for b in compressed[middle : middle + 8])
    path = tmp_path / "d.json.gz"
    path.write_bytes(bytes(compressed))
    records = _read(path)
    kept = [r.id for r in records if isinstance(r, Conversation)]
    assert len(kept) >= 5 and kept == [f"r{i}" for i in range(len(kept))]
    damage = [d for d in _drops(records) if d.reason == "corrupt_compression"]
    assert len(damage) == 1 and damage[0].byte_offset is not None
    assert middle <= damage[0].byte_offset < len(compressed)
    assert f"compressed byte {damage[0].byte_offset}" in damage[0].detail


def test_a_concatenated_multi_member_gzip_reads_every_member(tmp_path: Path) -> None:
    lines = [json.dumps(_good(f"m{i}")).encode() + b"\n" for i in range(3)]
    (tmp_path / "d.jsonl.gz").write_bytes(b"".join(gzip.compress(line) for line in lines))
    assert _outcomes(_read(tmp_path / "d.jsonl.gz")) == [("kept", "m0"), ("kept", "m1"), ("kept", "m2")]


@pytest.mark.parametrize(
    ("name", "compress"),
    [
        ("plain.json.gz", False),
        ("plain.jsonl.gz", False),
        ("gzipped.json", True),
        ("gzipped.jsonl", True),
        ("gzipped_no_extension", True),
    ],
)
def test_gzip_is_told_by_its_magic_bytes_not_by_the_name(tmp_path: Path, name: str, compress: bool) -> None:
    body = (
        "\n".join(json.dumps(_good(f"g{i}")) for i in range(3))
        if "jsonl" in name
        else json.dumps([_good(f"g{i}") for i in range(3)])
    ).encode()
    (tmp_path / name).write_bytes(gzip.compress(body) if compress else body)
    assert _outcomes(_read(tmp_path / name)) == [("kept", "g0"), ("kept", "g1"), ("kept", "g2")]


@pytest.mark.parametrize(
    ("magic", "what"),
    [(b"\x28\xb5\x2f\xfd", "zstd"), (b"BZh91AY&SY", "bzip2"), (b"\xfd7zXZ\x00", "xz"), (b"PK\x03\x04", "zip")],
)
def test_other_compression_is_one_drop_that_names_it(tmp_path: Path, magic: bytes, what: str) -> None:
    (tmp_path / "d.json").write_bytes(magic + bytes(range(256)) * 4)
    [drop] = _drops(_read(tmp_path / "d.json"))
    assert drop.reason == "unknown_format" and what in drop.detail


# --- item 6: a file reached twice is read once, and said so --------------------------------------


def test_a_file_reached_twice_is_listed_once_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps([_good("a")]))
    (folder / "b.json").write_text(json.dumps([_good("b")]))
    (tmp_path / "link.json").symlink_to(folder / "a.json")
    monkeypatch.chdir(tmp_path)
    given = [Path("in/a.json"), Path("./in/a.json"), Path("link.json"), Path("in"), folder / "b.json"]
    listing = list_inputs(given)
    assert listing.files == [Path("in/a.json"), Path("in/b.json")]
    assert listing.dropped == []
    assert len(listing.repeated) == 4
    assert all("read once" in warning for warning in listing.repeated)
    assert "link.json" in listing.repeated[1] and "in/a.json" in listing.repeated[1]
    records = list(ingest_paths(given, config=CONFIG))
    assert _outcomes(records) == [("kept", "a"), ("kept", "b")]


def test_a_copy_under_another_name_is_read_once_and_a_same_size_file_is_read(tmp_path: Path) -> None:
    # Before: the copy's records were read again, then dropped one by one as exact duplicates.
    (tmp_path / "a.json").write_text(json.dumps([_good("a"), _good("b")]))
    (tmp_path / "copy.json").write_bytes((tmp_path / "a.json").read_bytes())
    (tmp_path / "other.json").write_text(json.dumps([_good("c"), _good("d")]))  # same size, other bytes
    listing = list_inputs([tmp_path])
    assert listing.files == [tmp_path / "a.json", tmp_path / "other.json"]
    copy, first = tmp_path / "copy.json", tmp_path / "a.json"
    assert listing.repeated == (f"input {copy} has the same bytes as {first}: read once",)
    assert _outcomes(list(ingest_paths([tmp_path], config=CONFIG))) == [("kept", k) for k in "abcd"]
