"""Read top-level JSON values one at a time from a byte stream, without loading the whole file.

Two layouts:
- `iter_json_values`: a JSON array of records (or one record, or records back to back). Memory is
  about one read chunk plus the largest record: the bytes of a record are held only until it is
  parsed, and a record over the size limit is skipped without being held.
- `iter_json_lines`: JSON Lines, one record a line; a bad line costs that line only.

Record boundaries are found on the raw bytes, not on decoded text. JSON's structural characters
are ASCII and UTF-8 never uses ASCII bytes inside a multi-byte sequence, so a scan of the bytes
finds the same boundaries as a scan of the text. That gives exact byte offsets for free, and
each record is decoded on its own: a record with invalid UTF-8 becomes one "invalid_utf8"
problem while the records around it still read.

Offsets are positions in the stream as read: for a gzip file, in the decompressed bytes; only a
"corrupt_compression" problem (the gzip data stopped decompressing) gives its offset in the
compressed file, where the damage is.

Nesting is bounded: a record whose arrays and objects nest deeper than `max_depth` is one
"too_deeply_nested" problem, found by counting brackets (never by recursion) before json.loads,
which recurses once per level and fails near Python's recursion limit.

Recovery from a broken record:
- a record whose brackets balance but whose JSON does not parse: that record only, or, when a
  lost bracket made it swallow the records after it, up to the first record start inside it;
- a record that cannot be delimited (bytes that are not JSON between tokens, or the file ends
  inside it): the reader searches forward for the next thing that looks like the start of a
  record (a "," or newline, then "{" and a known first key such as "id") and resumes there; the
  bytes skipped become one problem whose detail gives their range. With no such start before
  the end of the file, the whole tail is one problem, so a reader never stops silently.
- separators are read leniently: a missing or doubled "," loses no record, so it is tolerated.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Literal, Protocol

from curation.ingest.compressed import CompressedDataError

StreamProblemReason = Literal[
    "invalid_json", "invalid_utf8", "record_too_large", "too_deeply_nested", "corrupt_compression"
]

_UTF8_BOM = b"\xef\xbb\xbf"
# Between values: JSON whitespace, plus commas (see the module docstring on lenient separators).
_BETWEEN_VALUES = re.compile(rb"[ \t\r\n,]*")
# Inside a container: the next string (whole, or up to the end of the buffer; group 1 is its
# closing quote), bracket, or byte that cannot appear in JSON outside a string. Letters other than
# those of true/false/null and exponents mean the reader has lost track of where strings start
# and end (a truncated record followed by more records).
_STRUCTURE = re.compile(rb'"[^"\\]*(?:\\[\s\S][^"\\]*)*(")?|[{}\[\]]|[^ \t\r\n,:{}\[\]"0-9.eE+\-truefalsn]')
_QUOTE, _OPEN_BRACE, _CLOSE_BRACE, _OPEN_BRACKET, _CLOSE_BRACKET = b'"{}[]'
# The rest of a string after its opening quote; group 1 is the closing quote when it was found.
_STRING_REST = re.compile(rb'[^"\\]*(?:\\[\s\S][^"\\]*)*(")?')
# A top-level number or literal (or garbage, which json.loads then rejects).
_SCALAR = re.compile(rb'[^ \t\r\n,:{}\[\]"]+')
_MAX_SCALAR_BYTES = 4096
# Where a record plausibly starts after a broken one: a separator, "{", and a first key that
# ShareGPT, Alpaca and messages records start with. A turn object starts with "from"/"role",
# so resynchronising does not land inside a conversation.
_RECORD_START = re.compile(rb'[,\n][ \t\r\n]{0,64}(\{)[ \t\r\n]{0,64}"(?:id|conversations|instruction|messages|model)"')
# Bytes kept at the end of the buffer while searching, so a start split across two reads is found.
_RECORD_START_OVERLAP = 256
# For counting nesting: strings are removed first, so the brackets inside them do not count.
_STRING = re.compile(rb'"[^"\\]*(?:\\[\s\S][^"\\]*)*"?')
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
# Errors a stream raises on a file that cannot be read to its end (CompressedDataError is an OSError).
_READ_ERRORS = (OSError, EOFError, zlib.error)


@dataclass(frozen=True, slots=True)
class StreamedValue:
    """One parsed top-level value and the exact bytes it was parsed from."""

    index: int
    byte_offset: int
    raw: bytes
    value: Any


@dataclass(frozen=True, slots=True)
class StreamProblem:
    """A stretch of input that did not become a value: one record, or an unreadable span."""

    index: int
    byte_offset: int
    size: int
    reason: StreamProblemReason
    detail: str


StreamItem = StreamedValue | StreamProblem


class ByteStream(Protocol):
    """What the readers need of a file: a plain binary file and a GzipFile both fit."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...


def excess_nesting(raw: bytes, max_depth: int) -> int | None:
    """How deep the arrays and objects of the JSON `raw` nest when that is over `max_depth`, else None.

    Strings are cut out and the brackets left are counted, with no recursion; a record with few
    brackets in all is passed at the cost of counting them.
    """
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return None
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_A_BRACKET)
    deepest = max(accumulate(1 if b == _OPEN_BRACE or b == _OPEN_BRACKET else -1 for b in brackets), default=0)
    return deepest if deepest > max_depth else None


def too_deep_detail(depth: int, max_depth: int) -> str:
    """The detail of a too_deeply_nested drop."""
    return f"arrays and objects nested {depth} deep, over ingest.max_json_depth={max_depth}; not parsed"


def damage_detail(err: CompressedDataError, lost_from: int) -> str:
    """The detail of a corrupt_compression drop: where the damage is, and what it cost."""
    return (
        f"gzip data {err.why} at compressed byte {err.compressed_offset}: every record that decompressed whole "
        f"before it was read; the rest, from decompressed byte {lost_from}, is lost"
    )


def parse_value_bytes(index: int, byte_offset: int, raw: bytes) -> StreamItem:
    """Decode one record's bytes as UTF-8 and parse them as JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = raw[err.start : err.start + 1].hex()
        return StreamProblem(
            index,
            byte_offset,
            len(raw),
            "invalid_utf8",
            f"byte 0x{bad} at file offset {byte_offset + err.start} is not valid UTF-8 ({err.reason})",
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        return StreamProblem(
            index,
            byte_offset,
            len(raw),
            "invalid_json",
            f"record of {len(raw)} bytes does not parse: {err.msg} (line {err.lineno} column {err.colno})",
        )
    return StreamedValue(index, byte_offset, raw, value)


class _Window:
    """The bytes read but not yet released, and where they sit in the stream."""

    def __init__(self, stream: ByteStream, chunk_bytes: int) -> None:
        self._stream = stream
        self._chunk_bytes = chunk_bytes
        self.buf = bytearray()
        self.start = 0  # stream offset of buf[0]
        self.eof = False
        self.read_error: Exception | None = None

    @property
    def end(self) -> int:
        return self.start + len(self.buf)

    def byte_at(self, offset: int) -> int:
        return self.buf[offset - self.start]

    def fill(self, keep_from: int) -> bool:
        """Release the bytes before `keep_from` and read one more chunk; False at end of stream."""
        drop = min(keep_from, self.end) - self.start
        if drop > 0:
            del self.buf[:drop]
            self.start += drop
        if self.eof:
            return False
        try:
            data = self._stream.read(self._chunk_bytes)
        except _READ_ERRORS as err:
            self.read_error = err
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def ensure(self, offset: int) -> bool:
        """Read until the byte at `offset` is in the buffer, keeping what is there; False at EOF."""
        while offset >= self.end:
            if not self.fill(self.start):
                return False
        return True


@dataclass(frozen=True, slots=True)
class _Scan:
    """How scanning one value ended: at `end` (exclusive) when complete, else at `stop`."""

    end: int | None
    stop: int
    why: str
    too_large: bool
    depth: int = 0  # how deep its arrays and objects nest


class _ValueReader:
    def __init__(self, stream: ByteStream, chunk_bytes: int, max_value_bytes: int, max_depth: int) -> None:
        self._w = _Window(stream, chunk_bytes)
        self._max = max_value_bytes
        self._max_depth = max_depth
        self._index = 0

    def values(self) -> Iterator[StreamItem]:
        w = self._w
        pos = 0
        if w.ensure(2) and bytes(w.buf[:3]) == _UTF8_BOM:
            pos = 3
        last_cut_by_eof = False
        in_array = False
        while True:
            pos = self._skip_between(pos)
            if pos >= w.end:
                break
            first = w.byte_at(pos)
            if first == ord("[") and not in_array:
                # A top-level array; a second one after it (two dumps concatenated) reads the same.
                in_array = True
                pos += 1
                continue
            if first == ord("]") and in_array:
                in_array = False
                pos += 1
                continue
            item, next_pos, last_cut_by_eof = self._read_one(pos)
            if last_cut_by_eof and isinstance(w.read_error, CompressedDataError):
                # Cut by the damage, not by the file's end: the damage drop stands for this record too.
                self._index = item.index
                break
            yield item
            pos = next_pos
        if isinstance(w.read_error, CompressedDataError):
            err = w.read_error
            yield self._problem(err.compressed_offset, 0, "corrupt_compression", damage_detail(err, pos))
        elif w.read_error is not None:
            yield self._problem(
                pos,
                0,
                "invalid_json",
                f"reading stopped at byte {w.end} of the decompressed stream "
                f"({type(w.read_error).__name__}: {w.read_error}); the rest of the file is unreadable",
            )
        elif in_array and not last_cut_by_eof:
            yield self._problem(
                pos,
                0,
                "invalid_json",
                f"the file ends at byte {w.end} without closing the top-level array; it looks "
                "truncated, and any records after that point are missing",
            )

    def _problem(self, offset: int, size: int, reason: StreamProblemReason, detail: str) -> StreamProblem:
        problem = StreamProblem(self._index, offset, size, reason, detail)
        self._index += 1
        return problem

    def _skip_between(self, pos: int) -> int:
        w = self._w
        while True:
            if pos < w.end:
                m = _BETWEEN_VALUES.match(w.buf, pos - w.start)
                assert m is not None  # the pattern matches the empty string
                pos = w.start + m.end()
                if pos < w.end:
                    return pos
            if not w.fill(pos):
                return pos

    def _read_one(self, start: int) -> tuple[StreamItem, int, bool]:
        """Read the value at `start`: what it became, where to go on, and whether EOF cut it."""
        w = self._w
        first = w.byte_at(start)
        if first in b"{[":
            scan = self._scan_container(start)
        elif first == ord('"'):
            scan = self._scan_string(start)
        else:
            scan = self._scan_scalar(start)
        if scan.end is not None and scan.too_large:
            size = scan.end - start
            detail = f"record of {size} bytes is over max_record_bytes={self._max}; skipped unread"
            return self._problem(start, size, "record_too_large", detail), scan.end, False
        if scan.end is not None and scan.depth > self._max_depth:
            detail = too_deep_detail(scan.depth, self._max_depth)
            return self._problem(start, scan.end - start, "too_deeply_nested", detail), scan.end, False
        if scan.end is None:
            return self._resynchronise(start, scan)
        raw = bytes(w.buf[start - w.start : scan.end - w.start])
        item = parse_value_bytes(self._index, start, raw)
        if isinstance(item, StreamProblem) and item.reason == "invalid_json":
            # Balanced brackets can still span several records (a lost "}" is made up for by a
            # later one); a record start inside the value means resuming there loses less.
            inner = _RECORD_START.search(w.buf, start + 1 - w.start, scan.end - w.start)
            if inner is not None:
                resume = w.start + inner.start(1)
                detail = f"{item.detail}; it holds another record start, so reading resumes at byte {resume}"
                return self._problem(start, resume - start, "invalid_json", detail), resume, False
        self._index += 1
        return item, scan.end, False

    def _resynchronise(self, start: int, scan: _Scan) -> tuple[StreamItem, int, bool]:
        """Drop a value that cannot be delimited, up to the next plausible record start."""
        w = self._w
        frm = max(start + 1, w.start)
        while True:
            m = _RECORD_START.search(w.buf, frm - w.start)
            if m is not None:
                resume = w.start + m.start(1)
                detail = (
                    f"record at byte {start} is not well-formed JSON ({scan.why} at byte {scan.stop}); "
                    f"skipped {resume - start} bytes to the next record start at byte {resume}"
                )
                return self._problem(start, resume - start, "invalid_json", detail), resume, False
            frm = max(w.end - _RECORD_START_OVERLAP, frm)
            if not w.fill(frm):
                break
        size = w.end - start
        detail = (
            f"record at byte {start} is not well-formed JSON ({scan.why} at byte {scan.stop}) and no "
            f"later record start was found: the unreadable tail of {size} bytes "
            f"(bytes {start}-{w.end}) is dropped as one"
        )
        return self._problem(start, size, "invalid_json", detail), w.end, True

    def _more(self, start: int, resume: int, too_large: bool) -> tuple[bool, bool]:
        """Read on while scanning a value; once it is over the limit, stop holding its bytes."""
        w = self._w
        if not too_large and w.end - start > self._max:
            too_large = True
        return w.fill(resume if too_large else start), too_large

    def _scan_container(self, start: int) -> _Scan:
        w = self._w
        depth = deepest = 0
        pos = start
        in_string = False
        too_large = False
        while True:
            if in_string:
                m = _STRING_REST.match(w.buf, pos - w.start)
                assert m is not None  # matches the empty string
                pos = w.start + m.end()
                if m.group(1) is None:
                    more, too_large = self._more(start, pos, too_large)
                    if not more:
                        return _Scan(None, pos, "the file ends inside a string", too_large)
                    continue
                in_string = False
            m = _STRUCTURE.search(w.buf, pos - w.start)
            if m is None:
                pos = w.end
                more, too_large = self._more(start, pos, too_large)
                if not more:
                    return _Scan(None, pos, f"the file ends at depth {depth}", too_large)
                continue
            pos = w.start + m.end()
            token = w.buf[m.start()]
            if token == _QUOTE:
                # The whole string when the buffer holds it; otherwise finish it after reading on.
                in_string = m.group(1) is None
            elif token == _OPEN_BRACE or token == _OPEN_BRACKET:
                depth += 1
                deepest = max(deepest, depth)
            elif token == _CLOSE_BRACE or token == _CLOSE_BRACKET:
                depth -= 1
                if depth == 0:
                    return _Scan(pos, pos, "", too_large or pos - start > self._max, deepest)
            else:
                return _Scan(None, pos - 1, f"unexpected byte 0x{token:02x} outside a string", too_large)

    def _scan_string(self, start: int) -> _Scan:
        w = self._w
        pos = start + 1
        too_large = False
        while True:
            m = _STRING_REST.match(w.buf, pos - w.start)
            assert m is not None
            pos = w.start + m.end()
            if m.group(1) is not None:
                return _Scan(pos, pos, "", too_large or pos - start > self._max)
            more, too_large = self._more(start, pos, too_large)
            if not more:
                return _Scan(None, pos, "the file ends inside a string", too_large)

    def _scan_scalar(self, start: int) -> _Scan:
        w = self._w
        while True:
            m = _SCALAR.match(w.buf, start - w.start)
            if m is None:
                # A stray "}" or ":" where a value should start: one byte that parses as nothing.
                return _Scan(start + 1, start + 1, "", False)
            end = w.start + m.end()
            if end < w.end or w.eof:
                return _Scan(end, end, "", False)
            if end - start > _MAX_SCALAR_BYTES:
                return _Scan(None, end, f"a run of over {_MAX_SCALAR_BYTES} bytes that is no value", False)
            w.fill(start)


def iter_json_values(
    stream: ByteStream, *, chunk_bytes: int, max_value_bytes: int, max_depth: int
) -> Iterator[StreamItem]:
    """Each top-level value of a JSON array (or of values back to back), in order.

    Yields nothing for a stream with no values; the caller decides what an empty input means.
    """
    return _ValueReader(stream, chunk_bytes, max_value_bytes, max_depth).values()


def iter_json_lines(
    stream: ByteStream, *, chunk_bytes: int, max_value_bytes: int, max_depth: int
) -> Iterator[StreamItem]:
    """Each non-blank line of a JSON Lines stream as one value; blank lines are not records."""
    offset = 0
    index = 0
    first = True
    while True:
        try:
            line = stream.readline(max_value_bytes + 1)
        except CompressedDataError as err:
            yield StreamProblem(index, err.compressed_offset, 0, "corrupt_compression", damage_detail(err, offset))
            return
        except _READ_ERRORS as err:
            yield StreamProblem(
                index,
                offset,
                0,
                "invalid_json",
                f"reading stopped at byte {offset} of the decompressed stream ({type(err).__name__}: "
                f"{err}); the rest of the file is unreadable",
            )
            return
        if not line:
            return
        start = offset
        offset += len(line)
        if len(line) > max_value_bytes and not line.endswith(b"\n"):
            # Over the limit: read the rest of the line a chunk at a time, never holding it all.
            while True:
                try:
                    part = stream.readline(chunk_bytes)
                except _READ_ERRORS:
                    part = b""  # the next readline reports the error
                offset += len(part)
                if not part or part.endswith(b"\n"):
                    break
            yield StreamProblem(
                index,
                start,
                offset - start,
                "record_too_large",
                f"line of {offset - start} bytes is over max_record_bytes={max_value_bytes}; skipped unread",
            )
            index += 1
            first = False
            continue
        if first and line.startswith(_UTF8_BOM):
            line = line[len(_UTF8_BOM) :]
            start += len(_UTF8_BOM)
        first = False
        body = line.rstrip(b"\r\n")
        if not body.strip():
            continue
        depth = excess_nesting(body, max_depth)
        if depth is None:
            yield parse_value_bytes(index, start, body)
        else:
            yield StreamProblem(index, start, len(body), "too_deeply_nested", too_deep_detail(depth, max_depth))
        index += 1
