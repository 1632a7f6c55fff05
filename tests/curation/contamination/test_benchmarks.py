"""Benchmark readers: every preset on the real files, and each format on small synthetic files."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections import Counter, defaultdict
from pathlib import Path

import polars as pl
import pytest

from curation.contamination.benchmarks import (
    BenchmarkRead,
    BenchmarkReadError,
    _hub_frames,
    read_benchmark_items,
    read_benchmark_items_parquet,
    read_benchmarks,
    reference_answers,
    write_benchmark_items,
)
from curation.parquet import SchemaVersionError, write_ledger
from schemas.config import LOCAL_BENCHMARK_PRESETS, BenchmarkSpec, ContaminationConfig
from schemas.contamination import BenchmarkItem

# shared/data/SOURCES.md: question rows per benchmark in benchmark_questions.jsonl.
QUESTION_COUNTS = {
    "mmlu": 14042,
    "gsm8k": 1319,
    "arc_challenge": 1172,
    "alpaca_eval": 805,
    "truthfulqa": 790,
    "ifeval": 541,
    "humaneval": 164,
    "mt_bench": 160,
    "vicuna_bench": 80,
}
# benchmark_questions.jsonl strips every text; the raw files do not. These texts begin or end
# with whitespace as published (MMLU: a leading space; HumanEval: every prompt ends in "\n";
# AlpacaEval and IFEval: trailing spaces or newlines). Nothing differs inside any text.
OUTER_WHITESPACE = {"mmlu": 963, "humaneval": 164, "alpaca_eval": 5, "ifeval": 4}
FIRST_IDS = {
    "mmlu": "abstract_algebra_test/0",
    "gsm8k": "gsm8k_test/0",
    "arc_challenge": "Mercury_7175875",
    "alpaca_eval": "alpaca_eval_example_outputs/0",
    "truthfulqa": "TruthfulQA/0",
    "ifeval": "1000",
    "humaneval": "HumanEval/0",
    "mt_bench": "81/turn1",
    "vicuna_bench": "1/turn1",
}


def _preset(shared_data: Path, name: str) -> BenchmarkSpec:
    spec = LOCAL_BENCHMARK_PRESETS[name]
    folder = shared_data / "benchmarks" if name == "arc_challenge" else shared_data / "benchmarks" / "raw"
    return spec.model_copy(update={"path": str(folder / spec.path)})


@pytest.fixture(scope="module")
def derived_texts(shared_data: Path) -> dict[str, list[str]]:
    texts: dict[str, list[str]] = defaultdict(list)
    with open(shared_data / "benchmarks" / "benchmark_questions.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            texts[row["benchmark"]].append(row["text"])
    return texts


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(LOCAL_BENCHMARK_PRESETS))
def test_real_preset_matches_the_derived_questions(
    shared_data: Path, derived_texts: dict[str, list[str]], name: str
) -> None:
    got = read_benchmark_items(_preset(shared_data, name))
    assert got.skipped_empty == 0
    assert {i.kind for i in got.items} == {"question"} and {i.benchmark for i in got.items} == {name}
    texts = [i.text for i in got.items]
    assert len(texts) == QUESTION_COUNTS[name] == len(derived_texts[name])
    assert got.items[0].item_id == FIRST_IDS[name]
    assert len({i.item_id for i in got.items}) == len(texts)
    # Exact after stripping the outer whitespace that the derived file stripped ...
    assert Counter(t.strip() for t in texts) == Counter(derived_texts[name])
    assert all(t == t.strip() for t in derived_texts[name])
    # ... and the reader keeps it: exactly these texts differ from the derived file.
    assert sum(t != t.strip() for t in texts) == OUTER_WHITESPACE.get(name, 0)
    assert sum((Counter(texts) - Counter(derived_texts[name])).values()) == OUTER_WHITESPACE.get(name, 0)


@pytest.mark.shared_data
def test_real_answers(shared_data: Path) -> None:
    def answers(name: str) -> BenchmarkRead:
        got = read_benchmark_items(_preset(shared_data, name), index_answers=True)
        return BenchmarkRead([i for i in got.items if i.kind == "answer"], got.skipped_empty)

    gsm8k = answers("gsm8k")
    assert len(gsm8k.items) == 1319 and gsm8k.items[0].item_id == "gsm8k_test/0/answer"
    assert gsm8k.items[0].text.endswith("#### 18")
    humaneval = answers("humaneval")
    assert len(humaneval.items) == 164 and humaneval.items[0].item_id == "HumanEval/0/answer"
    assert "for idx, elem in enumerate(numbers)" in humaneval.items[0].text
    # MT-Bench: 39 of 80 questions carry a reference per turn; 8 of those 78 are "".
    mt = answers("mt_bench")
    assert len(mt.items) == 70 and mt.skipped_empty == 41 + 8
    assert mt.items[0].item_id == "95/answer1" and mt.items[0].text.startswith("It means")
    assert {i.item_id.rsplit("/", 1)[0] for i in mt.items} <= {f"{q}" for q in range(81, 161)}
    assert len(answers("truthfulqa").items) == 790
    assert answers("arc_challenge").items == []  # no answer_fields
    # each question finds its reference answer, an MT-Bench turn its own turn's
    both = [
        *read_benchmark_items(_preset(shared_data, "gsm8k"), index_answers=True).items,
        *read_benchmark_items(_preset(shared_data, "mt_bench"), index_answers=True).items,
    ]
    found = reference_answers(both)
    assert found[("gsm8k", "gsm8k_test/0")] == gsm8k.items[0].text
    assert len([k for k in found if k[0] == "gsm8k"]) == 1319
    assert found[("mt_bench", "95/turn1")] == mt.items[0].text and ("mt_bench", "81/turn1") not in found
    assert found[("mt_bench", "95/turn2")] == next(i.text for i in mt.items if i.item_id == "95/answer2")


@pytest.mark.shared_data
def test_real_presets_through_the_config(shared_data: Path) -> None:
    raw = sorted(n for n in LOCAL_BENCHMARK_PRESETS if n != "arc_challenge")
    raw_dir = str(shared_data / "benchmarks" / "raw")
    config = ContaminationConfig.model_validate({"presets": raw, "presets_dir": raw_dir})
    items = read_benchmarks(config.benchmark_specs(), index_answers=False)
    assert Counter(i.benchmark for i in items) == {n: QUESTION_COUNTS[n] for n in raw}
    assert [i.benchmark for i in items] == sorted(i.benchmark for i in items)  # spec order
    mmlu = {i.item_id: i.text for i in items if i.benchmark == "mmlu"}
    assert len({k.split("/")[0] for k in mmlu}) == 57
    assert mmlu["anatomy_test/0"].startswith("A lesion causing compression of the facial nerve")


# --- synthetic files -------------------------------------------------------------------------


def _spec(path: Path | str, **kw: object) -> BenchmarkSpec:
    return BenchmarkSpec.model_validate({"name": "b", "path": str(path), "text_fields": ("q",)} | kw)


def _jsonl(rows: list[dict[str, object]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


ROWS = [{"id": 7, "q": "first?", "a": "one"}, {"id": 8, "q": " second\n", "a": None}]


def _ids_texts(got: BenchmarkRead) -> list[tuple[str, str, str]]:
    return [(i.item_id, i.kind, i.text) for i in got.items]


@pytest.mark.parametrize("name", ["x.jsonl", "x.jsonl.gz", "x.json.gz", "x.json", "x.parquet", "x.csv"])
def test_each_format(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".parquet"):
        pl.DataFrame(ROWS).write_parquet(path)
    elif name.endswith(".csv"):
        pl.DataFrame(ROWS).write_csv(path)
    elif name == "x.json":
        path.write_text(json.dumps(ROWS))
    elif name == "x.json.gz":  # a gzipped JSON array; .jsonl.gz holds lines
        path.write_bytes(gzip.compress(json.dumps(ROWS).encode()))
    else:
        data = _jsonl(ROWS)
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    got = read_benchmark_items(_spec(path, id_field="id", answer_fields=("a",)), index_answers=True)
    # Texts verbatim, ids as strings, a null answer skipped and counted.
    assert _ids_texts(got) == [
        ("7", "question", "first?"),
        ("7/answer", "answer", "one"),
        ("8", "question", " second\n"),
    ]
    assert got.skipped_empty == 1
    no_answers = read_benchmark_items(_spec(path, id_field="id", answer_fields=("a",)))
    assert [i.kind for i in no_answers.items] == ["question", "question"] and no_answers.skipped_empty == 0


def test_csv_keeps_ids_and_multiline_text_as_written(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('id,q\n007,"line one\nline ""two"", 3"\n1e3,plain\n')
    got = read_benchmark_items(_spec(path, id_field="id"))
    assert _ids_texts(got) == [("007", "question", 'line one\nline "two", 3'), ("1e3", "question", "plain")]


def test_row_ids_glob_and_list_fields(tmp_path: Path) -> None:
    (tmp_path / "b_part.jsonl").write_bytes(_jsonl([{"q": ["t1", "t2"], "r": ["r1", ""]}, {"q": ["x"], "r": None}]))
    (tmp_path / "a_part.jsonl").write_bytes(_jsonl([{"q": ["only"], "r": []}]))
    got = read_benchmark_items(_spec(tmp_path / "*_part.jsonl", answer_fields=("r",)), index_answers=True)
    assert _ids_texts(got) == [
        ("a_part/0/turn1", "question", "only"),
        ("b_part/0/turn1", "question", "t1"),
        ("b_part/0/turn2", "question", "t2"),
        ("b_part/0/answer1", "answer", "r1"),
        ("b_part/1/turn1", "question", "x"),
    ]
    # [] once, "" once, null once.
    assert got.skipped_empty == 3


def test_several_text_fields_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(_jsonl([{"q": "a", "p": ["b"], "s1": "x", "s2": ["y"]}]))
    spec = _spec(path, text_fields=("q", "p"), answer_fields=("s1", "s2"))
    assert [i.item_id for i in read_benchmark_items(spec, index_answers=True).items] == [
        "m/0/q",
        "m/0/p/turn1",
        "m/0/s1/answer",
        "m/0/s2/answer1",
    ]


def test_empty_texts_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(_jsonl([{"q": ""}, {"q": " \n\t"}, {"q": None}, {"q": "\u00a0x "}]))
    got = read_benchmark_items(_spec(path))
    assert _ids_texts(got) == [("e/3", "question", "\u00a0x ")]
    assert got.skipped_empty == 3
    # In a list, each empty element counts; an empty list or a null counts once.
    path.write_bytes(_jsonl([{"q": ["", "ok", None, " "]}, {"q": []}, {"q": None}]))
    got = read_benchmark_items(_spec(path))
    assert _ids_texts(got) == [("e/0/turn2", "question", "ok")]
    assert got.skipped_empty == 5


def _tar(path: Path, members: dict[str, bytes], dirs: tuple[str, ...] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_tar_of_csvs_reads_members_in_name_order_without_extracting(tmp_path: Path) -> None:
    members = {"test/zoology_test.csv": b"q,answer\nz0,1\nz1,2\n", "test/anatomy_test.csv": b"q,answer\na0,0\n"}
    path = _tar(tmp_path / "mmlu.tar.gz", members, dirs=("test/",))
    got = read_benchmark_items(_spec(path))
    assert _ids_texts(got) == [
        ("anatomy_test/0", "question", "a0"),
        ("zoology_test/0", "question", "z0"),
        ("zoology_test/1", "question", "z1"),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mmlu.tar.gz"]
    tgz = _tar(tmp_path / "j.tgz", {"x.jsonl": _jsonl([{"q": "j"}])})
    assert _ids_texts(read_benchmark_items(_spec(tgz))) == [("x/0", "question", "j")]


@pytest.mark.parametrize("bad", ["../evil.csv", "/abs/evil.csv", "test/../../evil.csv"])
def test_tar_with_escaping_member_is_refused(tmp_path: Path, bad: str) -> None:
    path = _tar(tmp_path / "bad.tar.gz", {"test/ok.csv": b"q\nfine\n", bad: b"q\nevil\n"})
    with pytest.raises(BenchmarkReadError, match=r"absolute or '\.\.' paths") as e:
        read_benchmark_items(_spec(path))
    assert "'b'" in str(e.value) and str(path) in str(e.value)
    assert not (tmp_path.parent / "evil.csv").exists()


def test_tar_member_with_unknown_suffix(tmp_path: Path) -> None:
    path = _tar(tmp_path / "r.tar.gz", {"a.csv": b"q\nx\n", "README.txt": b"hello"})
    with pytest.raises(BenchmarkReadError, match="README.txt.*unknown suffix"):
        read_benchmark_items(_spec(path))


def test_missing_field_lists_the_fields_the_file_has(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(_jsonl([{"question": "x", "key": 1}]))
    with pytest.raises(BenchmarkReadError) as e:
        read_benchmark_items(_spec(path, id_field="id"))
    msg = str(e.value)
    assert "'b'" in msg and str(path) in msg and "['id', 'q']" in msg and "['question', 'key']" in msg
    assert "fix the spec" in msg
    # Answer fields are only needed when answers are indexed.
    ok = _spec(path, text_fields=("question",), answer_fields=("nope",))
    assert len(read_benchmark_items(ok).items) == 1
    with pytest.raises(BenchmarkReadError, match="nope"):
        read_benchmark_items(ok, index_answers=True)


@pytest.mark.parametrize("path", ["missing.jsonl", "none-*.jsonl", "data.txt"])
def test_missing_file_glob_and_suffix_errors(tmp_path: Path, path: str) -> None:
    (tmp_path / "data.txt").write_text("q\nx\n")
    with pytest.raises(BenchmarkReadError, match="no such file|matches no file|unknown suffix") as e:
        read_benchmark_items(_spec(tmp_path / path))
    assert "'b'" in str(e.value) and str(tmp_path / path) in str(e.value)


@pytest.mark.parametrize(
    ("name", "data"), [("c.jsonl", b'{"q": "x"\n'), ("c.jsonl.gz", b"not gzip"), ("c.json", b"[{")]
)
def test_unreadable_file(tmp_path: Path, name: str, data: bytes) -> None:
    (tmp_path / name).write_bytes(data)
    with pytest.raises(BenchmarkReadError, match="cannot read it"):
        read_benchmark_items(_spec(tmp_path / name))


def test_nested_text_and_null_id_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    path.write_bytes(_jsonl([{"id": "a", "q": {"text": "x"}}, {"id": None, "q": {"text": "y"}}]))
    with pytest.raises(BenchmarkReadError, match="nested data"):
        read_benchmark_items(_spec(path))
    path.write_bytes(_jsonl([{"id": "a", "q": "x"}, {"id": None, "q": "y"}]))
    with pytest.raises(BenchmarkReadError, match="row 1 has no 'id'"):
        read_benchmark_items(_spec(path, id_field="id"))


def test_duplicate_ids_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(_jsonl([{"id": 1, "q": "x"}, {"id": 1, "q": "y"}]))
    with pytest.raises(BenchmarkReadError, match="repeat"):
        read_benchmarks([_spec(path, id_field="id")], index_answers=False)
    # The same ids in two benchmarks are fine; in two specs of one benchmark they are not.
    one = tmp_path / "one.jsonl"
    one.write_bytes(_jsonl([{"id": 1, "q": "x"}]))
    both = read_benchmarks([_spec(one, id_field="id"), _spec(one, name="c", id_field="id")], index_answers=False)
    assert [(i.benchmark, i.item_id) for i in both] == [("b", "1"), ("c", "1")]
    with pytest.raises(BenchmarkReadError, match="repeat"):
        read_benchmarks([_spec(one, id_field="id"), _spec(one, id_field="id")], index_answers=False)


def test_hub_paths_wrap_errors_and_split_files(tmp_path: Path) -> None:
    spec = _spec("hf://datasets/chatsift-test/does-not-exist/data/test-*.parquet")
    with pytest.raises(BenchmarkReadError, match="hf:// paths need network") as e:
        read_benchmark_items(spec)
    assert spec.path in str(e.value)
    # The hub path's reader, on a local glob: one stem and row count per file.
    pl.DataFrame({"q": ["a", "b"]}).write_parquet(tmp_path / "test-00000-of-00002.parquet")
    pl.DataFrame({"q": ["c"]}).write_parquet(tmp_path / "test-00001-of-00002.parquet")
    frames = list(_hub_frames(_spec(tmp_path / "test-*.parquet")))
    assert [(stem, frame.columns, frame.height) for _, stem, frame in frames] == [
        ("test-00000-of-00002", ["q"], 2),
        ("test-00001-of-00002", ["q"], 1),
    ]


def test_write_and_read_parquet_round_trip(tmp_path: Path) -> None:
    items = [
        BenchmarkItem(benchmark="gsm8k", item_id="gsm8k_test/0", text=" Q?\n"),
        BenchmarkItem(benchmark="gsm8k", item_id="gsm8k_test/0/answer", kind="answer", text="#### 18"),
    ]
    path = tmp_path / "out" / "items.parquet"
    assert write_benchmark_items(path, items) == 2
    assert read_benchmark_items_parquet(path) == items
    assert sorted(p.name for p in path.parent.iterdir()) == ["items.parquet"]  # no temp file left
    assert write_benchmark_items(path, []) == 0 and read_benchmark_items_parquet(path) == []
    write_ledger(tmp_path / "ledger.parquet", [])
    with pytest.raises(SchemaVersionError):
        read_benchmark_items_parquet(tmp_path / "ledger.parquet")
