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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prefect import Task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger
from prefect.task_runners import TaskRunner
from prefect.utilities.callables import get_call_parameters

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
# Set by flows.progress while a terminal shows the run: (task name, parts) -> called once per part done.
_parts_progress: Callable[[str, int], Callable[[], None]] | None = None


def set_parts_progress(hook: Callable[[str, int], Callable[[], None]] | None) -> None:
    global _parts_progress
    _parts_progress = hook


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
    if len(arguments) == 1:
        # A lone part (a one-file ingest) runs in this process: a worker could add only its round trip,
        # and, on a process pool's first stage, the wait for its start, while the workers start meanwhile.
        return run_in_turn(task, arguments)
    runner = _run_runner.get()
    if runner is None:
        futures = [task.submit(*args) for args in arguments]
    else:
        # TaskRunner.submit is what Task.submit calls with the flow's runner; the parts run on the run's.
        futures = [runner.submit(task, get_call_parameters(task.fn, args, {})) for args in arguments]
    one_done = _parts_progress(task.name, len(futures)) if _parts_progress is not None else None
    results = []
    for future in futures:
        results.append(future.result())
        if one_done is not None:
            one_done()
    return results


def run_in_turn(task: Task[..., R], arguments: Sequence[tuple[Any, ...]]) -> list[R]:
    """Run `task` once per argument tuple, one after another in this process (parts that share a loaded model),
    with the same progress as `run_parts`."""
    one_done = _parts_progress(task.name, len(arguments)) if _parts_progress is not None else None
    results = []
    for args in arguments:
        results.append(run_step(task, *args))
        if one_done is not None:
            one_done()
    return results


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


def publish_failure(flow: Any, flow_run: Any, state: Any) -> None:
    """Every flow's on_failure hook: the failure's message, which names the fix (chatsift's errors do), as a
    markdown artifact on the run, so that a scheduled run that failed overnight says why on its own page and in
    the artifacts list, not only deep in its logs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import ArtifactCreate

    message = str(state.message or "the run failed without a message: read its logs")
    markdown = (
        f"# {flow.name} failed\n\n{message}\n\n"
        "A bad option or a missing input fails a run before any work, with the fix in the message above; "
        "start the run again once it is fixed. Anything else: the run's logs hold the traceback."
    )
    with get_client(sync_client=True) as client:
        client.create_artifact(
            ArtifactCreate(
                key=f"{flow.name}-failure",
                type="markdown",
                data=markdown,
                description=f"why this {flow.name} run failed, and what to do",
                flow_run_id=flow_run.id,
            )
        )
