"""Read input files into Conversations; every record that cannot be read becomes a Dropped record.

Formats (the container by file extension, the record shape by content):
- saved ShareGPT pages (`.html`, `.htm`): the Next.js `__NEXT_DATA__` script's props.pageProps;
- JSON dumps (`.json`, `.json.gz`): an array of records, one record, or records back to back,
  streamed (curation/ingest/json_stream.py);
- JSON Lines (`.jsonl`, `.jsonl.gz`): one record a line;
- any other extension: sniffed from the first bytes ("<" a page, "[" or "{" a JSON dump).
Compression is told by the first bytes, not the name: gzip is read whatever the file is called (a
".gz" suffix is dropped before the extension is looked at), a file named .gz that is not gzip is
read as it is, and zstd/bzip2/xz/zip content is one unknown_format drop that names it.
Records are ShareGPT {id, model?, conversations: [{from, value}]}, Alpaca {instruction, input?,
output} or OpenAI/TÜLU {id?, messages: [{role, content}]}.

Only regular files are read (a link to one is followed): a FIFO, socket, device, dangling or
looping link, a link to a directory, or a file open() refuses is one not_a_readable_file drop,
found while listing, before anything opens it. A file reached twice (the same path given twice,
another spelling of it, a link to it, or a folder holding it) is read once, and listed as repeated;
so is a file holding the same bytes as one listed before it (a copy under another name): its records
would only come back as exact duplicates of the first file's.

Provenance.byte_offset is the record's offset in the file as read; for a gzip file that is the
offset in the decompressed stream (a corrupt_compression drop's is in the compressed file, where
the damage is). content_hash is blake2b-128 of the record's bytes (the whole file for a page).
Turn values are kept exactly as read: ShareGPT's assistant HTML is converted by a later stage.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from curation.ingest.compressed import CompressedDataError, GzipStream, compression_of, open_input
from curation.ingest.json_stream import (
    StreamItem,
    StreamProblem,
    damage_detail,
    excess_nesting,
    iter_json_lines,
    iter_json_values,
    too_deep_detail,
)
from curation.stage import Stage
from schemas.config import IngestConfig
from schemas.conversation import Conversation, Provenance, Role, Turn
from schemas.errors import InputError
from schemas.files import file_digest
from schemas.ledger import Dropped, DropReason
from schemas.scrape import PageFetchSidecar

# Ids become file names and URL parts downstream: letters, digits and _.- only, no "..".
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
_ROLE_OF: dict[str, Role] = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "assistant": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "system": "system",
}
# The HTML spec ends a script's raw text at the first "</script", so this finds its exact end;
# Next.js escapes "<" inside the JSON, so a message cannot end it early.
_NEXT_DATA_OPEN = re.compile(rb"""<script\b[^>]*\bid\s*=\s*["']?__NEXT_DATA__["']?[^>]*>""", re.IGNORECASE)
_SCRIPT_CLOSE = re.compile(rb"</script", re.IGNORECASE)
# A JSON "\uD800"-"\uDFFF" escape: a valid pair is an emoji, a lone one cannot be written as UTF-8.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_PAGE_SUFFIXES = (".html", ".htm")
_MAX_DETAIL_CHARS = 400
_SNIFF_BYTES = 512
# What an input path that is no regular file is, by its stat mode, for the drop's detail.
_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a directory"),
)


@dataclass(frozen=True, slots=True)
class _Origin:
    """Where one record sits, for its Provenance or its Dropped record."""

    input_file: str
    file_name: str
    byte_offset: int | None
    record_index: int

    @property
    def positional_id(self) -> str:
        return f"{self.file_name}#{self.record_index}"


class _Reject(Exception):
    """A record that cannot become a Conversation; caught within this module only."""

    def __init__(self, reason: DropReason, detail: str, conversation_id: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.conversation_id = conversation_id


@dataclass(frozen=True, slots=True)
class InputListing:
    """What a run's input paths hold: each readable file once, in order, and what cannot be read."""

    # In input order: a regular file to read, or the drop of an entry that is none.
    entries: tuple[Path | Dropped, ...]
    # One line per path that reached a file already listed: that file is read once.
    repeated: tuple[str, ...]

    @property
    def files(self) -> list[Path]:
        return [e for e in self.entries if isinstance(e, Path)]

    @property
    def dropped(self) -> list[Dropped]:
        return [e for e in self.entries if isinstance(e, Dropped)]


def read_conversations(path: Path, *, config: IngestConfig) -> Iterator[Conversation | Dropped]:
    """Every record under `path` (a file, or a directory read recursively in sorted order, hidden
    files skipped) as a Conversation or an ingest Dropped record, streamed in input order."""
    return ingest_paths([path], config=config)


def ingest_paths(paths: Sequence[Path], *, config: IngestConfig) -> Iterator[Conversation | Dropped]:
    """read_conversations over several paths, in the order given, each file read once (see list_inputs)."""
    for entry in list_inputs(paths).entries:
        if isinstance(entry, Dropped):
            yield entry
        else:
            yield from _read_file(entry, config)


def is_safe_id(conversation_id: str) -> bool:
    """Whether an id can be used as a file name: [A-Za-z0-9][A-Za-z0-9_.-]{0,127}, without ".."."""
    return _SAFE_ID.fullmatch(conversation_id) is not None and ".." not in conversation_id


def list_input_files(path: Path) -> list[Path]:
    """The regular files read for `path`: itself, or every one below it in sorted order, hidden ones skipped."""
    return list_inputs([path]).files


def list_inputs(paths: Sequence[Path]) -> InputListing:
    """The entries of `paths` in order (a directory's in sorted order, hidden ones skipped): each regular
    file once by its real path (the first spelling wins), and a drop for each entry that is no readable file.

    Nothing is opened but regular files, so a FIFO cannot block the listing. A given path that does
    not exist raises FileNotFoundError; a dangling link, given or found in a directory, is a drop.
    """
    entries: list[Path | Dropped] = []
    repeated: list[str] = []
    first_seen: dict[str, Path] = {}
    for given in paths:
        for path in _entries_below(given):
            real = os.path.realpath(path)
            first = first_seen.get(real)
            if first is not None:
                same = "is listed more than once" if first == path else f"is the same file as {first}"
                repeated.append(f"input {path} {same}: read once")
                continue
            first_seen[real] = path
            why = _not_readable_because(path)
            origin = _Origin(str(path), path.name, None, 0)
            entries.append(path if why is None else _drop(origin, "not_a_readable_file", why))
    copies = _copies_of_earlier_files([e for e in entries if isinstance(e, Path)])
    repeated += [f"input {path} has the same bytes as {first}: read once" for path, first in copies.items()]
    return InputListing(tuple(e for e in entries if e not in copies), tuple(repeated))


def _copies_of_earlier_files(files: list[Path]) -> dict[Path, Path]:
    """Each file whose bytes equal an earlier file's, mapped to that earlier file. Only files of
    a size another file shares are hashed, so a folder of distinct dumps costs one stat each."""
    by_size: dict[int, list[Path]] = {}
    for path in files:
        by_size.setdefault(path.stat().st_size, []).append(path)
    copies: dict[Path, Path] = {}
    for same_size in by_size.values():
        if len(same_size) < 2:
            continue
        first_by_digest: dict[str, Path] = {}
        for path in same_size:
            first = first_by_digest.setdefault(file_digest(path), path)
            if first != path:
                copies[path] = first
    return copies


def _entries_below(path: Path) -> list[Path]:
    """`path` itself, or the entries below it in sorted order, hidden ones skipped. A link to a directory
    is an entry (to be dropped) rather than walked: os.walk would skip it silently, losing its files."""
    if not path.is_dir():
        if not os.path.lexists(path):
            raise FileNotFoundError(f"input path does not exist: {path}")
        return [path]
    found: list[Path] = []
    for folder, dirs, files in os.walk(path):
        linked = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in linked]
        found.extend(Path(folder) / name for name in [*files, *linked] if not name.startswith("."))
    return sorted(found)


def _not_readable_because(path: Path) -> str | None:
    """Why `path` is no input file chatsift reads, for its drop's detail; None for a regular file open() takes."""
    try:
        mode = path.stat().st_mode
    except OSError as err:
        if not path.is_symlink():
            return f"cannot be looked at ({err.strerror}); not read"
        target = os.readlink(path)
        if isinstance(err, FileNotFoundError):
            return f"a symbolic link to {target!r}, which does not exist; not read"
        return f"a symbolic link to {target!r} that cannot be followed ({err.strerror}); not read"
    for is_kind, kind in _FILE_KINDS:
        if is_kind(mode):
            link = f"a symbolic link to {os.readlink(path)!r}, " if path.is_symlink() else ""
            return f"{link}{kind}, not a regular file; not read"
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        return f"a regular file that cannot be opened ({err.strerror}); not read"
    return None


def _drop(origin: _Origin, reason: DropReason, detail: str, conversation_id: str | None = None) -> Dropped:
    if len(detail) > _MAX_DETAIL_CHARS:
        detail = detail[: _MAX_DETAIL_CHARS - 1] + "…"
    return Dropped(
        conversation_id=conversation_id or origin.positional_id,
        stage="ingest",
        reason=reason,
        detail=detail,
        input_file=origin.input_file,
        byte_offset=origin.byte_offset,
        record_index=origin.record_index,
    )


def _file_kind(file: Path) -> str:
    """The kind ("page", "json", "jsonl" or "sniff") the file name says, a ".gz" suffix left aside."""
    name = file.name.lower().removesuffix(".gz")
    if name.endswith(_PAGE_SUFFIXES):
        return "page"
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith(".json"):
        return "json"
    return "sniff"


def _open(file: Path, gzipped: bool) -> GzipStream | BinaryIO:
    return open_input(file, "gzip" if gzipped else "none")


def _read_file(file: Path, config: IngestConfig) -> Iterator[Conversation | Dropped]:
    origin = _Origin(str(file), file.name, None, 0)
    if file.stat().st_size == 0:
        yield _drop(origin, "empty_input", "the file has no bytes")
        return
    compression = compression_of(file)
    if compression not in ("none", "gzip"):
        detail = f"{file.name} is {compression}-compressed; chatsift reads plain or gzip-compressed input"
        yield _drop(origin, "unknown_format", detail)
        return
    gzipped = compression == "gzip"
    kind = _file_kind(file)
    if kind == "sniff":
        try:
            kind = _sniff(file, gzipped)
        except CompressedDataError as err:
            yield _drop(_damage_origin(origin, err), "corrupt_compression", damage_detail(err, 0))
            return
        if kind == "unknown":
            yield _drop(
                origin,
                "unknown_format",
                f"{file.name}: not .html/.htm/.json/.jsonl(.gz) and not JSON or HTML",
            )
            return
    if kind == "page":
        yield _read_page(file, gzipped, origin, config)
        return
    read_stream = iter_json_lines if kind == "jsonl" else iter_json_values
    sharegpt_source = "sharegpt_jsonl" if kind == "jsonl" else "sharegpt_json"
    produced = 0
    # Damaged gzip data is reported by the stream readers as a drop; the listing (list_inputs)
    # already dropped what cannot be opened.
    with _open(file, gzipped) as stream:
        items = read_stream(
            stream,
            chunk_bytes=config.read_chunk_bytes,
            max_value_bytes=config.max_record_bytes,
            max_depth=config.max_json_depth,
        )
        for item in items:
            produced += 1
            yield _item_to_record(item, file, sharegpt_source)
    if produced == 0:
        yield _drop(origin, "empty_input", "no records: the file holds only whitespace or an empty array")


def _damage_origin(origin: _Origin, err: CompressedDataError) -> _Origin:
    """Where a corrupt_compression drop points: the damage's offset in the compressed file."""
    return _Origin(origin.input_file, origin.file_name, err.compressed_offset, origin.record_index)


def _sniff(file: Path, gzipped: bool) -> str:
    with _open(file, gzipped) as stream:
        head = stream.read(_SNIFF_BYTES)
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"<"):
        return "page"
    if head.startswith((b"[", b"{")):
        return "json"
    return "unknown"


def _item_to_record(item: StreamItem, file: Path, sharegpt_source: str) -> Conversation | Dropped:
    origin = _Origin(str(file), file.name, item.byte_offset, item.index)
    if isinstance(item, StreamProblem):
        return _drop(origin, item.reason, item.detail)
    try:
        return _record_to_conversation(item.value, item.raw, origin, sharegpt_source)
    except _Reject as reject:
        return _drop(origin, reject.reason, reject.detail, reject.conversation_id)


def _content_hash(raw: bytes) -> str:
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def _record_to_conversation(value: Any, raw: bytes, origin: _Origin, sharegpt_source: str) -> Conversation:
    if not isinstance(value, dict):
        raise _Reject("unknown_format", f"a JSON {type(value).__name__}, not an object")
    content_hash = _content_hash(raw)
    build: Callable[[dict[str, Any]], list[Turn]]
    if "conversations" in value:
        build, source, prefix = _sharegpt_turns, sharegpt_source, "sharegpt"
    elif "messages" in value:
        build, source, prefix = _messages_turns, "messages", "messages"
    elif "instruction" in value:
        build, source, prefix = _alpaca_turns, "alpaca", "alpaca"
    elif "id" in value or "model" in value:
        raise _Reject("invalid_record", "a ShareGPT-like record (it has 'id' or 'model') without 'conversations'")
    else:
        raise _Reject("unknown_format", f"not ShareGPT, Alpaca or messages: keys {sorted(value)[:10]}")
    conversation_id = _record_id(value, prefix, content_hash)
    try:
        model, title, turns = _model(value), _title(value), build(value)
    except _Reject as reject:
        reject.conversation_id = conversation_id
        raise
    conversation = _conversation(conversation_id, source, model, title, turns, origin, content_hash, page_id=None)
    if _SURROGATE_ESCAPE.search(raw):
        _reject_lone_surrogates(conversation)
    return conversation


def _conversation(
    conversation_id: str,
    source: str,
    model: str | None,
    title: str | None,
    turns: list[Turn],
    origin: _Origin,
    content_hash: str,
    page_id: str | None,
) -> Conversation:
    provenance = Provenance(
        input_file=origin.input_file,
        byte_offset=origin.byte_offset,
        page_id=page_id,
        record_index=origin.record_index,
        content_hash=content_hash,
    )
    try:
        return Conversation(
            id=conversation_id,
            source=source,
            model=model,
            title=title,
            turns=tuple(turns),
            provenance=provenance,
        )
    except ValidationError as err:
        # The checks above should leave nothing for pydantic to reject; if they miss a case the
        # record is still accounted for rather than stopping the run.
        raise _Reject("invalid_record", f"rejected by the Conversation model: {err}", conversation_id) from err


def _record_id(value: dict[str, Any], prefix: str, content_hash: str) -> str:
    raw_id = value.get("id")
    if raw_id is None:
        # Stable across runs and machines (Python's hash() is salted per process).
        return f"{prefix}-{content_hash[:16]}"
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise _Reject("invalid_record", f"id is a JSON {type(raw_id).__name__}, not a string")
    conversation_id = str(raw_id)
    if not is_safe_id(conversation_id):
        raise _Reject(
            "unsafe_id",
            f"id {conversation_id[:200]!r} is not [A-Za-z0-9][A-Za-z0-9_.-]{{0,127}} without '..'",
        )
    return conversation_id


def _model(value: dict[str, Any]) -> str | None:
    model = value.get("model")
    if model is not None and not isinstance(model, str):
        raise _Reject("invalid_record", f"model is a JSON {type(model).__name__}, not a string")
    return model or None


def _title(value: dict[str, Any]) -> str | None:
    title = value.get("title")
    return title if isinstance(title, str) and title else None


def _turn(role_name: Any, content: Any, where: str) -> Turn:
    if not isinstance(role_name, str):
        raise _Reject("invalid_record", f"{where}: the role is a JSON {type(role_name).__name__}, not a string")
    if not isinstance(content, str):
        raise _Reject("invalid_record", f"{where}: the text is a JSON {type(content).__name__}, not a string")
    role = _ROLE_OF.get(role_name.lower())
    if role is None:
        raise _Reject("unknown_role", f"{where}: role {role_name[:100]!r} maps to none of system/user/assistant")
    return Turn(role=role, content=content, source_role=role_name)


def _turn_list(items: Any, field: str, *, role_key: str, text_key: str) -> list[Turn]:
    """A JSON list of turn objects: ShareGPT's [{from, value}] (a dump record or a page's
    content.items) or the messages format's [{role, content}]."""
    if not isinstance(items, list):
        raise _Reject("invalid_record", f"{field} is a JSON {type(items).__name__}, not a list")
    turns = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _Reject("invalid_record", f"{field}[{i}] is a JSON {type(item).__name__}, not an object")
        turns.append(_turn(item.get(role_key), item.get(text_key), f"{field}[{i}]"))
    return turns


def _from_value_turns(items: Any, field: str) -> list[Turn]:
    return _turn_list(items, field, role_key="from", text_key="value")


def _sharegpt_turns(value: dict[str, Any]) -> list[Turn]:
    return _from_value_turns(value["conversations"], "conversations")


def _messages_turns(value: dict[str, Any]) -> list[Turn]:
    return _turn_list(value["messages"], "messages", role_key="role", text_key="content")


def _alpaca_turns(value: dict[str, Any]) -> list[Turn]:
    instruction = _alpaca_text(value, "instruction")
    extra = _alpaca_text(value, "input") if value.get("input") is not None else ""
    output = _alpaca_text(value, "output")
    prompt = f"{instruction}\n\n{extra}" if extra else instruction
    return [
        Turn(role="user", content=prompt, source_role="instruction"),
        Turn(role="assistant", content=output, source_role="output"),
    ]


def _alpaca_text(value: dict[str, Any], field: str) -> str:
    text = value.get(field)
    if not isinstance(text, str):
        raise _Reject("invalid_record", f"alpaca {field} is a JSON {type(text).__name__}, not a string")
    return text


def _reject_lone_surrogates(conversation: Conversation) -> None:
    """Reject text that Arrow cannot write: a lone surrogate escape parses but is no Unicode text."""
    texts = [conversation.id, conversation.model or "", conversation.title or ""]
    texts.extend(turn.content for turn in conversation.turns)
    for text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:
            code = ord(text[err.start])
            raise _Reject(
                "invalid_utf8",
                f"a lone surrogate escape \\u{code:04x} cannot be encoded as UTF-8",
                conversation.id,
            ) from err


def _read_page(file: Path, gzipped: bool, origin: _Origin, config: IngestConfig) -> Conversation | Dropped:
    limit = config.max_record_bytes
    size = file.stat().st_size
    if size > limit:
        # Checked before reading: a huge or hostile page must not be loaded to find out.
        return _drop(origin, "record_too_large", f"page file is {size} bytes, over max_record_bytes={limit}; not read")
    try:
        with _open(file, gzipped) as stream:
            data = _read_at_most(stream, limit + 1, config.read_chunk_bytes)
    except CompressedDataError as err:
        return _drop(_damage_origin(origin, err), "corrupt_compression", f"the page is lost: {damage_detail(err, 0)}")
    if len(data) > limit:
        return _drop(origin, "record_too_large", f"page decompresses to over max_record_bytes={limit}; not read")
    if not data.strip():
        return _drop(origin, "empty_input", "the page has no content")
    try:
        conversation = _page_to_conversation(data, origin, config.max_json_depth)
    except _Reject as reject:
        return _drop(origin, reject.reason, reject.detail, reject.conversation_id)
    fetch = read_fetch_sidecar(file)
    if fetch is None:
        return conversation
    provenance = conversation.provenance.model_copy(update={"url": fetch.url, "fetched_at": fetch.fetched_at})
    return conversation.model_copy(update={"provenance": provenance})


class FetchSidecarError(InputError):
    """A scraped page's `.fetch.json` sidecar exists but is not the scraper's JSON: a corrupt output
    folder, reported rather than ingesting the page without its provenance."""


def fetch_sidecar_path(page: Path) -> Path:
    """Where the scraper keeps a page's URL and fetch time: a hidden `.<name>.fetch.json` beside it,
    hidden so that list_input_files never reads it as an input."""
    return page.with_name(f".{page.name}.fetch.json")


def read_fetch_sidecar(page: Path) -> PageFetchSidecar | None:
    """The page's fetch provenance (url, fetched_at) when a scraper wrote one, else None."""
    sidecar = fetch_sidecar_path(page)
    if not sidecar.is_file():
        return None
    try:
        return PageFetchSidecar.model_validate_json(sidecar.read_bytes())
    except ValidationError as err:
        raise FetchSidecarError(f"{sidecar}: not a fetch sidecar ({err.error_count()} problem(s): {err})") from err


def _read_at_most(stream: GzipStream | BinaryIO, limit: int, chunk_bytes: int) -> bytes:
    """Up to `limit` bytes, read a chunk at a time: read(limit) would allocate all of it up front."""
    data = bytearray()
    while len(data) < limit:
        part = stream.read(min(chunk_bytes, limit - len(data)))
        if not part:
            break
        data += part
    return bytes(data)


def _page_to_conversation(data: bytes, origin: _Origin, max_depth: int) -> Conversation:
    content_hash = _content_hash(data)
    opening = _NEXT_DATA_OPEN.search(data)
    if opening is None:
        raise _Reject("no_next_data", f'no <script id="__NEXT_DATA__"> in the page ({len(data)} bytes)')
    closing = _SCRIPT_CLOSE.search(data, opening.end())
    payload = data[opening.end() : closing.start() if closing else len(data)]
    cut = "" if closing else "; the page ends inside the script (truncated page?)"
    depth = excess_nesting(payload, max_depth)
    if depth is not None:
        raise _Reject("too_deeply_nested", f"__NEXT_DATA__ has {too_deep_detail(depth, max_depth)}")
    try:
        next_data = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise _Reject("invalid_utf8", f"__NEXT_DATA__ byte {err.start} is not valid UTF-8{cut}") from err
    except json.JSONDecodeError as err:
        raise _Reject("invalid_json", f"__NEXT_DATA__ does not parse: {err.msg} at char {err.pos}{cut}") from err
    page_props = _get_dict(_get_dict(next_data, "props"), "pageProps")
    content = _get_dict(page_props, "content")
    if content is None or "items" not in content:
        raise _Reject("no_page_content", "__NEXT_DATA__ has no props.pageProps.content.items")
    assert page_props is not None  # content came from it
    conversation_id = _record_id(page_props, "page", content_hash)
    try:
        turns = _from_value_turns(content["items"], "content.items")
        model, title = _model(content), _title(content)
    except _Reject as reject:
        reject.conversation_id = conversation_id
        raise
    conversation = _conversation(
        conversation_id, "sharegpt_page", model, title, turns, origin, content_hash, page_id=conversation_id
    )
    if _SURROGATE_ESCAPE.search(payload):
        _reject_lone_surrogates(conversation)
    return conversation


def _get_dict(value: Any, key: str) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    found = value.get(key)
    return found if isinstance(found, dict) else None


# What the ingest task runs over its group of files; run.batch_size and run.part_max_mb cut the stream into parts.
INGEST = Stage("ingest", ingest_paths, config="ingest", also_keyed=("run.batch_size", "run.part_max_mb"))
