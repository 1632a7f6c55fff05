"""Compressed input: told by its first bytes, and gzip decompressed so that damage costs only what follows it.

gzip.GzipFile raises from read() on damaged or cut-off data and loses everything that call had
decompressed: with 1 MiB reads, a dump whose gzip is cut in half gave no record at all. GzipStream
feeds zlib a piece at a time and returns every byte that decompressed before the damage; only the
read after that raises CompressedDataError, which says where in the compressed file it stopped.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal

Compression = Literal["none", "gzip", "zstd", "bzip2", "xz", "zip"]

GZIP_MAGIC = b"\x1f\x8b"
# Formats chatsift does not decompress, told apart so that such a file is one drop that names it
# instead of a run of invalid_utf8 drops over its bytes.
_OTHER_MAGIC: tuple[tuple[bytes, Compression], ...] = (
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
)
# Compressed bytes given to zlib at a time. On damage the piece is fed again a byte at a time to
# find the exact offset, and one byte inflates to at most ~1 KB, so that holds at most ~16 MB.
_PIECE_BYTES = 16 * 1024
# The buffer lines are looked for in; bigger reads go straight through.
_BUFFER_BYTES = 64 * 1024
# wbits for zlib: a gzip header and trailer (CRC-32 and length checked) around deflate data.
_GZIP_WBITS = 16 + zlib.MAX_WBITS


def compression_of(file: Path) -> Compression:
    """How `file` is compressed, by its first bytes ("none" for anything else)."""
    with open(file, "rb") as f:
        head = f.read(8)
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    for magic, name in _OTHER_MAGIC:
        if head.startswith(magic):
            return name
    return "none"


class CompressedDataError(OSError):
    """gzip data that stopped decompressing: damaged, cut off, or followed by bytes that are not gzip."""

    def __init__(self, why: str, *, compressed_offset: int, decompressed_offset: int) -> None:
        super().__init__(f"gzip data {why} at compressed byte {compressed_offset}")
        self.why = why
        self.compressed_offset = compressed_offset
        # Bytes that decompressed before the damage: everything a reader got.
        self.decompressed_offset = decompressed_offset


class GzipStream:
    """A gzip file (one member or several back to back, as `cat a.gz b.gz` makes) as a binary stream.

    read() and readline() return every byte that decompressed cleanly; once none is left before
    the damage, they raise CompressedDataError. readline() raises rather than return a line cut
    by the damage: that line's record is lost with the rest.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._decompressor = _GzipDecompressor(raw)
        # Lines are found by the C buffered reader; the decompressor ends its stream at the damage.
        self._buffered = io.BufferedReader(self._decompressor, buffer_size=_BUFFER_BYTES)

    def __enter__(self) -> GzipStream:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self._buffered.close()

    def read(self, size: int = -1, /) -> bytes:
        data = self._buffered.read(size)
        if not data and size != 0:
            self._raise_damage()
        return data

    def readline(self, size: int = -1, /) -> bytes:
        line = self._buffered.readline(size)
        if not line.endswith(b"\n") and (size < 0 or len(line) < size):
            self._raise_damage()
        return line

    def _raise_damage(self) -> None:
        if self._decompressor.error is not None:
            raise self._decompressor.error


class _GzipDecompressor(io.RawIOBase):
    """The raw stream under GzipStream: decompressed bytes up to the end or the damage, where it reports end of file
    and keeps the error in `error`."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._zlib = zlib.decompressobj(wbits=_GZIP_WBITS)
        self._input = b""  # compressed bytes read from the file and not yet taken by zlib
        self._input_offset = 0  # file offset of self._input[0]
        self._raw_eof = False
        self._out = b""  # decompressed bytes not yet returned, from self._out_pos on
        self._out_pos = 0
        self._decompressed = 0  # bytes zlib produced
        self._end = False
        self.error: CompressedDataError | None = None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        with memoryview(buffer) as view:
            while self._out_pos >= len(self._out):
                self._out, self._out_pos = b"", 0
                if not self._decompress_more(len(view)):
                    return 0
            n = min(len(view), len(self._out) - self._out_pos)
            view[:n] = self._out[self._out_pos : self._out_pos + n]
        self._out_pos += n
        return n

    def _decompress_more(self, max_bytes: int) -> bool:
        """Decompress up to `max_bytes` more into self._out; False once the stream has ended or failed."""
        if self._end or self.error is not None:
            return False
        if self._zlib.eof and not self._next_member():
            return False
        if not self._input and not self._read_piece():
            # The file ended inside a member. zlib may still hold output for input it has taken
            # (asked for at most max_bytes); once that is out, the member is cut off.
            out = self._zlib.decompress(b"", max_bytes)
            self._consumed(b"", 0, out)
            if not out and not self._zlib.eof:
                self._fail("ends before its end-of-stream marker (the file looks truncated)", self._input_offset)
                return False
            return True
        data = self._input
        before = self._zlib.copy()
        try:
            out = self._zlib.decompress(data, max_bytes)
        except zlib.error as err:
            self._zlib = before
            self._salvage(data, err)
            return True
        left = self._zlib.unused_data if self._zlib.eof else self._zlib.unconsumed_tail
        self._consumed(data, len(data) - len(left), out)
        return True

    def _consumed(self, data: bytes, taken: int, out: bytes) -> None:
        self._input = data[taken:]
        self._input_offset += taken
        self._out += out
        self._decompressed += len(out)

    def _salvage(self, data: bytes, err: zlib.error) -> None:
        """Feed the piece that failed again a byte at a time: keep its output up to the bad byte, and name that byte."""
        out = bytearray()
        for i in range(len(data)):
            try:
                out += self._zlib.decompress(data[i : i + 1])
            except zlib.error:
                self._consumed(data, i, bytes(out))
                self._fail(f"is damaged ({err})", self._input_offset)
                return
            if self._zlib.eof:
                # The member ended inside the piece; the rest is read as what follows it.
                self._consumed(data, i + 1, bytes(out))
                return
        self._consumed(data, len(data), bytes(out))

    def _next_member(self) -> bool:
        """After a member's end: start the next one, or end the stream at the file's end (zero padding allowed)."""
        while True:
            self._input_offset += len(self._input) - len(self._input.lstrip(b"\0"))
            self._input = self._input.lstrip(b"\0")
            if len(self._input) >= len(GZIP_MAGIC) or not self._read_piece():
                break
        if not self._input:
            self._end = True
            return False
        if not self._input.startswith(GZIP_MAGIC):
            self._fail(f"is followed by {len(self._input)}+ bytes that are not gzip", self._input_offset)
            return False
        self._zlib = zlib.decompressobj(wbits=_GZIP_WBITS)
        return True

    def _read_piece(self) -> bool:
        """Append the file's next piece to the input; False at the file's end."""
        more = b"" if self._raw_eof else self._raw.read(_PIECE_BYTES)
        self._raw_eof = not more
        self._input += more
        return bool(more)

    def _fail(self, why: str, compressed_offset: int) -> None:
        self.error = CompressedDataError(
            why, compressed_offset=compressed_offset, decompressed_offset=self._decompressed
        )


def open_input(file: Path, compression: Compression) -> GzipStream | BinaryIO:
    """`file` opened for reading its content: decompressed when it is gzip, as it is otherwise."""
    raw = open(file, "rb")  # closed by the caller's with-block (through GzipStream when wrapped)
    return GzipStream(raw) if compression == "gzip" else raw
