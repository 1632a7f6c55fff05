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
import re
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from schemas.config import CurationConfig
from schemas.errors import ConfigError, InputError
from schemas.files import TEMP_PREFIX, atomic_write_text, copy_file_atomic

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
EXPORTS_DIR = "exports"
CACHE_DIR = "cache"
# Stage-cache entries a run found damaged, one JSON file each, collected into report.json.
CACHE_REJECTED_DIR = "cache-rejected"
# The stages whose parts hold the input's raw text (before the secrets stage redacts it): removed
# when the run ends unless RunConfig.keep_raw_intermediates (docs/defaults.md#run).
RAW_STAGES = ("ingest",)
# What a run publishes: lineage.json digests every file in these folders.
PUBLISHED_DIRS = (CONVERSATIONS_DIR, LEDGER_DIR, SHARDS_DIR)
PART_GLOB = "part-*.parquet"


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus a short random suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


# A run id names a folder under the output folder, never a path: the rule of a safe conversation id
# (curation.ingest.read.is_safe_id), so neither "../x" nor "/abs" can write outside it.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


def check_run_id(run_id: str) -> str:
    """`run_id` when it is a plain folder name, else a ConfigError that says what a run id may hold."""
    if _SAFE_NAME.fullmatch(run_id) is None or ".." in run_id:
        raise ConfigError(
            f"run id {run_id!r} is not a folder name: use letters, digits, '_', '.' and '-' (first a letter or "
            "digit, at most 128, no '..'), or leave --run-id out for a new one"
        )
    return run_id


def part_name(part: str | Path) -> str:
    """The stable name of a part ("part-<name>.parquet"): every stage's output keeps its input's name."""
    return Path(part).name.removeprefix("part-").removesuffix(".parquet")


def conversation_parts(folder: Path) -> list[str]:
    """The conversation parts of a folder (a run's conversations/), in name order."""
    return sorted(str(p) for p in Path(folder).glob(PART_GLOB))


RunStatus = Literal["running", "finished", "failed"]


class RunRecord(BaseModel):
    """run.json: what `chatsift curate --resume` needs to run the same work again (with config.json),
    and how the run ended: "running" until then, and after a kill, which records nothing."""

    run_id: str
    inputs: list[str]
    out_dir: str
    started_at: str
    status: RunStatus = "running"
    finished_at: str = ""
    # A failed run's error, as `ExceptionType: message`.
    error: str = ""


@dataclass(frozen=True)
class RunPaths:
    """The layout of one run's output directory."""

    root: Path
    # Where finished per-part work is kept across runs (None: caching off).
    cache_root: Path | None = None
    # True while curate builds the shards: they are written under a temporary name and renamed to
    # shards/ only once the ledger balance holds, so a failed run leaves no shards that verify.
    shards_staged: bool = False

    @classmethod
    def create(cls, out_dir: Path, run_id: str, *, cache_dir: Path | None = None) -> RunPaths:
        """The paths of run `run_id` under `out_dir`; a ConfigError when the id is not a folder name."""
        return cls(root=Path(out_dir) / check_run_id(run_id), cache_root=cache_dir)

    @classmethod
    def for_run(cls, out_dir: Path, run_id: str, config: CurationConfig) -> RunPaths:
        """The run's paths, with the cache where [run] puts it: cache_dir, or <out>/cache; none when off."""
        cache = Path(config.run.cache_dir) if config.run.cache_dir else Path(out_dir) / CACHE_DIR
        return cls.create(out_dir, run_id, cache_dir=cache if config.run.cache else None)

    @property
    def run_id(self) -> str:
        return self.root.name

    def refuse_if_taken(self) -> None:
        """A ConfigError when a new run would replace an earlier one under the same id (only --resume may)."""
        if self.root.exists():
            raise ConfigError(
                f"run id {self.run_id!r} is taken by {self.root}: pass --resume {self.root} to continue it, "
                f"choose another --run-id, or remove {self.root}"
            )

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
        """Training shards (Parquet) and their manifest.json (under their staging name while staged)."""
        final = self.root / SHARDS_DIR
        return staging_name(final) if self.shards_staged else final

    def export_dir(self, fmt: str) -> Path:
        """The shards in another trainer's format ([shards] exports), with its export_manifest.json."""
        return self.root / EXPORTS_DIR / fmt

    @property
    def cache_rejected_dir(self) -> Path:
        """One JSON file (a schemas.ledger.CacheRejection) per damaged cache entry this run replaced."""
        return self.root / CACHE_REJECTED_DIR

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
        for name in (STAGES_DIR, LEDGER_DIR, CONVERSATIONS_DIR, SHARDS_DIR, CONTAMINATION_DIR, CACHE_REJECTED_DIR):
            shutil.rmtree(self.root / name, ignore_errors=True)
            shutil.rmtree(staging_name(self.root / name), ignore_errors=True)
        for name in (REPORT_NAME, REPORT_MD_NAME, LINEAGE_NAME):
            (self.root / name).unlink(missing_ok=True)

    def remove_raw_intermediates(self) -> None:
        """Delete the parts of the stages that hold the input's unredacted text (RAW_STAGES)."""
        for stage in RAW_STAGES:
            shutil.rmtree(self.stage_dir(stage), ignore_errors=True)

    def published_files(self) -> list[Path]:
        """Every file the run publishes (what lineage.json digests), folder by folder, in name order."""
        return [f for folder in PUBLISHED_DIRS for f in sorted((self.root / folder).glob("*")) if f.is_file()]


def staging_name(folder: Path) -> Path:
    """The temporary name `folder` is filled under before it is renamed into place (hidden, so globs skip it)."""
    return folder.with_name(f"{TEMP_PREFIX}{folder.name}")


def publish_parts(parts: list[str], dest: Path) -> list[str]:
    """Copy the final stage's parts under `dest` with their published names (copies: schemas.files.copy_file_atomic)."""
    dest.mkdir(parents=True, exist_ok=True)
    published = []
    for i, part in enumerate(parts):
        target = dest / f"part-{i:05d}.parquet"
        copy_file_atomic(Path(part), target)
        published.append(str(target))
    return published


def run_record_json(run_id: str, inputs: list[Path], out_dir: Path, started_at: str) -> str:
    """run.json's text; paths resolved, so that --resume finds the inputs from any working directory."""
    record = RunRecord(
        run_id=run_id,
        inputs=[str(Path(p).resolve()) for p in inputs],
        out_dir=str(Path(out_dir).resolve()),
        started_at=started_at,
    )
    return json.dumps(record.model_dump(), indent=2)


def record_run_end(run_json: Path, status: RunStatus, *, finished_at: str, error: str = "") -> None:
    """Mark run.json "finished" or "failed" (with the error), keeping what the run started with."""
    record = RunRecord.model_validate_json(run_json.read_text(encoding="utf-8"))
    ended = record.model_copy(update={"status": status, "finished_at": finished_at, "error": error})
    atomic_write_text(run_json, json.dumps(ended.model_dump(), indent=2))


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
    return _recorded_inputs(record, run_dir), run_dir.parent, config, run_dir.name


def _recorded_inputs(record: RunRecord, run_dir: Path) -> list[Path]:
    """The run's inputs as absolute paths. run.json written before paths were resolved holds them
    relative to the directory the run started in: that is the run folder's parent less the recorded
    relative out_dir ("runs" in /work/runs/<id> gives /work), else the working directory."""
    inputs = [Path(p) for p in record.inputs]
    bases = [Path.cwd()]
    out_dir, parent = Path(record.out_dir), run_dir.resolve().parent
    if not out_dir.is_absolute() and ".." not in out_dir.parts:
        started = parent
        for _ in out_dir.parts:
            started = started.parent
        if started / out_dir == parent:
            bases.insert(0, started)
    for base in bases:
        if all((base / p).exists() for p in inputs):
            return [base / p for p in inputs]
    return [Path.cwd() / p for p in inputs]


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
