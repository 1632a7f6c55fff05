"""What a per-part task writes and returns: its kept records and drops, where the run layout puts them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curation.parquet import write_conversations, write_ledger
from schemas import Dropped, StageReport
from schemas.run_layout import RunPaths, part_name


@dataclass(frozen=True)
class PartResult:
    """What one per-part task wrote and counted; the stage cache stores it beside the files it names."""

    # What the next step reads: the kept part(s), or a keys or signatures table.
    outputs: tuple[str, ...]
    # This part's drops.
    ledger: str | None = None
    # One report per stage the task ran (clean runs six); each counts this one part.
    reports: tuple[StageReport, ...] = ()
    # contamination: every checked turn's finding, and the reviewers' decisions this part applied
    # as (conversation id, benchmark, item id, effect).
    findings: str | None = None
    decisions_applied: tuple[tuple[str, str, str, str], ...] = ()
    # Whether it came from the stage cache.
    reused: bool = False

    @property
    def output(self) -> str:
        """The one output of a task that writes one."""
        (only,) = self.outputs
        return only

    @property
    def report(self) -> StageReport:
        """The one report of a task that runs one stage."""
        (only,) = self.reports
        return only

    def files(self) -> list[Path]:
        """Every file the result names: what a cache entry keeps."""
        return [Path(p) for p in (*self.outputs, self.ledger, self.findings) if p]


def write_part(
    paths: RunPaths,
    stage: str,
    part: str,
    kept: Iterable[Any],
    dropped: Iterable[Dropped],
    reports: Sequence[StageReport],
    *,
    write: Callable[[Path, Any], int] = write_conversations,
) -> PartResult:
    """Write one part's kept records (with `write`: conversations by default) and its drops, under
    the input part's name, and the PartResult that names them."""
    name = part_name(part)
    out = paths.stage_part(stage, name)
    write(out, kept)
    ledger = paths.ledger_part(stage, name)
    write_ledger(ledger, dropped)
    return PartResult(outputs=(str(out),), ledger=str(ledger), reports=tuple(reports))
