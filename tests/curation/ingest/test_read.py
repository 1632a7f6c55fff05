"""curation.ingest.read: every input record ends as a Conversation or as one ingest Dropped record."""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from curation.ingest.read import ingest_paths, read_conversations
from demo.chatgpt_html import sharegpt_page_html
from schemas import Conversation, Dropped
from schemas.config import IngestConfig

CONFIG = IngestConfig()
GPT_HTML = '<div class="markdown prose w-full break-words dark:prose-invert light"><p>Hi <b>there</b></p></div>'


def _read(path: Path, config: IngestConfig = CONFIG) -> list[Conversation | Dropped]:
    return list(read_conversations(path, config=config))


def _outcomes(records: list[Conversation | Dropped]) -> list[tuple[str, str]]:
    """("kept", id) or ("dropped", reason) per record, in order: what every test compares."""
    return [("kept", r.id) if isinstance(r, Conversation) else ("dropped", r.reason) for r in records]


def _only_drop(records: list[Conversation | Dropped]) -> Dropped:
    drops = [r for r in records if isinstance(r, Dropped)]
    assert len(drops) == 1, drops
    return drops[0]


def _sharegpt(record_id: str, *turns: tuple[str, str]) -> dict[str, Any]:
    return {"id": record_id, "conversations": [{"from": f, "value": v} for f, v in turns]}


def _good(record_id: str) -> dict[str, Any]:
    return _sharegpt(record_id, ("human", f"question {record_id}"), ("gpt", f"answer {record_id}"))


def _dump_bytes(parts: list[bytes], separator: bytes = b",\n  ") -> tuple[bytes, list[int]]:
    """A JSON array of already-serialised records, and the byte offset of each record."""
    data = bytearray(b"[\n  ")
    offsets = []
    for i, part in enumerate(parts):
        if i:
            data += separator
        offsets.append(len(data))
        data += part
    data += b"\n]\n"
    return bytes(data), offsets


def _encode(record: Any) -> bytes:
    return json.dumps(record, ensure_ascii=False, indent=1).encode()


def _page(tmp_path: Path, name: str, page_id: str = "AbC123x", **kwargs: Any) -> Path:
    items = kwargs.pop("items", [{"from": "human", "value": "Hello <b> & é"}, {"from": "gpt", "value": GPT_HTML}])
    path = tmp_path / name
    path.write_text(sharegpt_page_html(page_id=page_id, items=items, **kwargs), encoding="utf-8")
    return path


# --- formats -------------------------------------------------------------------------------------


def test_saved_page_becomes_a_conversation_with_html_kept(tmp_path: Path) -> None:
    path = _page(tmp_path, "AbC123x.html", title="Greetings", model="Model: GPT-4")
    [conv] = _read(path)
    assert isinstance(conv, Conversation)
    assert (conv.id, conv.source, conv.model, conv.title) == (
        "AbC123x",
        "sharegpt_page",
        "Model: GPT-4",
        "Greetings",
    )
    assert [(t.role, t.source_role, t.content) for t in conv.turns] == [
        ("user", "human", "Hello <b> & é"),
        ("assistant", "gpt", GPT_HTML),
    ]
    assert conv.provenance.page_id == "AbC123x"
    assert conv.provenance.input_file == str(path)
    assert conv.provenance.record_index == 0
    assert conv.provenance.content_hash == hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


def test_page_without_model_banner_has_no_model(tmp_path: Path) -> None:
    [conv] = _read(_page(tmp_path, "free.htm", page_id="free1"))
    assert isinstance(conv, Conversation)
    assert conv.model is None and conv.title is None and len(conv.turns) == 2


def test_page_whose_message_contains_a_script_end_tag(tmp_path: Path) -> None:
    items = [{"from": "human", "value": "what does </script><script>alert(1)</script> do?"}]
    [conv] = _read(_page(tmp_path, "p.html", items=items))
    assert isinstance(conv, Conversation)
    assert conv.turns[0].content == items[0]["value"]


@pytest.mark.parametrize("compressed", [False, True])
def test_json_dump_offsets_and_hashes_are_those_of_the_record_bytes(tmp_path: Path, compressed: bool) -> None:
    records = [
        _sharegpt("a1", ("human", "héllo wörld 🌍"), ("gpt", 'a "quoted" {brace} [bracket] \\ back')),
        {"id": "b2", "model": "Model: GPT-4", "conversations": [{"from": "human", "value": "ü" * 50}]},
        _good("c3"),
    ]
    parts = [_encode(r) for r in records]
    data, offsets = _dump_bytes(parts)
    path = tmp_path / ("dump.json.gz" if compressed else "dump.json")
    path.write_bytes(gzip.compress(data) if compressed else data)

    convs = _read(path)
    assert _outcomes(convs) == [("kept", "a1"), ("kept", "b2"), ("kept", "c3")]
    for conv, record, offset, part, index in zip(convs, records, offsets, parts, range(3), strict=True):
        assert isinstance(conv, Conversation)
        assert conv.source == "sharegpt_json"
        # Offsets count bytes of the decompressed stream, not characters.
        assert conv.provenance.byte_offset == offset
        assert conv.provenance.record_index == index
        assert conv.provenance.content_hash == hashlib.blake2b(part, digest_size=16).hexdigest()
        assert [t.content for t in conv.turns] == [t["value"] for t in record["conversations"]]
    assert convs[1].model == "Model: GPT-4" and convs[0].model is None


def test_json_file_holding_one_record(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps(_good("solo")), encoding="utf-8")
    [conv] = _read(path)
    assert isinstance(conv, Conversation) and conv.id == "solo" and conv.provenance.byte_offset == 0


@pytest.mark.parametrize("chunk", [1, 3, 17, 64, 1024 * 1024])
def test_dump_reads_the_same_whatever_the_chunk_size(tmp_path: Path, chunk: int) -> None:
    tricky = 'ends in backslash \\ and quote \\" then }]{[ and \\\\" done'
    records = [_sharegpt(f"r{i}", ("human", tricky * i), ("gpt", f"é{i}")) for i in range(6)]
    data = json.dumps(records).encode()
    path = tmp_path / "d.json"
    path.write_bytes(data)
    convs = _read(path, IngestConfig(read_chunk_bytes=chunk))
    assert _outcomes(convs) == [("kept", f"r{i}") for i in range(6)]
    assert [c.turns[0].content for c in convs if isinstance(c, Conversation)] == [tricky * i for i in range(6)]


@pytest.mark.parametrize("name", ["mixed.jsonl", "mixed.jsonl.gz"])
def test_jsonl_lines_by_record_shape(tmp_path: Path, name: str) -> None:
    lines = [
        json.dumps(_good("sg1")),
        "",  # blank lines are not records
        json.dumps({"instruction": "Add 2 and 3.", "input": "", "output": "5"}),
        json.dumps(
            {
                "id": "tulu_7",
                "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
            }
        ),
    ]
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    convs = _read(path)
    assert [c.source for c in convs if isinstance(c, Conversation)] == [
        "sharegpt_jsonl",
        "alpaca",
        "messages",
    ]
    assert [c.provenance.byte_offset for c in convs if isinstance(c, Conversation)] == [
        0,
        len(lines[0]) + 2,
        len(lines[0]) + len(lines[2]) + 3,
    ]
    assert [c.provenance.record_index for c in convs if isinstance(c, Conversation)] == [0, 1, 2]


def test_alpaca_joins_instruction_and_input_and_gets_a_content_hash_id(tmp_path: Path) -> None:
    rec_with_input = {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"}
    rec_without = {"instruction": "Name a colour.", "output": "Blue"}
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([rec_with_input, rec_without, {"id": "keep-me", **rec_without}]), encoding="utf-8")
    first, second, third = _read(path)
    assert isinstance(first, Conversation) and isinstance(second, Conversation) and isinstance(third, Conversation)
    assert [(t.role, t.source_role, t.content) for t in first.turns] == [
        ("user", "instruction", "Translate to French.\n\nGood morning"),
        ("assistant", "output", "Bonjour"),
    ]
    assert second.turns[0].content == "Name a colour."
    assert first.source == second.source == "alpaca"
    assert first.id == "alpaca-" + first.provenance.content_hash[:16]
    assert second.id == "alpaca-" + second.provenance.content_hash[:16]
    assert first.id != second.id
    assert third.id == "keep-me"
    # The same record in another file gets the same id: no per-process salt.
    again = tmp_path / "again.jsonl"
    again.write_text(json.dumps(rec_with_input, indent=1).replace("\n", " ") + "\n", encoding="utf-8")
    [copy] = _read(again)
    assert isinstance(copy, Conversation)
    assert copy.provenance.content_hash == hashlib.blake2b(again.read_bytes().rstrip(b"\n"), digest_size=16).hexdigest()


def test_messages_records_map_roles(tmp_path: Path) -> None:
    record = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
        ]
    }
    path = tmp_path / "m.json"
    path.write_text(json.dumps([record]), encoding="utf-8")
    [conv] = _read(path)
    assert isinstance(conv, Conversation)
    assert conv.source == "messages" and conv.id.startswith("messages-")
    assert [t.role for t in conv.turns] == ["system", "user", "assistant"]


@pytest.mark.parametrize(
    ("source_role", "role"),
    [
        ("human", "user"),
        ("user", "user"),
        ("Human", "user"),
        ("gpt", "assistant"),
        ("chatgpt", "assistant"),
        ("assistant", "assistant"),
        ("bing", "assistant"),
        ("bard", "assistant"),
        ("system", "system"),
    ],
)
def test_role_mapping_keeps_the_source_spelling(tmp_path: Path, source_role: str, role: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps([_sharegpt("x", (source_role, "text"))]), encoding="utf-8")
    [conv] = _read(path)
    assert isinstance(conv, Conversation)
    assert (conv.turns[0].role, conv.turns[0].source_role) == (role, source_role)


def test_directory_is_read_recursively_in_sorted_order_skipping_hidden(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".cache").mkdir()
    (tmp_path / "b" / "z.json").write_text(json.dumps([_good("bz")]), encoding="utf-8")
    (tmp_path / "a.jsonl").write_text(json.dumps(_good("a")) + "\n", encoding="utf-8")
    (tmp_path / "c.json").write_text(json.dumps([_good("c")]), encoding="utf-8")
    (tmp_path / ".hidden.json").write_text(json.dumps([_good("hidden")]), encoding="utf-8")
    (tmp_path / ".cache" / "x.json").write_text(json.dumps([_good("cached")]), encoding="utf-8")
    _page(tmp_path / "b", "page.html", page_id="bpage")
    assert _outcomes(_read(tmp_path)) == [("kept", "a"), ("kept", "bpage"), ("kept", "bz"), ("kept", "c")]
    chained = list(ingest_paths([tmp_path / "c.json", tmp_path / "a.jsonl"], config=CONFIG))
    assert _outcomes(chained) == [("kept", "c"), ("kept", "a")]


def test_missing_path_is_an_error_not_a_drop(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _read(tmp_path / "nope.json")


# --- the real sample -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_sample_reads_every_record(sharegpt_sample_path: Path, sharegpt_sample: list[dict[str, Any]]) -> None:
    records = _read(sharegpt_sample_path)
    kept = [r for r in records if isinstance(r, Conversation)]
    dropped = [r for r in records if isinstance(r, Dropped)]
    assert len(kept) + len(dropped) == len(sharegpt_sample) == 3003
    assert dropped == []
    assert [c.id for c in kept] == [r["id"] for r in sharegpt_sample]
    assert [len(c.turns) for c in kept] == [len(r["conversations"]) for r in sharegpt_sample]
    assert [c.turns[-1].content for c in kept if c.turns] == [
        r["conversations"][-1]["value"] for r in sharegpt_sample if r["conversations"]
    ]
    assert sum(1 for c in kept if not c.turns) == 21
    offsets = [c.provenance.byte_offset for c in kept]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)


# --- bad input: exactly the expected drop, and the neighbours still come through ------------------


def test_truncated_page_is_invalid_json_and_the_next_page_is_read(tmp_path: Path) -> None:
    whole = sharegpt_page_html(page_id="cut1", items=[{"from": "human", "value": "x" * 200}])
    (tmp_path / "a.html").write_text(whole[: whole.index("x" * 100)], encoding="utf-8")
    _page(tmp_path, "b.html", page_id="fine")
    records = _read(tmp_path)
    assert _outcomes(records) == [("dropped", "invalid_json"), ("kept", "fine")]
    drop = _only_drop(records)
    assert "truncated" in drop.detail and drop.input_file == str(tmp_path / "a.html")
    assert drop.conversation_id == "a.html#0"


def test_page_without_next_data(tmp_path: Path) -> None:
    (tmp_path / "a.html").write_text("<html><body><p>Just a page</p></body></html>", encoding="utf-8")
    _page(tmp_path, "b.html", page_id="fine")
    assert _outcomes(_read(tmp_path)) == [("dropped", "no_next_data"), ("kept", "fine")]


@pytest.mark.parametrize("page_props", [{"id": "p1", "views": 3, "comments": []}, {"id": "p1", "content": None}, {}])
def test_next_data_without_page_content(tmp_path: Path, page_props: dict[str, Any]) -> None:
    payload = json.dumps({"props": {"pageProps": page_props}, "page": "/c/[id]"})
    (tmp_path / "a.html").write_text(
        f'<html><script id="__NEXT_DATA__" type="application/json">{payload}</script></html>',
        encoding="utf-8",
    )
    _page(tmp_path, "b.html", page_id="fine")
    assert _outcomes(_read(tmp_path)) == [("dropped", "no_page_content"), ("kept", "fine")]


def test_invalid_json_record_in_a_dump_drops_only_that_record(tmp_path: Path) -> None:
    bad = b'{"id": "bad", "conversations": [{"from": "human" "value": "missing colon"}]}'
    data, offsets = _dump_bytes([_encode(_good("a")), bad, _encode(_good("c"))])
    path = tmp_path / "d.json"
    path.write_bytes(data)
    records = _read(path)
    assert _outcomes(records) == [("kept", "a"), ("dropped", "invalid_json"), ("kept", "c")]
    drop = _only_drop(records)
    assert (drop.byte_offset, drop.record_index, drop.conversation_id) == (offsets[1], 1, "d.json#1")


@pytest.mark.parametrize("separator", [b",\n  ", b","])
def test_record_cut_short_mid_dump_resynchronises_on_the_next_record(tmp_path: Path, separator: bytes) -> None:
    cut = _encode(_sharegpt("b", ("human", "the download broke in the mid"), ("gpt", "never seen")))
    cut = cut[: cut.index(b"mid") + 3]
    after = [f"c{i}" for i in range(30)]
    data, offsets = _dump_bytes([_encode(_good("a")), cut] + [_encode(_good(i)) for i in after], separator)
    path = tmp_path / "d.json"
    path.write_bytes(data)
    # The records after the cut are far over max_record_bytes together: the reader must notice the
    # broken record early rather than swallow what follows as one oversized value.
    records = _read(path, IngestConfig(read_chunk_bytes=16, max_record_bytes=1000))
    assert len(data) - offsets[1] > 3000
    assert _outcomes(records) == [("kept", "a"), ("dropped", "invalid_json")] + [("kept", i) for i in after]
    drop = _only_drop(records)
    assert drop.byte_offset == offsets[1]
    assert f"next record start at byte {offsets[2]}" in drop.detail


@pytest.mark.parametrize("chunk", [5, 16, 1024])
def test_noise_inside_a_record_is_skipped_up_to_the_next_record(tmp_path: Path, chunk: int) -> None:
    noisy = b'{"id": "b", "conversations": [' + b"<html> download error, retry later " * 20 + b"]}"
    data, offsets = _dump_bytes([_encode(_good("a")), noisy, _encode(_good("c")), _encode(_good("d"))])
    path = tmp_path / "d.json"
    path.write_bytes(data)
    records = _read(path, IngestConfig(read_chunk_bytes=chunk))
    assert _outcomes(records) == [("kept", "a"), ("dropped", "invalid_json"), ("kept", "c"), ("kept", "d")]
    drop = _only_drop(records)
    assert (drop.byte_offset, drop.record_index) == (offsets[1], 1)
    assert f"next record start at byte {offsets[2]}" in drop.detail


def test_random_damage_costs_at_most_the_damaged_record(tmp_path: Path) -> None:
    """Seeded damage (a changed byte, a deleted run, inserted junk) to a 30-record dump: the reader
    never raises, and every record but at most one comes through or is accounted for by a drop."""
    rnd = random.Random(20231121)
    records = [
        _sharegpt(f"r{i}", ("human", f'q{i} "x" \\ {{}}[] é'), ("gpt", "a" * rnd.randint(0, 300))) for i in range(30)
    ]
    base = json.dumps(records, ensure_ascii=False, indent=1).encode()
    path = tmp_path / "d.json"
    for _ in range(150):
        data = bytearray(base)
        at = rnd.randrange(len(data))
        damage = rnd.randrange(3)
        if damage == 0:
            data[at] = rnd.randrange(256)
        elif damage == 1:
            del data[at : at + rnd.randint(1, 200)]
        else:
            data[at:at] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 20)))
        path.write_bytes(bytes(data))
        out = _read(path, IngestConfig(read_chunk_bytes=rnd.choice([1, 7, 64, 4096])))
        kept = [r.id for r in out if isinstance(r, Conversation)]
        assert len(set(kept)) == len(kept) and set(kept) <= {f"r{i}" for i in range(30)}
        assert len(out) >= 29, (damage, at, [(r.reason, r.detail) for r in out if isinstance(r, Dropped)])


def test_dump_cut_inside_its_last_record_drops_the_tail_as_one(tmp_path: Path) -> None:
    data, offsets = _dump_bytes([_encode(_good("a")), _encode(_good("b"))])
    path = tmp_path / "d.json"
    path.write_bytes(data[: offsets[1] + 30])
    records = _read(path)
    assert _outcomes(records) == [("kept", "a"), ("dropped", "invalid_json")]
    drop = _only_drop(records)
    assert "tail of 30 bytes" in drop.detail and drop.byte_offset == offsets[1]


def test_dump_cut_between_records_reports_the_unclosed_array(tmp_path: Path) -> None:
    data, offsets = _dump_bytes([_encode(_good("a")), _encode(_good("b"))])
    path = tmp_path / "d.json"
    path.write_bytes(data[: offsets[1] - 1])
    records = _read(path)
    assert _outcomes(records) == [("kept", "a"), ("dropped", "invalid_json")]
    assert "truncated" in _only_drop(records).detail


def test_truncated_gzip_keeps_what_was_readable_and_reports_the_rest(tmp_path: Path) -> None:
    records_in = [_sharegpt(f"r{i}", ("human", f"{i} " * 3000)) for i in range(40)]
    compressed = gzip.compress(json.dumps(records_in).encode())
    path = tmp_path / "d.json.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    records = _read(path, IngestConfig(read_chunk_bytes=4096))
    kept = [r for r in records if isinstance(r, Conversation)]
    drops = [r for r in records if isinstance(r, Dropped)]
    assert 0 < len(kept) < 40
    assert [c.id for c in kept] == [f"r{i}" for i in range(len(kept))]
    # The record cut by the damage is not a drop of its own: the one damage drop stands for the rest.
    assert [d.reason for d in drops] == ["corrupt_compression"]
    assert drops[0].byte_offset == len(compressed) // 2


def test_gzipped_page_is_read_and_limited_by_its_decompressed_size(tmp_path: Path) -> None:
    page = sharegpt_page_html(page_id="gzpage", items=[{"from": "human", "value": "q" * 5000}])
    (tmp_path / "a.html.gz").write_bytes(gzip.compress(page.encode()))
    assert _outcomes(_read(tmp_path / "a.html.gz")) == [("kept", "gzpage")]
    small = IngestConfig(max_record_bytes=4000, read_chunk_bytes=1000)
    assert _outcomes(_read(tmp_path / "a.html.gz", small)) == [("dropped", "record_too_large")]


def test_bad_jsonl_line_is_one_drop(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    path.write_text("\n".join([json.dumps(_good("a")), '{"id": "b", "conversations": [', json.dumps(_good("c"))]))
    records = _read(path)
    assert _outcomes(records) == [("kept", "a"), ("dropped", "invalid_json"), ("kept", "c")]
    assert _only_drop(records).record_index == 1


@pytest.mark.parametrize("name", ["d.json", "d.jsonl"])
def test_invalid_utf8_drops_only_that_record(tmp_path: Path, name: str) -> None:
    bad = json.dumps(_sharegpt("b", ("human", "caf\u00e9")), ensure_ascii=False).encode().replace(b"\xc3\xa9", b"\xe9")
    parts = [json.dumps(_good("a")).encode(), bad, json.dumps(_good("c")).encode()]
    data = b"\n".join(parts) + b"\n" if name.endswith("l") else _dump_bytes(parts)[0]
    path = tmp_path / name
    path.write_bytes(data)
    records = _read(path)
    assert _outcomes(records) == [("kept", "a"), ("dropped", "invalid_utf8"), ("kept", "c")]
    assert "0xe9" in _only_drop(records).detail


def test_lone_surrogate_escape_is_invalid_utf8_but_a_surrogate_pair_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(
        '[{"id": "lone", "conversations": [{"from": "human", "value": "x\\ud800y"}]},'
        ' {"id": "pair", "conversations": [{"from": "human", "value": "\\ud83d\\ude00"}]}]',
        encoding="utf-8",
    )
    records = _read(path)
    assert _outcomes(records) == [("dropped", "invalid_utf8"), ("kept", "pair")]
    assert isinstance(records[1], Conversation) and records[1].turns[0].content == "😀"


def test_huge_page_is_dropped_by_size_without_reading_it(tmp_path: Path) -> None:
    big = sharegpt_page_html(page_id="big", items=[{"from": "human", "value": "y" * (50 * 1024 * 1024)}])
    (tmp_path / "a_big.html").write_text(big, encoding="utf-8")
    del big
    _page(tmp_path, "b.html", page_id="fine")
    tracemalloc.start()
    try:
        records = _read(tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert _outcomes(records) == [("dropped", "record_too_large"), ("kept", "fine")]
    assert peak < 5 * 1024 * 1024, "the 50 MB page was read"
    assert "not read" in _only_drop(records).detail


@pytest.mark.parametrize("chunk", [64, 1024 * 1024])
def test_record_over_the_limit_inside_a_dump_is_skipped(tmp_path: Path, chunk: int) -> None:
    huge = _sharegpt("huge", ("human", "z" * 5000))
    data, offsets = _dump_bytes([_encode(_good("a")), _encode(huge), _encode(_good("c"))])
    path = tmp_path / "d.json"
    path.write_bytes(data)
    records = _read(path, IngestConfig(max_record_bytes=1000, read_chunk_bytes=chunk))
    assert _outcomes(records) == [("kept", "a"), ("dropped", "record_too_large"), ("kept", "c")]
    assert _only_drop(records).byte_offset == offsets[1]


def test_line_over_the_limit_in_jsonl_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    lines = [
        json.dumps(_good("a")),
        json.dumps(_sharegpt("huge", ("human", "z" * 5000))),
        json.dumps(_good("c")),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    records = _read(path, IngestConfig(max_record_bytes=1000, read_chunk_bytes=100))
    assert _outcomes(records) == [("kept", "a"), ("dropped", "record_too_large"), ("kept", "c")]
    assert [r.provenance.byte_offset for r in records if isinstance(r, Conversation)] == [
        0,
        len(lines[0]) + len(lines[1]) + 2,
    ]


def test_zero_turn_conversation_is_kept_with_no_turns(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps([_sharegpt("empty"), _good("b")]), encoding="utf-8")
    records = _read(path)
    assert _outcomes(records) == [("kept", "empty"), ("kept", "b")]
    assert isinstance(records[0], Conversation) and records[0].turns == ()


@pytest.mark.parametrize(
    "bad_id", ["../../etc/passwd", "a/b", "..", "x..y", "", ".hidden", "sp ace", "a" * 129, "nul\x00l"]
)
def test_unsafe_id_is_dropped_and_not_used_as_the_ledger_id(tmp_path: Path, bad_id: str) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps([_good(bad_id), _good("ok.id_1-2")]), encoding="utf-8")
    records = _read(path)
    assert _outcomes(records) == [("dropped", "unsafe_id"), ("kept", "ok.id_1-2")]
    assert _only_drop(records).conversation_id == "d.json#0"


def test_unsafe_page_id(tmp_path: Path) -> None:
    _page(tmp_path, "a.html", page_id="../../etc/passwd")
    assert _outcomes(_read(tmp_path)) == [("dropped", "unsafe_id")]


def test_unknown_role_names_the_role(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    lines = [json.dumps(_sharegpt("n", ("human", "hi"), ("narrator", "once upon"))), json.dumps(_good("b"))]
    path.write_text("\n".join(lines), encoding="utf-8")
    records = _read(path)
    assert _outcomes(records) == [("dropped", "unknown_role"), ("kept", "b")]
    drop = _only_drop(records)
    assert "'narrator'" in drop.detail and drop.conversation_id == "n"


@pytest.mark.parametrize(
    "record",
    [
        {"id": "v", "conversations": [{"from": "human", "value": 42}]},
        {"id": "v", "conversations": [{"from": "human"}]},
        {"id": "v", "conversations": [{"from": None, "value": "x"}]},
        {"id": "v", "conversations": ["human: hi"]},
        {"id": "v", "conversations": None},
        {"id": "v", "model": "Model: GPT-4"},
        {"id": ["v"], "conversations": []},
        {"id": "v", "model": 4, "conversations": []},
        {"instruction": "do", "output": None},
        {"instruction": "do", "input": 3, "output": "ok"},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]},
        {"messages": "hi"},
    ],
)
def test_known_format_with_wrong_field_types_is_invalid_record(tmp_path: Path, record: dict[str, Any]) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps([record, _good("b")]), encoding="utf-8")
    assert _outcomes(_read(path)) == [("dropped", "invalid_record"), ("kept", "b")]


@pytest.mark.parametrize("value", [{"prompt": "hi", "completion": "there"}, [1, 2], "text", 42, None])
def test_unrecognised_json_shape_is_unknown_format(tmp_path: Path, value: Any) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps([_good("a"), value, _good("c")]), encoding="utf-8")
    records = _read(path)
    assert _outcomes(records) == [("kept", "a"), ("dropped", "unknown_format"), ("kept", "c")]
    assert _only_drop(records).record_index == 1


def test_unknown_file_type_is_sniffed_or_dropped(tmp_path: Path) -> None:
    (tmp_path / "a_notes.txt").write_text("just some notes\n", encoding="utf-8")
    (tmp_path / "b_dump.data").write_text(json.dumps([_good("sniffed")]), encoding="utf-8")
    records = _read(tmp_path)
    assert _outcomes(records) == [("dropped", "unknown_format"), ("kept", "sniffed")]


@pytest.mark.parametrize(
    ("name", "content"), [("e.json", b""), ("e.jsonl", b"\n\n"), ("e.html", b""), ("e.json", b"[ ]")]
)
def test_empty_input(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    (tmp_path / "z.json").write_text(json.dumps([_good("after")]), encoding="utf-8")
    records = _read(tmp_path)
    assert _outcomes(records) == [("dropped", "empty_input"), ("kept", "after")]
    assert _only_drop(records).input_file == str(tmp_path / name)


# --- streaming memory ----------------------------------------------------------------------------


def test_reading_a_60mb_dump_keeps_memory_bounded(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    paragraph = "Streaming keeps memory flat. " * 100 + "é\n"
    count = 0
    with path.open("w", encoding="utf-8") as f:
        f.write("[")
        while f.tell() < 60 * 1024 * 1024:
            if count:
                f.write(",\n")
            record = _sharegpt(f"rec{count}", ("human", paragraph * 2), ("gpt", paragraph * 3))
            f.write(json.dumps(record, ensure_ascii=False))
            count += 1
        f.write("]")
    kept = 0
    tracemalloc.start()
    try:
        for record in read_conversations(path, config=CONFIG):
            kept += isinstance(record, Conversation)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert kept == count
    assert peak < 20 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while reading a 60 MB dump"


def test_a_30mb_record_is_skipped_without_holding_it(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    huge = json.dumps(_sharegpt("huge", ("human", "long text, " * 3_000_000))).encode()
    path.write_bytes(_dump_bytes([_encode(_good("a")), huge, _encode(_good("c"))])[0])
    del huge
    config = IngestConfig(max_record_bytes=1024 * 1024, read_chunk_bytes=256 * 1024)
    tracemalloc.start()
    try:
        records = _read(path, config)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert _outcomes(records) == [("kept", "a"), ("dropped", "record_too_large"), ("kept", "c")]
    assert peak < 4 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB while skipping a 33 MB record"
