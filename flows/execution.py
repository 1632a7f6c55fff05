"""How the flows run their tasks and subflows: on Prefect (always, for users), or in a plain loop (benchmarks).

Every flow body submits its tasks through `run_parts`/`run_step` and its subflows through
`run_subflow`, logs through `run_logger()` and publishes artifacts through `publish_*`. Under
Prefect (the default) these are task submissions, subflow runs on the run's task runner, Prefect's
run logger and artifacts. Inside `plain_execution()` the very same flow functions run with every
task's and flow's undecorated function called in order, a plain logger and no artifacts: that is
the baseline bench/overhead.py sets against Prefect, with no second copy of the pipeline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prefect import Flow, Task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger

R = TypeVar("R")


@dataclass
class PlainCalls:
    """What a plain execution ran: the task runs and subflow runs Prefect would have made for the same work."""

    tasks: int = 0
    by_name: dict[str, int] = field(default_factory=dict)
    seconds_by_name: dict[str, float] = field(default_factory=dict)
    subflows: list[str] = field(default_factory=list)

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
# The current run's way to give a subflow its task runner (flows.runners.task_runners).
_subflow_runner: ContextVar[Callable[[Any], Any] | None] = ContextVar("chatsift_subflow_runner", default=None)
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
def subflows_on(give_runner: Callable[[Any], Any]) -> Iterator[None]:
    """Inside this block, `run_subflow` runs each subflow with `give_runner(subflow)` (its task runner)."""
    token = _subflow_runner.set(give_runner)
    try:
        yield
    finally:
        _subflow_runner.reset(token)


def run_parts(task: Task[..., R], arguments: Sequence[tuple[Any, ...]]) -> list[R]:
    """Run `task` once per argument tuple (concurrently on Prefect's runner) and return the results in order."""
    plain = _plain.get()
    if plain is not None:
        return [plain.call(task, *args) for args in arguments]
    return [future.result() for future in [task.submit(*args) for args in arguments]]


def run_step(task: Task[..., R], *args: Any) -> R:
    """Run one task (a global step) and return its result."""
    plain = _plain.get()
    return plain.call(task, *args) if plain is not None else task(*args)


def run_subflow(subflow: Flow[..., R], *args: Any) -> R:
    """Run a subflow of the current run, on the run's task runner."""
    plain = _plain.get()
    if plain is not None:
        plain.subflows.append(subflow.name)
        return subflow.fn(*args)
    give_runner = _subflow_runner.get()
    return (give_runner(subflow) if give_runner else subflow)(*args)


def run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """Prefect's logger of the current flow or task run; a plain `chatsift` logger outside Prefect."""
    if _plain.get() is not None:
        return _PLAIN_LOGGER
    try:
        return get_run_logger()
    except MissingContextError:
        return _PLAIN_LOGGER


def publish_markdown(*, key: str, markdown: str, description: str) -> None:
    if _plain.get() is None:
        create_markdown_artifact(markdown=markdown, key=key, description=description)


def publish_table(*, key: str, table: list[dict[str, Any]], description: str) -> None:
    if _plain.get() is None:
        create_table_artifact(table=table, key=key, description=description)


def publish_link(*, key: str, link: str, link_text: str, description: str) -> None:
    if _plain.get() is None:
        create_link_artifact(link=link, link_text=link_text, key=key, description=description)
