"""Where a run's files go: the one description of a curate run's folder, and of a scrape folder.

A curate run lives in <out>/<run_id>/ (RunPaths): its inputs and options (run.json, config.json)
are written first, then each stage's parts under stages/, drops under ledger/, and last the
published conversations/, shards/, contamination/, report.json, report.md and lineage.json.
Finished per-part work shared by the runs of one <out> lives in <out>/cache/ unless the config
names another folder. A scrape folder (ScrapePaths) holds the page store, the saved pages, and one
folder per scrape run with its ledger and report.
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ValidationError

from schemas.config import CurationConfig
from schemas.errors import InputError
from schemas.files import link_or_copy

REPORT_NAME = "report.json"
REPORT_MD_NAME = "report.md"
CONFIG_NAME = "config.json"
RUN_RECORD_NAME = "run.json"
LINEAGE_NAME = "lineage.json"
CONVERSATIONS_DIR = "conversations"
LEDGER_DIR = "ledger"
SHARDS_DIR = "shards"
STAGES_DIR = "stages"
CONTAMINATION_DIR = "contamination"
CACHE_DIR = "cache"
# What a run publishes: lineage.json digests every file in these folders.
PUBLISHED_DIRS = (CONVERSATIONS_DIR, LEDGER_DIR, SHARDS_DIR)
PART_GLOB = "part-*.parquet"


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a short random suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def part_name(part: str | Path) -> str:
    """The stable name of a part ("part-<name>.parquet"): every stage's output keeps its input's name."""
    return Path(part).name.removeprefix("part-").removesuffix(".parquet")


def conversation_parts(folder: Path) -> list[str]:
    """The conversation parts of a folder (a run's conversations/), in name order."""
    return sorted(str(p) for p in Path(folder).glob(PART_GLOB))


class RunRecord(BaseModel):
    """run.json: what `chatsift curate --resume` needs to run the same work again (with config.json)."""

    run_id: str
    inputs: list[str]
    out_dir: str
    started_at: str


@dataclass(frozen=True)
class RunPaths:
    """The layout of one run's output directory."""

    root: Path
    # Where finished per-part work is kept across runs (None: caching off).
    cache_root: Path | None = None

    @classmethod
    def create(cls, out_dir: Path, run_id: str, *, cache_dir: Path | None = None) -> RunPaths:
        return cls(root=Path(out_dir) / run_id, cache_root=cache_dir)

    @classmethod
    def for_run(cls, out_dir: Path, run_id: str, config: CurationConfig) -> RunPaths:
        """The run's paths, with the cache where [run] puts it: cache_dir, or <out>/cache; none when off."""
        cache = Path(config.run.cache_dir) if config.run.cache_dir else Path(out_dir) / CACHE_DIR
        return cls.create(out_dir, run_id, cache_dir=cache if config.run.cache else None)

    @property
    def run_id(self) -> str:
        return self.root.name

    def stage_dir(self, stage: str) -> Path:
        return self.root / STAGES_DIR / stage

    def stage_part(self, stage: str, part: str) -> Path:
        return self.stage_dir(stage) / f"part-{part}.parquet"

    @property
    def ledger_dir(self) -> Path:
        return self.root / LEDGER_DIR

    def ledger_part(self, stage: str, part: str) -> Path:
        return self.ledger_dir / f"{stage}-{part}.parquet"

    @property
    def conversations_dir(self) -> Path:
        """The run's final output: curated conversation Parquet parts."""
        return self.root / CONVERSATIONS_DIR

    @property
    def shards_dir(self) -> Path:
        """Training shards (Parquet) and their manifest.json."""
        return self.root / SHARDS_DIR

    @property
    def contamination_dir(self) -> Path:
        """The reviewers' contamination report (report.html, report.json, flagged_pairs.csv)."""
        return self.root / CONTAMINATION_DIR

    @property
    def report_json(self) -> Path:
        return self.root / REPORT_NAME

    @property
    def report_md(self) -> Path:
        return self.root / REPORT_MD_NAME

    @property
    def lineage_json(self) -> Path:
        return self.root / LINEAGE_NAME

    @property
    def config_json(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def run_json(self) -> Path:
        """Written when the run starts: its inputs and options, so a killed run can be resumed."""
        return self.root / RUN_RECORD_NAME

    def clear_outputs(self) -> None:
        """Remove what an earlier (killed or finished) run under this id wrote, so nothing is left over twice."""
        for name in (STAGES_DIR, LEDGER_DIR, CONVERSATIONS_DIR, SHARDS_DIR, CONTAMINATION_DIR):
            shutil.rmtree(self.root / name, ignore_errors=True)
        for name in (REPORT_NAME, REPORT_MD_NAME, LINEAGE_NAME):
            (self.root / name).unlink(missing_ok=True)

    def published_files(self) -> list[Path]:
        """Every file the run publishes (what lineage.json digests), folder by folder, in name order."""
        return [f for folder in PUBLISHED_DIRS for f in sorted((self.root / folder).glob("*")) if f.is_file()]


def publish_parts(parts: list[str], dest: Path) -> list[str]:
    """Give the final stage's parts their published names under `dest` (hard links when possible)."""
    dest.mkdir(parents=True, exist_ok=True)
    published = []
    for i, part in enumerate(parts):
        target = dest / f"part-{i:05d}.parquet"
        link_or_copy(Path(part), target)
        published.append(str(target))
    return published


def run_record_json(run_id: str, inputs: list[Path], out_dir: Path, started_at: str) -> str:
    """run.json's text."""
    record = RunRecord(run_id=run_id, inputs=[str(p) for p in inputs], out_dir=str(out_dir), started_at=started_at)
    return json.dumps(record.model_dump(), indent=2)


def read_run_to_resume(run_dir: Path) -> tuple[list[Path], Path, CurationConfig, str]:
    """The inputs, output folder, config and run id recorded by the run in `run_dir`."""
    record_path, config_path = run_dir / RUN_RECORD_NAME, run_dir / CONFIG_NAME
    if not record_path.is_file() or not config_path.is_file():
        raise InputError(
            f"{run_dir} is not a run folder (no {RUN_RECORD_NAME} and {CONFIG_NAME}): pass OUT/<run-id> of a curate run"
        )
    try:
        record = RunRecord.model_validate_json(record_path.read_text(encoding="utf-8"))
        config = CurationConfig.model_validate_json(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, ValidationError) as e:
        raise InputError(
            f"{run_dir}: {RUN_RECORD_NAME} or {CONFIG_NAME} is unreadable ({e}); start a new run instead"
        ) from e
    return [Path(p) for p in record.inputs], run_dir.parent, config, run_dir.name


@dataclass(frozen=True)
class ScrapePaths:
    """The layout of a scrape folder: the page store and saved pages every scrape run shares, and its runs.

    store/                 raw pages by sha256 + journal.jsonl, so a re-run (or a killed run started
                           again) fetches nothing twice
    pages/<YYYY-MM-DD>/    <id>.html and its hidden .<id>.html.fetch.json (URL, fetch time), by the UTC
                           day the page was fetched: re-curating keeps its input groups stable
    <run_id>/ledger/       scrape-<chunk>.parquet: every id that did not become a page, with why
    <run_id>/scrape_report.json
    """

    root: Path

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def pages(self) -> Path:
        return self.root / "pages"

    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def ledger_part(self, run_id: str, chunk: str) -> Path:
        return self.run_dir(run_id) / LEDGER_DIR / f"scrape-{chunk}.parquet"

    def report(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "scrape_report.json"
