"""Finished per-part work kept across runs: a content-addressed cache of a task's output files.

A per-part task's key is its stage's name, the code fingerprint, the options its declaration
covers (curation.stage.Stage.config_key) and the content of what it read. A hit hard-links the
cached files into the run directory and returns the task's recorded PartResult, so a re-run over
the same inputs, a run over grown inputs, or a run resumed after its process was killed redoes
only the parts that changed.

An entry is written as a temporary folder renamed into place after its files and result are
complete: a run killed while storing leaves no entry, only a temporary folder later runs remove.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from curation.runs.lineage import code_fingerprint
from curation.stage import Stage
from flows.parts import PartResult
from schemas import StageReport
from schemas.config import CurationConfig
from schemas.files import TEMP_PREFIX, file_digest, link_or_copy
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
        """The recorded result with its files linked back into `run_root`; None when not cached."""
        if self.root is None:
            return None
        entry = self.entry(stage, key)
        try:
            record = json.loads((entry / "result.json").read_text(encoding="utf-8"))
            for name, relative in record["files"].items():
                link_or_copy(entry / name, run_root / relative)
        except FileNotFoundError:
            # No entry, or one whose files were removed by hand: recompute.
            return None
        return _decode(record["result"], run_root)

    def store(self, stage: str, key: str, run_root: Path, result: PartResult) -> None:
        """Record `result` and its files (inside `run_root`) under `key`; of concurrent stores, the first wins."""
        if self.root is None:
            return
        entry = self.entry(stage, key)
        if (entry / "result.json").exists():
            return
        tmp = entry.with_name(f"{TEMP_PREFIX}{key}.{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        names = {}
        for i, path in enumerate(result.files()):
            name = f"file-{i:03d}{path.suffix}"
            link_or_copy(path, tmp / name)
            names[name] = str(path.relative_to(run_root))
        record = {"files": names, "result": _encode(result, run_root), "stored_at": time.time()}
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
        stale = [p for p in self.root.glob(f"*/*/{TEMP_PREFIX}*") if p.is_dir()]
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
        return len(stale)


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
    result = cache.fetch(stage.name, key, paths.root)
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
