"""Benchmark question sets, read from the files their publishers ship into BenchmarkItems.

Formats, by suffix: .jsonl; .json (an array of objects; a .json whose first non-blank byte is not "["
is read as JSON lines); .jsonl.gz / .json.gz (either layout, told apart the same way); .csv
(every column read as text, so ids and texts stay as written); .parquet; a glob of those
(files in sorted order); a .tar.gz / .tgz holding such files (MMLU's per-subject CSVs: members
read in memory in sorted name order, never extracted; members with absolute paths or ".." are
refused); and hf://... Parquet paths, passed straight to polars (needs network).

Ids: the id_field value as a string; without one, "<file stem>/<row>": the file's or member's
name without its suffixes and the 0-based row within that file ("anatomy_test/0",
"gsm8k_test/12"). A list-valued field gives one item per element: questions "<id>/turn<k>", k
from 1 (MT-Bench's turns); answers "<id>/answer", or "<id>/answer<k>" for element k of a list
(MT-Bench's reference k answers turn k). A spec with several text fields (or several answer
fields) puts "/<field>" after the id so that the ids stay distinct ("<id>/<field>/turn1").

read_benchmark_items returns BenchmarkRead(items, skipped_empty): null, empty and
whitespace-only texts make no item but are counted (a null field, e.g. the MT-Bench questions
without a reference, counts once; a list counts each empty element). Texts are kept verbatim.

polars gives each field one type per file: a field that holds lists in some rows and strings in
others is read as text (the lists as JSON), so keep a field's type the same in every row.
"""

from __future__ import annotations

import glob
import gzip
import io
import re
import tarfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal, NamedTuple

import polars as pl
import pyarrow as pa

from curation.parquet import _read_checked, atomic_write_table
from schemas.arrow import BENCHMARK_ITEMS_SCHEMA
from schemas.config import BenchmarkSpec
from schemas.contamination import BenchmarkItem
from schemas.errors import ResourceError

_TAR_SUFFIXES = (".tar.gz", ".tgz")
_DATA_SUFFIXES = (".jsonl.gz", ".json.gz", ".jsonl", ".json", ".csv", ".parquet")
_READ_ERRORS = (pl.exceptions.PolarsError, OSError, EOFError, ValueError, tarfile.TarError)
_FILE_COLUMN = "__chatsift_source_file"
Kind = Literal["question", "answer"]


class BenchmarkReadError(ResourceError, ValueError):
    """A benchmark file that cannot be read as its spec says; the message says how to fix it."""


class BenchmarkRead(NamedTuple):
    items: list[BenchmarkItem]
    # Null, empty or whitespace-only texts that made no item.
    skipped_empty: int


def _suffix(name: str) -> str | None:
    lower = name.lower()
    return next((s for s in _TAR_SUFFIXES + _DATA_SUFFIXES if lower.endswith(s)), None)


def _stem(name: str) -> str:
    base = PurePosixPath(name).name
    suffix = _suffix(base)
    return base[: -len(suffix)] if suffix else base


def _error(spec: BenchmarkSpec, where: str, problem: str, fix: str) -> BenchmarkReadError:
    return BenchmarkReadError(f"benchmark {spec.name!r}: {where}: {problem}; {fix}")


def _frame(spec: BenchmarkSpec, where: str, data: bytes, suffix: str) -> pl.DataFrame:
    try:
        if suffix == ".csv":
            return pl.read_csv(io.BytesIO(data), infer_schema=False)
        if suffix == ".parquet":
            return pl.read_parquet(io.BytesIO(data))
        raw = gzip.decompress(data) if suffix.endswith(".gz") else data
        if raw.lstrip()[:1] == b"[":
            return pl.read_json(io.BytesIO(raw), infer_schema_length=None)
        return pl.read_ndjson(io.BytesIO(raw), infer_schema_length=None)
    except _READ_ERRORS as e:
        raise _error(
            spec, where, f"cannot read it as {suffix} ({type(e).__name__}: {e})", "fix or replace the file"
        ) from e


def _tar_frames(spec: BenchmarkSpec, path: str) -> Iterator[tuple[str, str, pl.DataFrame]]:
    try:
        with tarfile.open(path, "r:*") as tar:
            members = sorted(tar.getmembers(), key=lambda m: m.name)
            unsafe = [m.name for m in members if m.name.startswith("/") or ".." in PurePosixPath(m.name).parts]
            if unsafe:
                raise _error(spec, path, f"members with absolute or '..' paths {unsafe}", "rebuild the archive")
            blobs = []
            for m in members:
                handle = tar.extractfile(m) if m.isfile() else None
                if handle is not None:
                    blobs.append((m.name, handle.read()))
    except (tarfile.TarError, OSError, EOFError) as e:
        raise _error(spec, path, f"cannot read the archive ({type(e).__name__}: {e})", "fix or replace it") from e
    if not blobs:
        raise _error(spec, path, "the archive holds no files", "point path at an archive of data files")
    for name, data in blobs:
        suffix = _suffix(name)
        where = f"{path} member {name}"
        if suffix is None or suffix in _TAR_SUFFIXES:
            raise _error(spec, where, "unknown suffix", f"archive members must end in one of {_DATA_SUFFIXES}")
        yield where, _stem(name), _frame(spec, where, data, suffix)


def _hub_frames(spec: BenchmarkSpec) -> Iterator[tuple[str, str, pl.DataFrame]]:
    """hf://... (or any path polars resolves) as Parquet, split back into its files for the ids."""
    try:
        frame = pl.scan_parquet(spec.path, include_file_paths=_FILE_COLUMN).collect()
    except _READ_ERRORS as e:
        raise _error(
            spec,
            spec.path,
            f"cannot read it as Parquet ({type(e).__name__}: {e})",
            "hf:// paths need network access and an existing dataset path; offline, use the local presets",
        ) from e
    for part in frame.partition_by(_FILE_COLUMN, maintain_order=True):
        source = str(part[_FILE_COLUMN][0])
        yield source, _stem(source), part.drop(_FILE_COLUMN)


def _frames(spec: BenchmarkSpec) -> Iterator[tuple[str, str, pl.DataFrame]]:
    """(where, file stem, frame) for each file the spec names, in order."""
    if spec.path.startswith("hf://"):
        yield from _hub_frames(spec)
        return
    if set(spec.path) & set("*?["):
        paths = sorted(glob.glob(spec.path))
        if not paths:
            raise _error(spec, spec.path, "the glob matches no file", "check the pattern and presets_dir")
    elif not Path(spec.path).is_file():
        raise _error(spec, spec.path, "no such file", "check path (and presets_dir), or fetch the file")
    else:
        paths = [spec.path]
    for path in paths:
        suffix = _suffix(path)
        if suffix is None:
            raise _error(spec, path, "unknown suffix", f"use one of {_TAR_SUFFIXES + _DATA_SUFFIXES} or hf://")
        if suffix in _TAR_SUFFIXES:
            yield from _tar_frames(spec, path)
            continue
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise _error(spec, path, f"cannot read it ({e})", "check its permissions") from e
        yield path, _stem(path), _frame(spec, path, data, suffix)


def _text(spec: BenchmarkSpec, where: str, field: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        raise _error(spec, where, f"field {field!r} holds nested data, not text", "name a text field")
    return str(value)


def _frame_items(
    spec: BenchmarkSpec, where: str, stem: str, frame: pl.DataFrame, *, index_answers: bool
) -> BenchmarkRead:
    fields: list[tuple[str, Kind, bool]] = [(f, "question", len(spec.text_fields) > 1) for f in spec.text_fields]
    if index_answers:
        fields += [(f, "answer", len(spec.answer_fields) > 1) for f in spec.answer_fields]
    needed = ([spec.id_field] if spec.id_field else []) + [f for f, _, _ in fields]
    missing = [f for f in needed if f not in frame.columns]
    if missing:
        raise _error(
            spec, where, f"no field(s) {missing}; the file has {frame.columns}", "fix the spec's id/text/answer fields"
        )
    ids = frame[spec.id_field].to_list() if spec.id_field else None
    columns = [(field, kind, multi, frame[field].to_list()) for field, kind, multi in fields]
    items: list[BenchmarkItem] = []
    skipped = 0
    for row in range(frame.height):
        if ids is None:
            item_id = f"{stem}/{row}"
        elif ids[row] is None:
            raise _error(spec, where, f"row {row} has no {spec.id_field!r}", "fill it in, or set id_field to None")
        else:
            item_id = str(ids[row])
        for field, kind, multi, values in columns:
            base = f"{item_id}/{field}" if multi else item_id
            value = values[row]
            label = "turn" if kind == "question" else "answer"
            if isinstance(value, list):
                parts = [(f"{base}/{label}{k}", _text(spec, where, field, v)) for k, v in enumerate(value, 1)]
                skipped += not parts
            else:
                parts = [(base if kind == "question" else f"{base}/answer", _text(spec, where, field, value))]
            for part_id, text in parts:
                if text is None or not text.strip():
                    skipped += 1
                else:
                    items.append(BenchmarkItem(benchmark=spec.name, item_id=part_id, kind=kind, text=text))
    return BenchmarkRead(items, skipped)


def _check_unique(items: Sequence[BenchmarkItem], where: str) -> None:
    counts = Counter((i.benchmark, i.item_id, i.kind) for i in items)
    repeated = [key for key, n in counts.items() if n > 1]
    if repeated:
        raise BenchmarkReadError(
            f"benchmark {repeated[0][0]!r}: {where}: {len(repeated)} (benchmark, item_id, kind) keys repeat, "
            f"e.g. {repeated[:3]}; decisions and reports key on them: set id_field to a unique field, "
            "or to None for <file stem>/<row> ids"
        )


def read_benchmark_items(spec: BenchmarkSpec, *, index_answers: bool = False) -> BenchmarkRead:
    """One benchmark's items (answers too when index_answers) and how many empty texts were skipped."""
    items: list[BenchmarkItem] = []
    skipped = 0
    for where, stem, frame in _frames(spec):
        got = _frame_items(spec, where, stem, frame, index_answers=index_answers)
        items += got.items
        skipped += got.skipped_empty
    _check_unique(items, spec.path)
    return BenchmarkRead(items, skipped)


def read_benchmarks(specs: Sequence[BenchmarkSpec], *, index_answers: bool) -> list[BenchmarkItem]:
    """Every spec's items, in spec order; a repeated (benchmark, item_id, kind) is an error."""
    items = [item for spec in specs for item in read_benchmark_items(spec, index_answers=index_answers).items]
    _check_unique(items, ", ".join(spec.path for spec in specs))
    return items


_TURN_SUFFIX = re.compile(r"(?P<base>.*)/turn(?P<k>\d+)")


def reference_answers(items: Iterable[BenchmarkItem]) -> dict[tuple[str, str], str]:
    """Each question's reference answer, keyed (benchmark, question item id), from the answer items among
    `items`: "<id>" has "<id>/answer"; "<id>/turn<k>" has "<id>/answer<k>" (or the one "<id>/answer"); a
    question of one of several text fields ("<id>/<field>") has its record's answer too."""
    items = list(items)
    answers = {(i.benchmark, i.item_id): i.text for i in items if i.kind == "answer"}
    found: dict[tuple[str, str], str] = {}
    for q in items:
        if q.kind != "question":
            continue
        turn = _TURN_SUFFIX.fullmatch(q.item_id)
        base, k = (turn["base"], turn["k"]) if turn else (q.item_id, "")
        record = base.rpartition("/")[0]
        for candidate in (f"{base}/answer{k}", f"{base}/answer", f"{record}/answer{k}", f"{record}/answer"):
            if (q.benchmark, candidate) in answers:
                found[(q.benchmark, q.item_id)] = answers[(q.benchmark, candidate)]
                break
    return found


def write_benchmark_items(path: Path, items: Iterable[BenchmarkItem]) -> int:
    """Write items to `path` (BENCHMARK_ITEMS_SCHEMA, atomically); returns how many were written."""
    rows = [item.model_dump(mode="python") for item in items]
    atomic_write_table(path, pa.Table.from_pylist(rows, schema=BENCHMARK_ITEMS_SCHEMA), schema=BENCHMARK_ITEMS_SCHEMA)
    return len(rows)


def read_benchmark_items_parquet(path: Path) -> list[BenchmarkItem]:
    """Read a file written by write_benchmark_items (its schema version is checked)."""
    return [BenchmarkItem.model_construct(**row) for row in _read_checked(path, "benchmark_items").to_pylist()]
