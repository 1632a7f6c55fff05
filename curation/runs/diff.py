"""Compare two curate runs: which conversations entered or left the output, and the ledger's why.

A run is its directory, <out>/<run_id>/, as `chatsift curate` wrote it: report.json, config.json,
conversations/ and ledger/. Conversations are compared by source id: a row's id, or its parent_id
when it is a piece of a split conversation, so a conversation that is split in one run and whole
in the other counts as kept in both.

Every per-record step (id sets, joins, the why of each entry) is a polars query over the Parquet
files: a run of millions of rows costs columns of ids, not a Python object per record. Python
objects are made only for what is shown (the first entries of the text) or asked for (JSON).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import polars as pl
from pydantic import ValidationError

from curation.parquet import SchemaVersionError, check_parquet_kind
from schemas.errors import InputError
from schemas.ledger import RunLineage, RunReport, Stage
from schemas.run_layout import (
    CONFIG_NAME,
    CONVERSATIONS_DIR,
    LEDGER_DIR,
    LINEAGE_NAME,
    REPORT_NAME,
    RUN_RECORD_NAME,
    RunRecord,
)

__all__ = [
    "ConfigChange",
    "Run",
    "RunDiff",
    "RunDirError",
    "config_changes",
    "diff_runs",
    "kept_source_ids",
    "list_runs",
    "load_run",
    "run_diff_json",
    "run_diff_text",
    "run_list_text",
]

NEW_INPUT_WHY = "new input (not read by A)"
NOT_IN_B_WHY = "not in B's inputs"

_STAGE_RANK = {stage: i for i, stage in enumerate(get_args(Stage))}
_KEPT_SCHEMA = {"conversation_id": pl.String, "input_file": pl.String, "record_index": pl.Int64}
_LEDGER_SCHEMA = {
    "conversation_id": pl.String,
    "stage": pl.String,
    "reason": pl.String,
    "detail": pl.String,
    "input_file": pl.String,
    "record_index": pl.Int64,
    "scope": pl.String,
}
_ENTRY_COLUMNS = ["conversation_id", "stage", "reason", "detail", "why"]


class RunDirError(InputError):
    """A path that is not a finished chatsift run directory, or one whose files cannot be read."""


@dataclass(frozen=True)
class Run:
    """One run's report, config and lazy queries over its files (nothing per record is read yet)."""

    path: Path
    report: RunReport
    # config.json as plain JSON, not a CurationConfig: a run written by another code version may
    # have keys today's model rejects, and a diff should still show them.
    config: dict[str, Any]
    # conversation_id, input_file, record_index: one row per source id in conversations/.
    kept: pl.LazyFrame
    # Conversation-scope ledger rows: conversation_id, stage, reason, detail, input_file, record_index.
    drops: pl.LazyFrame
    # conversation_id, cuts: one row per id with round-scope rows, its cuts as sorted
    # "stage: reason (detail)" strings (the record was kept; a round was cut out of it).
    cuts: pl.LazyFrame
    # Each file the run read -> its content digest, from lineage.json (empty for runs written before it).
    input_files: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigChange:
    """One dotted config key whose value differs; `only_in` names the run when the other lacks it."""

    key: str
    a: Any
    b: Any
    only_in: Literal["A", "B"] | None = None


@dataclass(frozen=True)
class RunDiff:
    """What changed from run A to run B, conversation by conversation, with the ledger's why.

    `entered`/`left` have columns conversation_id, stage, reason, detail, why (stage, reason and
    detail null for an id the other run never read), sorted by id; `*_by_reason` have stage,
    reason, label, count, most frequent first; `cut_changed` has conversation_id, cuts_a, cuts_b
    for ids kept in both runs whose round-scope cuts differ.
    """

    a: Run
    b: Run
    entered: pl.DataFrame
    left: pl.DataFrame
    entered_by_reason: pl.DataFrame
    left_by_reason: pl.DataFrame
    cut_changed: pl.DataFrame
    unchanged: int
    config_changes: tuple[ConfigChange, ...]
    inputs_only_a: tuple[str, ...]
    inputs_only_b: tuple[str, ...]

    @property
    def kept_a(self) -> int:
        """Source ids kept in A (which can be fewer than A's report.kept when ids repeat)."""
        return self.unchanged + self.left.height

    @property
    def kept_b(self) -> int:
        return self.unchanged + self.entered.height


# --- reading a run ---------------------------------------------------------------------------


def check_run_dir(path: Path) -> Path:
    """`path` when it holds a finished run (report.json), else a RunDirError saying what to pass."""
    what = "pass a run directory, <out>/<run_id>/ as `chatsift curate` wrote it"
    if not path.is_dir():
        raise RunDirError(f"{path} is not a directory: {what}")
    if not (path / REPORT_NAME).is_file():
        # The likeliest mistake is passing the --out folder itself: name the runs it holds.
        runs = sorted(p.name for p in path.iterdir() if (p / REPORT_NAME).is_file())
        hint = f"; it holds the run(s) {', '.join(runs[:5])}{' ...' if len(runs) > 5 else ''}" if runs else ""
        raise RunDirError(
            f"{path} is not a chatsift run directory (no {REPORT_NAME}; a run still going has none yet): {what}{hint}"
        )
    return path


def read_run_report(run_dir: Path) -> RunReport:
    """The run's report.json, or a RunDirError when it is not a chatsift RunReport."""
    path = check_run_dir(run_dir) / REPORT_NAME
    try:
        return RunReport.model_validate_json(path.read_bytes())
    except ValidationError as e:
        raise RunDirError(f"{path} is not a chatsift run report ({e.error_count()} problem(s): {e})") from e


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json as plain JSON, or a RunDirError when it is missing or not a JSON object."""
    path = run_dir / CONFIG_NAME
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError as e:
        raise RunDirError(f"{path} is missing: every curate run writes it first; is {run_dir} a whole run?") from e
    except json.JSONDecodeError as e:
        raise RunDirError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise RunDirError(f"{path} holds a JSON {type(data).__name__}, not a config object")
    return data


def _parts(folder: Path, kind: str) -> list[Path]:
    """The Parquet parts under `folder`, each checked (from its footer only) to be chatsift's `kind`."""
    files = sorted(folder.glob("*.parquet"))
    for path in files:
        try:
            check_parquet_kind(path, kind)
        except SchemaVersionError as e:
            raise RunDirError(f"{e} (only runs of a readable schema version compare)") from e
    return files


def kept_source_ids(run_dir: Path) -> pl.LazyFrame:
    """conversation_id, input_file, record_index: one row per source id in the run's conversations/.

    A split piece counts as its parent; a repeated id keeps its first position, so the result does
    not depend on how rows were spread over parts.
    """
    files = _parts(run_dir / CONVERSATIONS_DIR, "conversations")
    if not files:
        return pl.LazyFrame(schema=_KEPT_SCHEMA)
    return (
        pl.scan_parquet(files)
        .select(
            pl.coalesce("parent_id", "id").alias("conversation_id"),
            pl.col("provenance").struct.field("input_file"),
            pl.col("provenance").struct.field("record_index"),
        )
        .sort("conversation_id", "input_file", "record_index", nulls_last=True)
        .unique("conversation_id", keep="first", maintain_order=True)
    )


def _scan_ledger(run_dir: Path) -> pl.LazyFrame:
    files = _parts(run_dir / LEDGER_DIR, "ledger")
    if not files:
        return pl.LazyFrame(schema=_LEDGER_SCHEMA)
    return pl.scan_parquet(files).select(list(_LEDGER_SCHEMA))


def _round_cuts(ledger: pl.LazyFrame) -> pl.LazyFrame:
    return (
        ledger.filter(pl.col("scope") == "round")
        .group_by("conversation_id")
        .agg(_describe("stage", "reason", "detail").sort().alias("cuts"))
    )


def load_run(path: Path) -> Run:
    """Run `path`'s report and config, and lazy queries for its kept ids, drops and round cuts."""
    report = read_run_report(path)
    ledger = _scan_ledger(path)
    return Run(
        path=path,
        report=report,
        config=read_run_config(path),
        kept=kept_source_ids(path),
        drops=ledger.filter(pl.col("scope") == "conversation").drop("scope"),
        cuts=_round_cuts(ledger),
        input_files=_input_files(path),
    )


def _input_files(run_dir: Path) -> dict[str, str]:
    """The run's input files by content digest, from its lineage.json (none when it lacks them)."""
    path = run_dir / LINEAGE_NAME
    if not path.is_file():
        return {}
    try:
        lineage = RunLineage.model_validate_json(path.read_bytes())
    except ValidationError as e:
        raise RunDirError(f"{path} is not a chatsift lineage file ({e.error_count()} problem(s): {e})") from e
    return {f.path: f.blake2b for f in lineage.input_files}


def _inputs_only_in(one: Run, other: Run) -> tuple[str, ...]:
    """`one`'s inputs that `other` did not read: by content where both lineages list their files (the same
    bytes under another path, or copied elsewhere, are the same input), else by the paths as given."""
    if one.input_files and other.input_files:
        theirs = set(other.input_files.values())
        return tuple(path for path, digest in one.input_files.items() if digest not in theirs)
    given = set(other.report.inputs)
    return tuple(p for p in one.report.inputs if p not in given)


# --- the diff --------------------------------------------------------------------------------


def _describe(stage: str, reason: str, detail: str) -> pl.Expr:
    """ "stage: reason (detail)", without the parentheses when there is no detail."""
    return (
        pl.when(pl.col(detail) == "")
        .then(pl.format("{}: {}", stage, reason))
        .otherwise(pl.format("{}: {} ({})", stage, reason, detail))
    )


def _first_drop(drops: pl.LazyFrame, key: list[str]) -> pl.LazyFrame:
    """One drop per `key`: the earliest stage, then reason and detail, so the choice is stable.

    A key has several rows when an id repeats in the input (each copy dropped on its own).
    """
    rank = pl.col("stage").replace_strict(_STAGE_RANK, default=len(_STAGE_RANK), return_dtype=pl.Int32)
    return (
        drops.with_columns(rank.alias("_rank"))
        .sort([*key, "_rank", "reason", "detail"])
        .unique(key, keep="first", maintain_order=True)
        .drop("_rank")
    )


def _explain(moved: pl.LazyFrame, other: Run, *, dropper: str, absent_why: str) -> pl.LazyFrame:
    """`moved` (ids kept on one side only) with the other run's drop of each, and a why.

    The drop is looked up by id, else by input position among the other run's ingest drops: a
    record ingest could not read (too large, not JSON) is ledgered as "<file>#<index>", not by id.
    """
    by_id = _first_drop(other.drops, ["conversation_id"]).select("conversation_id", "stage", "reason", "detail")
    by_position = _first_drop(
        other.drops.filter((pl.col("stage") == "ingest") & pl.col("record_index").is_not_null()),
        ["input_file", "record_index"],
    ).select(
        "input_file",
        "record_index",
        pl.col("conversation_id").alias("_pos_id"),
        pl.col("stage").alias("_pos_stage"),
        pl.col("reason").alias("_pos_reason"),
        pl.col("detail").alias("_pos_detail"),
    )
    joined = moved.join(by_id, on="conversation_id", how="left").join(
        by_position, on=["input_file", "record_index"], how="left"
    )
    # Flagged before the position's drop fills stage/reason/detail, which would hide the fallback.
    joined = joined.with_columns((pl.col("stage").is_null() & pl.col("_pos_stage").is_not_null()).alias("_by_pos"))
    by_pos = pl.col("_by_pos")
    joined = joined.with_columns(
        *(
            pl.when(by_pos).then(pl.col(f"_pos_{c}")).otherwise(pl.col(c)).alias(c)
            for c in ("stage", "reason", "detail")
        )
    )
    dropped_why = pl.format(f"{dropper} dropped it at {{}}", _describe("stage", "reason", "detail"))
    why = (
        pl.when(pl.col("stage").is_null())
        .then(pl.lit(absent_why))
        .when(by_pos)
        .then(pl.format("{} [ledgered by input position as {}]", dropped_why, "_pos_id"))
        .otherwise(dropped_why)
    )
    return joined.with_columns(why.alias("why")).select(_ENTRY_COLUMNS).sort("conversation_id")


def _by_reason(entries: pl.DataFrame, absent_why: str) -> pl.DataFrame:
    """stage, reason, label, count: one row per reason, most frequent first."""
    return (
        entries.group_by("stage", "reason")
        .agg(pl.len().cast(pl.Int64).alias("count"))
        .with_columns(
            pl.when(pl.col("stage").is_null())
            .then(pl.lit(absent_why))
            .otherwise(pl.format("{}: {}", "stage", "reason"))
            .alias("label")
        )
        .sort(["count", "stage", "reason"], descending=[True, False, False], nulls_last=True)
        .select("stage", "reason", "label", "count")
    )


def _cut_changes(a: Run, b: Run) -> pl.LazyFrame:
    """Ids kept in both runs whose round-scope cuts differ (an id absent from a side has none)."""
    none = pl.lit([], dtype=pl.List(pl.String))
    return (
        a.cuts.rename({"cuts": "cuts_a"})
        .join(b.cuts.rename({"cuts": "cuts_b"}), on="conversation_id", how="full", coalesce=True)
        # Cut ids are few next to kept ids: filter them, rather than join every kept id of both runs.
        .join(a.kept.select("conversation_id"), on="conversation_id", how="semi")
        .join(b.kept.select("conversation_id"), on="conversation_id", how="semi")
        .with_columns(pl.col("cuts_a").fill_null(none), pl.col("cuts_b").fill_null(none))
        # The lists are sorted: equal cuts compare equal whatever order the ledger had them in.
        .filter(pl.col("cuts_a").list.join("\n") != pl.col("cuts_b").list.join("\n"))
        .sort("conversation_id")
    )


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys down to the first value that is not a non-empty object (lists stay whole)."""
    if isinstance(value, dict) and (value or not prefix):
        flat: dict[str, Any] = {}
        for k, v in value.items():
            flat |= _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return flat
    return {prefix: value}


def config_changes(a: dict[str, Any], b: dict[str, Any]) -> tuple[ConfigChange, ...]:
    """The dotted keys whose values differ between two configs (as JSON), sorted by key."""
    flat_a, flat_b = _flatten(a), _flatten(b)
    changes = []
    for key in sorted(flat_a.keys() | flat_b.keys()):
        if key not in flat_b:
            changes.append(ConfigChange(key, flat_a[key], None, only_in="A"))
        elif key not in flat_a:
            changes.append(ConfigChange(key, None, flat_b[key], only_in="B"))
        elif flat_a[key] != flat_b[key]:
            changes.append(ConfigChange(key, flat_a[key], flat_b[key]))
    return tuple(changes)


def diff_runs(a: Run, b: Run) -> RunDiff:
    """Which source ids entered (kept in B, not A) or left (kept in A, not B) and why, per the ledgers."""
    ids_a, ids_b = a.kept.select("conversation_id"), b.kept.select("conversation_id")
    entered = _explain(b.kept.join(ids_a, on="conversation_id", how="anti"), a, dropper="A", absent_why=NEW_INPUT_WHY)
    left = _explain(a.kept.join(ids_b, on="conversation_id", how="anti"), b, dropper="B", absent_why=NOT_IN_B_WHY)
    # One collect, so polars can share the scans the queries have in common. Unchanged is
    # counted as A's ids less those that left: a third join of every kept id would cost more.
    entered_df, left_df, cut_df, count_a = pl.collect_all([entered, left, _cut_changes(a, b), ids_a.select(pl.len())])
    return RunDiff(
        a=a,
        b=b,
        entered=entered_df,
        left=left_df,
        entered_by_reason=_by_reason(entered_df, NEW_INPUT_WHY),
        left_by_reason=_by_reason(left_df, NOT_IN_B_WHY),
        cut_changed=cut_df,
        unchanged=int(count_a.item()) - left_df.height,
        config_changes=config_changes(a.config, b.config),
        inputs_only_a=_inputs_only_in(a, b),
        inputs_only_b=_inputs_only_in(b, a),
    )


# --- rendering -------------------------------------------------------------------------------


def _run_json(run: Run) -> dict[str, Any]:
    r = run.report
    return {
        "path": str(run.path),
        "run_id": r.run_id,
        "finished_at": r.finished_at,
        "code_version": r.code_version,
        "config_hash": r.config_hash,
        "inputs": r.inputs,
        "records_read": r.records_read,
        "kept": r.kept,
        "dropped": r.dropped,
    }


def run_diff_json(diff: RunDiff, *, limit: int | None = None) -> dict[str, Any]:
    """The diff as JSON-ready data: every entry, or the first `limit` of each list."""

    def rows(df: pl.DataFrame) -> list[dict[str, Any]]:
        return (df if limit is None else df.head(limit)).to_dicts()

    return {
        "a": _run_json(diff.a),
        "b": _run_json(diff.b),
        "counts": {
            "kept_a": diff.kept_a,
            "kept_b": diff.kept_b,
            "entered": diff.entered.height,
            "left": diff.left.height,
            "unchanged": diff.unchanged,
            "cut_changed": diff.cut_changed.height,
        },
        "inputs_only_in_a": list(diff.inputs_only_a),
        "inputs_only_in_b": list(diff.inputs_only_b),
        "config_changes": [
            {"key": c.key, "a": c.a, "b": c.b, **({"only_in": c.only_in} if c.only_in else {})}
            for c in diff.config_changes
        ],
        "left_by_reason": diff.left_by_reason.to_dicts(),
        "entered_by_reason": diff.entered_by_reason.to_dicts(),
        "left": rows(diff.left),
        "entered": rows(diff.entered),
        "cut_changed": rows(diff.cut_changed),
    }


def _reason_lines(counts: pl.DataFrame) -> list[str]:
    return [f"  {n:>8}  {label}" for label, n in counts.select("label", "count").iter_rows()] or ["  (none)"]


def _shown(title: str, df: pl.DataFrame, limit: int) -> str:
    return f"{title} ({df.height})" if df.height <= limit else f"{title} (first {limit} of {df.height})"


def run_diff_text(diff: RunDiff, *, limit: int = 20) -> str:
    """The diff for people: summary counts, counts per reason, the first `limit` entries each side,
    round cuts that changed, then config differences."""
    a, b = diff.a.report, diff.b.report
    lines = [
        f"A  {a.run_id}  finished {a.finished_at or '?'}  code {a.code_version}  config {a.config_hash[:8]}"
        f"  ({diff.a.path})",
        f"B  {b.run_id}  finished {b.finished_at or '?'}  code {b.code_version}  config {b.config_hash[:8]}"
        f"  ({diff.b.path})",
        "",
        f"kept conversations: A {diff.kept_a}, B {diff.kept_b}; entered {diff.entered.height}, "
        f"left {diff.left.height}, unchanged {diff.unchanged}; round cuts changed {diff.cut_changed.height}",
        "code version: " + ("same" if a.code_version == b.code_version else f"{a.code_version} -> {b.code_version}"),
        f"config: {len(diff.config_changes)} difference(s)" if diff.config_changes else "config: same",
    ]
    lines += [f"input only in A: {p}" for p in diff.inputs_only_a]
    lines += [f"input only in B: {p}" for p in diff.inputs_only_b]
    lines += ["", "left (kept in A, not in B), by reason:", *_reason_lines(diff.left_by_reason)]
    lines += ["entered (kept in B, not in A), by reason:", *_reason_lines(diff.entered_by_reason)]
    for title, df in (("left", diff.left), ("entered", diff.entered)):
        if df.height and limit:
            lines += ["", _shown(title, df, limit) + ":"]
            lines += [f"  {cid}  {why}" for cid, why in df.head(limit).select("conversation_id", "why").iter_rows()]
    if diff.cut_changed.height and limit:
        lines += ["", _shown("round cuts changed (kept in both)", diff.cut_changed, limit) + ":"]
        for cid, cuts_a, cuts_b in diff.cut_changed.head(limit).iter_rows():
            lines.append(f"  {cid}")
            lines += [f"    A: {cut}" for cut in cuts_a] or ["    A: no cut"]
            lines += [f"    B: {cut}" for cut in cuts_b] or ["    B: no cut"]
    if diff.config_changes:
        lines += ["", "config differences (A -> B):"]
        for c in diff.config_changes:
            a_value = "(absent)" if c.only_in == "B" else json.dumps(c.a)
            b_value = "(absent)" if c.only_in == "A" else json.dumps(c.b)
            lines.append(f"  {c.key}: {a_value} -> {b_value}")
    return "\n".join(lines) + "\n"


# --- listing runs ----------------------------------------------------------------------------


def _is_run_dir(path: Path) -> bool:
    """A finished run has report.json; one that failed, is running or was killed has only run.json."""
    return (path / REPORT_NAME).is_file() or (path / RUN_RECORD_NAME).is_file()


def _unfinished_run(run_dir: Path) -> RunRecord | RunDirError:
    """run.json of a run without report.json (failed, running or killed), or the error reading it."""
    path = run_dir / RUN_RECORD_NAME
    try:
        return RunRecord.model_validate_json(path.read_bytes())
    except ValidationError as e:
        return RunDirError(f"{path} is not a chatsift run record ({e.error_count()} problem(s): {e})")


def list_runs(out: Path) -> list[tuple[Path, RunReport | RunRecord | RunDirError]]:
    """The run directories under `out` (or `out` itself when it is one), sorted by name, each with
    its report, the run.json of a run that did not finish, or the error reading them, so one bad
    run does not hide the others."""
    if not out.is_dir():
        raise RunDirError(f"{out} is not a directory: pass the --out folder of `chatsift curate` (default ./runs)")
    dirs = [out] if _is_run_dir(out) else sorted(p for p in out.iterdir() if _is_run_dir(p))
    found: list[tuple[Path, RunReport | RunRecord | RunDirError]] = []
    for d in dirs:
        if not (d / REPORT_NAME).is_file():
            found.append((d, _unfinished_run(d)))
            continue
        try:
            found.append((d, read_run_report(d)))
        except RunDirError as e:
            found.append((d, e))
    return found


def run_list_text(runs: list[tuple[Path, RunReport | RunRecord | RunDirError]]) -> str:
    """One line per run: run_id, finished_at, read, kept, dropped, config hash (8), code version; for a
    run without a report, "failed" with its error, or "unfinished" (running, or killed)."""
    lines = []
    for path, report in runs:
        if isinstance(report, RunDirError):
            lines.append(f"{path.name}  unreadable: {report}")
            continue
        if isinstance(report, RunRecord):
            if report.status == "failed":
                lines.append(f"{report.run_id}  failed {report.finished_at or '?'}  {report.error}")
            elif report.status == "finished":
                lines.append(f"{report.run_id}  unreadable: run.json says finished, but {REPORT_NAME} is missing")
            else:
                lines.append(
                    f"{report.run_id}  unfinished (started {report.started_at}; still running, or killed:"
                    f" `chatsift curate --resume {path}` finishes it)"
                )
            continue
        lines.append(
            f"{report.run_id}  finished {report.finished_at or '?'}  read {report.records_read}  kept {report.kept}"
            f"  dropped {report.dropped}  config {report.config_hash[:8]}  code {report.code_version}"
        )
    return "\n".join(lines) + ("\n" if lines else "")
