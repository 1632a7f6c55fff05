"""Finished per-part work kept across runs: a content-addressed cache of a task's output files.

A task's cache key is the stage name, the code fingerprint, the stage's own config sections and
the content hash of what it read. A hit hard-links the cached files into the run directory and
returns the task's recorded result, so a re-run over the same inputs, a run over grown inputs,
or a run resumed after its process was killed redoes only the parts that changed.

An entry is written as a temporary folder renamed into place after its files and result are
complete: a run killed while storing leaves no entry, only a temporary folder later runs remove.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas import StageReport

# The packages whose source decides what a stage writes: any change to them is a new code version.
_CODE_PACKAGES = ("schemas", "curation", "flows")
_RUN_ROOT = "@run"
_TEMP_PREFIX = ".tmp-"


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of every source file of the pipeline's packages: the cache's "code version".

    Finer than a git commit (a commit that changes only docs or tests keeps the cache) and
    available where no git checkout is (an installed wheel, a Docker image).
    """
    repo = Path(__file__).resolve().parents[1]
    digest = hashlib.blake2b(digest_size=16)
    for package in _CODE_PACKAGES:
        for source in sorted((repo / package).rglob("*.py")):
            digest.update(str(source.relative_to(repo)).encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """blake2b-128 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def config_digest(*sections: BaseModel | str | int | None) -> str:
    """A stable hash of the config sections (and plain values) a stage reads."""
    canonical = [s.model_dump(mode="json") if isinstance(s, BaseModel) else s for s in sections]
    return hashlib.blake2b(json.dumps(canonical, sort_keys=True).encode(), digest_size=16).hexdigest()


def _encode(value: Any, root: str) -> Any:
    # Results name files inside the run directory; stored relative to it so a later run gets its own paths.
    if isinstance(value, StageReport):
        return {"__stage_report__": _encode(value.model_dump(mode="json"), root)}
    if isinstance(value, dict):
        return {k: _encode(v, root) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v, root) for v in value]
    if isinstance(value, str) and value.startswith(root + os.sep):
        return _RUN_ROOT + value[len(root) :]
    return value


def _decode(value: Any, root: str) -> Any:
    if isinstance(value, dict):
        if "__stage_report__" in value:
            return StageReport.model_validate(_decode(value["__stage_report__"], root))
        return {k: _decode(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, root) for v in value]
    if isinstance(value, str) and value.startswith(_RUN_ROOT + os.sep):
        return root + value[len(_RUN_ROOT) :]
    return value


def _link_or_copy(source: Path, target: Path) -> None:
    """Put `source`'s bytes at `target` atomically: a hard link (no copy) where the filesystem allows."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{_TEMP_PREFIX}{target.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


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

    def fetch(self, stage: str, key: str, run_root: Path) -> dict | None:
        """The recorded result with its files linked back into `run_root`; None when not cached."""
        if self.root is None:
            return None
        entry = self.entry(stage, key)
        try:
            record = json.loads((entry / "result.json").read_text(encoding="utf-8"))
            for name, relative in record["files"].items():
                _link_or_copy(entry / name, run_root / relative)
        except FileNotFoundError:
            # No entry, or one whose files were removed by hand: recompute.
            return None
        return _decode(record["result"], str(run_root))

    def store(self, stage: str, key: str, run_root: Path, files: list[Path], result: dict) -> None:
        """Record `files` (inside `run_root`) and `result` under `key`; a concurrent store of the same key wins once."""
        if self.root is None:
            return
        entry = self.entry(stage, key)
        if (entry / "result.json").exists():
            return
        tmp = entry.with_name(f"{_TEMP_PREFIX}{key}.{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        names = {}
        for i, path in enumerate(files):
            name = f"file-{i:03d}{path.suffix}"
            _link_or_copy(path, tmp / name)
            names[name] = str(path.relative_to(run_root))
        record = {"files": names, "result": _encode(result, str(run_root)), "stored_at": time.time()}
        (tmp / "result.json").write_text(json.dumps(record), encoding="utf-8")
        try:
            os.rename(tmp, entry)
        except OSError:
            # Another worker stored the same key first: its entry is equivalent.
            shutil.rmtree(tmp, ignore_errors=True)

    def remove_temporaries(self) -> int:
        """Delete temporary folders left by runs killed while storing; returns how many."""
        if self.root is None or not self.root.exists():
            return 0
        stale = [p for p in self.root.glob(f"*/*/{_TEMP_PREFIX}*") if p.is_dir()]
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
        return len(stale)


def reuse_or_compute(
    cache: StageCache,
    stage: str,
    key_parts: list[str],
    run_root: Path,
    compute: Callable[[], dict],
    files_of: Callable[[dict], list[Path]],
) -> dict:
    """The cached result for this work, or `compute()`'s, stored for next time.

    The returned dict gains "reused" (bool); every StageReport in it counts one part, reused or not.
    """
    key = cache.key(stage, *key_parts)
    started = time.perf_counter()
    result = cache.fetch(stage, key, run_root)
    reused = result is not None
    if result is None:
        result = compute()
        cache.store(stage, key, run_root, files_of(result), result)
    for report in _reports_in(result):
        report.parts = 1
        report.parts_reused = int(reused)
        if reused:
            report.seconds = time.perf_counter() - started
    return {**result, "reused": reused}


def _reports_in(result: Mapping[str, Any]) -> list[StageReport]:
    found: list[StageReport] = []
    for value in result.values():
        if isinstance(value, StageReport):
            found.append(value)
        elif isinstance(value, list):
            found.extend(v for v in value if isinstance(v, StageReport))
    return found


def reuse_or_compute_part(
    cache: StageCache,
    stage: str,
    part: str,
    run_root: Path,
    compute: Callable[[], dict],
    *,
    config: tuple[BaseModel, ...],
    extra_key: tuple[str, ...] = (),
    extra_files: tuple[str, ...] = (),
) -> dict:
    """`reuse_or_compute` for a per-part task whose result names its output "part" and "ledger".

    Keyed on the part's name and bytes, the config sections the stage reads and `extra_key`;
    stores the files named by "part", "ledger" and the `extra_files` keys of the result.
    """
    name = Path(part).name.removeprefix("part-").removesuffix(".parquet")
    key_parts = [name, file_digest(Path(part)), config_digest(*config), *extra_key]
    return reuse_or_compute(
        cache,
        stage,
        key_parts,
        run_root,
        compute,
        files_of=lambda r: [Path(r[k]) for k in ("part", "ledger", *extra_files)],
    )
