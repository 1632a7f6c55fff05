"""Where a run's files go: every stage's output under <out>/<run_id>/."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flows.stage_cache import StageCache


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a short random suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class RunPaths:
    """The layout of one run's output directory."""

    root: Path
    # Where finished per-part work is kept across runs (None: caching off).
    cache_root: Path | None = None

    @classmethod
    def create(cls, out_dir: Path, run_id: str, *, cache_dir: Path | None = None) -> RunPaths:
        return cls(root=out_dir / run_id, cache_root=cache_dir)

    @property
    def cache(self) -> StageCache:
        return StageCache(self.cache_root)

    @property
    def run_id(self) -> str:
        return self.root.name

    def stage_dir(self, stage: str) -> Path:
        return self.root / "stages" / stage

    def stage_part(self, stage: str, part: str) -> Path:
        return self.stage_dir(stage) / f"part-{part}.parquet"

    @property
    def ledger_dir(self) -> Path:
        return self.root / "ledger"

    def ledger_part(self, stage: str, part: str) -> Path:
        return self.ledger_dir / f"{stage}-{part}.parquet"

    @property
    def conversations_dir(self) -> Path:
        """The run's final output: curated conversation Parquet parts."""
        return self.root / "conversations"

    @property
    def shards_dir(self) -> Path:
        """Training shards (Parquet) and their manifest.json."""
        return self.root / "shards"

    @property
    def report_json(self) -> Path:
        return self.root / "report.json"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def config_json(self) -> Path:
        return self.root / "config.json"

    @property
    def run_json(self) -> Path:
        """Written when the run starts: its inputs and options, so a killed run can be resumed."""
        return self.root / "run.json"

    def clear_outputs(self) -> None:
        """Remove what an earlier (killed or finished) run under this id wrote, so nothing is left over twice."""
        for name in ("stages", "ledger", "conversations", "shards", "contamination"):
            shutil.rmtree(self.root / name, ignore_errors=True)
        for name in ("report.json", "report.md", "lineage.json"):
            (self.root / name).unlink(missing_ok=True)


def part_name(part: str | Path) -> str:
    """The stable name of a part ("part-<name>.parquet"): every stage's output keeps its input's name."""
    return Path(part).name.removeprefix("part-").removesuffix(".parquet")


def publish_parts(parts: list[str], dest: Path) -> list[str]:
    """Give the final stage's parts their published names under `dest` (hard links when possible)."""
    dest.mkdir(parents=True, exist_ok=True)
    published = []
    for i, part in enumerate(parts):
        target = dest / f"part-{i:05d}.parquet"
        target.unlink(missing_ok=True)
        try:
            os.link(part, target)
        except OSError:
            shutil.copyfile(part, target)
        published.append(str(target))
    return published


def run_record_json(run_id: str, inputs: list[Path], out_dir: Path, started_at: str) -> str:
    """run.json: what `chatsift curate --resume` needs to run the same work again (with config.json)."""
    return json.dumps(
        {"run_id": run_id, "inputs": [str(p) for p in inputs], "out_dir": str(out_dir), "started_at": started_at},
        indent=2,
    )
