"""A run's progress where its user looks: a Prefect progress artifact on the run's page and, for a run
started from a terminal, a bar there (rich), both fed the same figures.

The command line opens `terminal_progress()` around a flow call; inside it every `RunProgress` (curate's
stages, scrape's pages, finetune's steps) and every batch of parts `run_parts` runs (contamination's parts
checked, shards' parts tokenized) draws a bar with its count, time spent and time left. Without a terminal
(a deployment's run, a pipe, CI) only the artifacts and the log lines remain.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Literal, cast

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from flows.execution import publishing, run_logger, set_parts_progress
from schemas.ledger import StageReport

ProgressMode = Literal["auto", "on", "off"]
PROGRESS_MODES: tuple[ProgressMode, ...] = ("auto", "on", "off")

_PIPED_WIDTH = 160
# The bars of the command running in this process; None: no terminal to draw on.
_terminal: Progress | None = None


@contextmanager
def terminal_progress(mode: ProgressMode = "auto", console: Console | None = None) -> Iterator[None]:
    """Draw the progress of the runs started inside this block on stderr: "on" always, "auto" when stderr is
    a terminal, "off" never."""
    global _terminal
    if console is None:
        # "on" into a file or a pipe (a CI log): no terminal width to read; rich's 80 columns cut the figures
        width = _PIPED_WIDTH if mode == "on" and not sys.stderr.isatty() else None
        console = Console(stderr=True, force_terminal=True if mode == "on" else None, width=width)
    if mode == "off" or (mode == "auto" and not console.is_terminal) or _terminal is not None:
        yield
        return
    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
    )
    _terminal = bars
    set_parts_progress(_parts_bar)
    try:
        with bars, _logs_above(bars):
            yield
    finally:
        _terminal = None
        set_parts_progress(None)


class _LinesAboveTheBars(io.TextIOBase):
    """A text stream whose complete lines the bars' console prints above the bars (as rich's own stderr proxy
    does; a rich Console refuses to write to that proxy itself)."""

    def __init__(self, console: Console) -> None:
        self._console, self._pending = console, ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        if lines:
            # from_ansi keeps the handler's own colours; a Text is never read as markup
            self._console.print(Text.from_ansi("\n".join(lines)), soft_wrap=True)
        return len(text)


@contextmanager
def _logs_above(bars: Progress) -> Iterator[None]:
    """Prefect's console log handlers print above the bars instead of through them: they hold the stderr they
    were made with, which the bars cannot redirect."""
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in list(logging.Logger.manager.loggerDict))]
    handlers = {id(h): h for lg in loggers for h in lg.handlers if isinstance(h, PrefectConsoleHandler)}
    saved = {key: h.console.file for key, h in handlers.items()}
    above = cast(IO[str], _LinesAboveTheBars(bars.console))  # a TextIOBase: what rich writes to
    for h in handlers.values():
        h.console.file = above
    try:
        yield
    finally:
        for key, h in handlers.items():
            h.console.file = saved[key]


def _add_bar(description: str, total: int, unit: str) -> TaskID | None:
    return None if _terminal is None else _terminal.add_task(description, total=total, unit=unit, note="")


def _parts_bar(name: str, total: int) -> Any:
    """The bar of one batch of parts, advanced as each part's result comes back. A finished bar stays, as a
    line of what the step took (and so that a batch faster than a redraw is still shown)."""
    bars, bar = _terminal, _add_bar(f"  {name}", total, "parts")
    if bars is None or bar is None:
        return lambda: None
    return lambda: bars.advance(bar)


class RunProgress:
    """One measure of a run's progress (`done` of `total` `unit`): a Prefect progress artifact whose description
    reads like the terminal bar, and the bar when the run was started from a terminal."""

    def __init__(self, *, key: str, title: str, total: int, unit: str) -> None:
        self.title, self.total, self.unit, self.done = title, max(total, 1), unit, 0
        self._note = ""
        self._artifact: Any = None
        if publishing():
            from prefect.artifacts import create_progress_artifact

            self._artifact = create_progress_artifact(progress=0.0, key=key, description=self.description())
        self._bar = _add_bar(title, self.total, unit)

    def description(self) -> str:
        return f"{self.done:,} of {self.total:,} {self.unit}" + (f"; {self._note}" if self._note else "")

    def update(self, done: int, note: str = "") -> None:
        self.done, self._note = min(done, self.total), note
        if self._artifact is not None:
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(self._artifact, 100.0 * self.done / self.total, description=self.description())
        if _terminal is not None and self._bar is not None:
            _terminal.update(self._bar, completed=self.done, note=note)


class StageProgress:
    """A run's progress through its stages: one log line per stage with its counts, and the stages done of all
    with the records read, as an artifact and a terminal bar."""

    def __init__(self, *, key: str, title: str, stages: int) -> None:
        self.stages, self.done, self.records = stages, 0, 0
        self._progress = RunProgress(key=key, title=title, total=stages, unit="stages done")

    def stage_done(self, *reports: StageReport) -> None:
        """Log each report of the stage just finished (the first stage's inputs are the records read)."""
        self.done += 1
        if self.done == 1:
            self.records = sum(r.inputs for r in reports)
        for r in reports:
            dropped = f" {dict(sorted(r.dropped_by_reason.items()))}" if r.dropped_by_reason else ""
            rows = f", {r.rows_out} rows out" if r.rows_out is not None else ""
            reused = f", {r.parts_reused} of {r.parts} parts reused" if r.parts_reused else ""
            changed = f", changed {dict(sorted(r.changed.items()))}" if r.changed else ""
            run_logger().info(
                "stage %d/%d %s: %d in, %d kept, %d dropped%s%s%s%s, %.1f s",
                self.done,
                self.stages,
                r.stage,
                r.inputs,
                r.kept,
                r.dropped,
                dropped,
                rows,
                changed,
                reused,
                r.seconds,
            )
        last = reports[-1]
        self._progress.update(self.done, f"{self.records:,} records read; {last.stage}: {last.kept:,} kept")
