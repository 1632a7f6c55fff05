"""How the flows run their tasks: on Prefect (always, for users), or in a plain loop (benchmarks).

Every flow body runs its stages as plain calls, submits their tasks through `run_parts`/`run_step`,
logs through `run_logger()` and publishes artifacts through `publish_*`. Under Prefect (the
default) these are task submissions to the run's task runner, Prefect's run logger and artifacts,
all on the one flow run. Inside `plain_execution()` the very same flow functions run with every
task's undecorated function called in order, a plain logger and no artifacts: that is the baseline
bench/overhead.py sets against Prefect, with no second copy of the pipeline.

The stages are no subflows: a subflow run costs ~0.35 s, ~1 s more with the heartbeat of a
deployment's run, and hides its logs and artifacts from the run's page (docs/defaults.md#prefect).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prefect import Task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger
from prefect.task_runners import TaskRunner
from prefect.utilities.callables import get_call_parameters

from schemas.ledger import StageReport

R = TypeVar("R")


@dataclass
class PlainCalls:
    """What a plain execution ran: the task runs Prefect would have made for the same work."""

    tasks: int = 0
    by_name: dict[str, int] = field(default_factory=dict)
    seconds_by_name: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        """Wall time inside the task functions."""
        return sum(self.seconds_by_name.values())

    def call(self, task: Task[..., R], *args: Any) -> R:
        self.tasks += 1
        self.by_name[task.name] = self.by_name.get(task.name, 0) + 1
        started = time.perf_counter()
        try:
            return task.fn(*args)
        finally:
            elapsed = time.perf_counter() - started
            self.seconds_by_name[task.name] = self.seconds_by_name.get(task.name, 0.0) + elapsed


# None: Prefect. A PlainCalls: the plain loop, counting what it runs.
_plain: ContextVar[PlainCalls | None] = ContextVar("chatsift_plain_execution", default=None)
# The current run's task runner (flows.runners.run_task_runner); None: the flow's own.
_run_runner: ContextVar[TaskRunner[Any] | None] = ContextVar("chatsift_run_task_runner", default=None)
_PLAIN_LOGGER = logging.getLogger("chatsift")


@contextmanager
def plain_execution() -> Iterator[PlainCalls]:
    """Run flows called inside this block as plain function calls, one task at a time, without Prefect."""
    calls = PlainCalls()
    token = _plain.set(calls)
    try:
        yield calls
    finally:
        _plain.reset(token)


@contextmanager
def tasks_on(runner: TaskRunner[Any]) -> Iterator[None]:
    """Inside this block, `run_parts` submits to `runner` (started) instead of the flow's task runner."""
    token = _run_runner.set(runner)
    try:
        yield
    finally:
        _run_runner.reset(token)


def run_parts(task: Task[..., R], arguments: Sequence[tuple[Any, ...]]) -> list[R]:
    """Run `task` once per argument tuple (concurrently on Prefect's runner) and return the results in order."""
    plain = _plain.get()
    if plain is not None:
        return [plain.call(task, *args) for args in arguments]
    runner = _run_runner.get()
    if runner is None:
        return [future.result() for future in [task.submit(*args) for args in arguments]]
    # TaskRunner.submit is what Task.submit calls with the flow's runner; the parts run on the run's.
    futures = [runner.submit(task, get_call_parameters(task.fn, args, {})) for args in arguments]
    return [future.result() for future in futures]


def run_step(task: Task[..., R], *args: Any) -> R:
    """Run one task (a global step) and return its result."""
    plain = _plain.get()
    return plain.call(task, *args) if plain is not None else task(*args)


def run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """Prefect's logger of the current flow or task run; a plain `chatsift` logger outside Prefect."""
    if _plain.get() is not None:
        return _PLAIN_LOGGER
    try:
        return get_run_logger()
    except MissingContextError:
        return _PLAIN_LOGGER


def publishing() -> bool:
    """Whether artifacts are published: on Prefect, not in a plain execution."""
    return _plain.get() is None


def publish_markdown(*, key: str, markdown: str, description: str) -> None:
    if publishing():
        create_markdown_artifact(markdown=markdown, key=key, description=description)


def publish_table(*, key: str, table: list[dict[str, Any]], description: str) -> None:
    if publishing():
        create_table_artifact(table=table, key=key, description=description)


def publish_link(*, key: str, link: str, link_text: str, description: str) -> None:
    if publishing():
        create_link_artifact(link=link, link_text=link_text, key=key, description=description)


class StageProgress:
    """A run's progress through its stages: one log line per stage with its counts, and a Prefect
    progress artifact (stages done of all, records read) that the run's page shows as it goes."""

    def __init__(self, *, key: str, stages: int) -> None:
        self.stages, self.done, self.records = stages, 0, 0
        self._artifact: Any = None
        if _plain.get() is None:
            self._artifact = create_progress_artifact(progress=0.0, key=key, description=self._description())

    def _description(self) -> str:
        return f"{self.done} of {self.stages} stages done; {self.records:,} records read"

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
        if self._artifact is not None:
            update_progress_artifact(self._artifact, 100.0 * self.done / self.stages, description=self._description())
