"""Finished per-part work kept across runs: a content-addressed cache of a task's output files.

A per-part task's key is its stage's name, the code fingerprint, the options its declaration
covers (curation.stage.Stage.config_key) and the content of what it read. A hit copies the
cached files into the run directory and returns the task's recorded PartResult, so a re-run over
the same inputs, a run over grown inputs, or a run resumed after its process was killed redoes
only the parts that changed.

An entry is written as a temporary folder renamed into place after its files and result are
complete: a run killed while storing leaves no entry, only a temporary folder later runs remove.
Its record (result.json) holds each file's size and blake2b, and a hit is verified file by file
before anything is copied: an entry damaged since (a file cut short, changed or missing, a record
that does not parse) is removed, the part is computed again, and the run report lists it
(RunReport.cache_entries_rejected). Files are copied both ways, never hard-linked, so damage to a
run's files cannot reach the cache, nor damage to the cache a finished run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from curation.runs.lineage import code_fingerprint
from curation.stage import Stage
from flows.execution import run_logger
from flows.parts import PartResult
from schemas import StageReport
from schemas.config import CurationConfig
from schemas.files import TEMP_PREFIX, atomic_write_text, copy_file_atomic, file_digest
from schemas.ledger import CacheRejection
from schemas.run_layout import RunPaths

# Results name files inside the run directory; stored relative to it so a later run gets its own paths.
_RUN_ROOT = "@run"


def _relative(path: str | None, root: Path) -> str | None:
    return None if path is None else str(Path(_RUN_ROOT) / Path(path).relative_to(root))


def _absolute(path: str | None, root: Path) -> str | None:
    return None if path is None else str(root / Path(path).relative_to(_RUN_ROOT))


def _encode(result: PartResult, root: Path) -> dict[str, Any]:
    return {
        "outputs": [_relative(p, root) for p in result.outputs],
        "ledger": _relative(result.ledger, root),
        "reports": [r.model_dump(mode="json") for r in result.reports],
        "findings": _relative(result.findings, root),
        "decisions_applied": [list(d) for d in result.decisions_applied],
    }


def _decode(record: dict[str, Any], root: Path) -> PartResult:
    return PartResult(
        outputs=tuple(str(_absolute(p, root)) for p in record["outputs"]),
        ledger=_absolute(record["ledger"], root),
        reports=tuple(StageReport.model_validate(r) for r in record["reports"]),
        findings=_absolute(record["findings"], root),
        decisions_applied=tuple((a, b, c, d) for a, b, c, d in record["decisions_applied"]),
    )


class _CachedFile(BaseModel):
    """One file of an entry: where it goes in the run, and what it must be to be reused."""

    path: str  # relative to the run directory
    size: int
    blake2b: str


class _Record(BaseModel):
    """An entry's result.json."""

    files: dict[str, _CachedFile]
    result: dict[str, Any]
    stored_at: float


class DamagedEntry(Exception):
    """A cache entry that cannot be trusted; it has been removed, and `reason` says what was wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _verified_record(entry: Path) -> _Record:
    """The entry's record, once every file it names has its recorded size and digest; else DamagedEntry."""
    try:
        record = _Record.model_validate_json((entry / "result.json").read_bytes())
    except FileNotFoundError:
        raise DamagedEntry("result.json is missing") from None
    except ValidationError as e:
        # Truncated or edited JSON, or a record of an older chatsift without sizes and digests.
        raise DamagedEntry(f"result.json is unreadable ({e.errors()[0]['msg']})") from None
    for name, expected in record.files.items():
        if Path(expected.path).is_absolute() or ".." in Path(expected.path).parts:
            raise DamagedEntry(f"{name} would be copied outside the run directory ({expected.path})")
        try:
            size = (entry / name).stat().st_size
        except FileNotFoundError:
            raise DamagedEntry(f"{name} is missing") from None
        if size != expected.size:
            raise DamagedEntry(f"{name} is {size} bytes, the record says {expected.size}")
        if file_digest(entry / name) != expected.blake2b:
            raise DamagedEntry(f"{name}'s blake2b differs from the record (same size, other bytes)")
    return record


@dataclass(frozen=True)
class StageCache:
    """The cache folder; `root=None` turns caching off (every lookup misses, nothing is stored)."""

    root: Path | None

    def key(self, stage: str, *parts: str) -> str:
        digest = hashlib.blake2b(digest_size=20)
        for piece in (stage, code_fingerprint(), *parts):
            digest.update(piece.encode() + b"\0")
        return digest.hexdigest()

    def entry(self, stage: str, key: str) -> Path:
        assert self.root is not None
        return self.root / stage / key[:2] / key

    def fetch(self, stage: str, key: str, run_root: Path) -> PartResult | None:
        """The recorded result with its files copied into `run_root`; None when not cached.

        A damaged entry is removed and raises DamagedEntry, so the caller computes the part again.
        """
        if self.root is None:
            return None
        entry = self.entry(stage, key)
        if not entry.is_dir():
            return None
        try:
            record = _verified_record(entry)
            result = _decode(record.result, run_root)
        except DamagedEntry:
            self._discard(entry)
            raise
        except (KeyError, TypeError, ValueError) as e:
            self._discard(entry)
            raise DamagedEntry(f"result.json does not describe a part result ({type(e).__name__}: {e})") from None
        for name, file in record.files.items():
            copy_file_atomic(entry / name, run_root / file.path)
        return result

    def store(self, stage: str, key: str, run_root: Path, result: PartResult) -> None:
        """Record `result` and copies of its files (inside `run_root`) under `key`; the first of two stores wins."""
        if self.root is None:
            return
        entry = self.entry(stage, key)
        if (entry / "result.json").exists():
            return
        tmp = entry.with_name(f"{TEMP_PREFIX}{key}.{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        files = {}
        for i, path in enumerate(result.files()):
            name = f"file-{i:03d}{path.suffix}"
            copy_file_atomic(path, tmp / name)
            # Sized and digested from the copy: what a later fetch checks is what the entry holds.
            files[name] = _CachedFile(
                path=str(path.relative_to(run_root)), size=(tmp / name).stat().st_size, blake2b=file_digest(tmp / name)
            )
        record = _Record(files=files, result=_encode(result, run_root), stored_at=time.time())
        (tmp / "result.json").write_text(record.model_dump_json(), encoding="utf-8")
        try:
            os.rename(tmp, entry)
        except OSError:
            # Another worker stored the same key first: its entry is equivalent.
            shutil.rmtree(tmp, ignore_errors=True)

    def _discard(self, entry: Path) -> None:
        """Remove a damaged entry: renamed aside first (a temporary name), so no run reads it half-deleted."""
        aside = entry.with_name(f"{TEMP_PREFIX}damaged-{entry.name}.{os.getpid()}")
        try:
            os.rename(entry, aside)
        except OSError:
            return  # another run removed it first
        shutil.rmtree(aside, ignore_errors=True)

    def remove_temporaries(self) -> int:
        """Delete temporary folders left by runs killed while storing; returns how many."""
        if self.root is None or not self.root.exists():
            return 0
        stale = [p for p in self.root.glob(f"*/*/{TEMP_PREFIX}*") if p.is_dir()]
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
        return len(stale)


def rejected_cache_entries(paths: RunPaths) -> list[CacheRejection]:
    """The damaged cache entries this run replaced, by stage and key (what cached_part recorded)."""
    return [CacheRejection.model_validate_json(f.read_bytes()) for f in sorted(paths.cache_rejected_dir.glob("*.json"))]


def cached_part(
    stage: Stage[Any],
    *,
    paths: RunPaths,
    config: CurationConfig,
    inputs: Sequence[tuple[str, Path]],
    compute: Callable[[], PartResult],
    extra_key: dict[str, str] | None = None,
) -> PartResult:
    """The one way a per-part task runs: the cached PartResult for this work, or `compute()`'s, stored for next time.

    Keyed on `stage`'s declared options (and `extra_key`, such as the benchmark items' digest) and on
    `inputs`: (label, file) pairs, where the label is what the output depends on besides the file's
    bytes (its path for ingest, its part name, or its position where the output records it). Each
    report of the result counts one part, reused or not; a reused one's seconds are the lookup's.
    """
    cache = StageCache(paths.cache_root)
    key = cache.key(
        stage.name, stage.config_key(config, extra_key), *(f"{label}\0{file_digest(f)}" for label, f in inputs)
    )
    started = time.perf_counter()
    try:
        result = cache.fetch(stage.name, key, paths.root)
    except DamagedEntry as e:
        result = None
        run_logger().warning("stage cache: %s entry %s rejected (%s); computing the part again", stage.name, key, e)
        # A file per rejection, not a return value: tasks may run in other processes (Dask), and
        # curate collects the files into the run report.
        rejection = CacheRejection(stage=stage.name, key=key, reason=e.reason)
        atomic_write_text(paths.cache_rejected_dir / f"{stage.name}-{key}.json", rejection.model_dump_json())
    reused = result is not None
    if result is None:
        result = compute()
        cache.store(stage.name, key, paths.root, result)
    seconds = time.perf_counter() - started
    reports = tuple(
        r.model_copy(update={"parts": 1, "parts_reused": int(reused), **({"seconds": seconds} if reused else {})})
        for r in result.reports
    )
    return replace(result, reports=reports, reused=reused)
