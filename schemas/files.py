"""Writing files so that a reader never sees half of one: the one atomic writer of curation/, flows/ and train/.

Every helper writes under a temporary name beside the target and renames it into place, so a
reader (or a later run) finds the old file or the whole new one, never a part; the rename is atomic
on POSIX. Temporary names start with ".", so globs over finished files ("part-*.parquet") skip them.
It lives in schemas/ because it is part of the contract every package keeps (a finished file is
whole), and schemas/ is the one package that train/ may import beside its own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# Prefix of the temporary names of folders (write_dir_atomic, the stage cache's entries).
TEMP_PREFIX = ".tmp-"


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temp path beside `path` to write to; renamed onto `path` only if the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, fsync'd before the rename."""
    with atomic_target(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` as UTF-8 to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def copy_file_atomic(source: Path, target: Path) -> None:
    """Put a copy of `source`'s bytes at `target` atomically.

    A copy, never a hard link: a file a run publishes must not share its inode with a cache entry
    or a stage part that a later run (or a person) may rewrite or truncate in place. shutil copies
    in the kernel (sendfile), ~40 ms for the 26 MB a real-sample run copies (docs/architecture.md).
    """
    with atomic_target(target) as tmp:
        shutil.copyfile(source, tmp)


def write_dir_atomic(final: Path, write: Callable[[Path], None]) -> None:
    """Fill a folder under a temporary name with `write(tmp)` and rename it onto `final` (replacing it)."""
    tmp = final.with_name(f"{TEMP_PREFIX}{final.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks: the checksum manifests publish for others to check."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """blake2b-128 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
