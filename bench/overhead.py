"""Prefect's overhead as a share of a `curate` run's wall time, for the demo and the x30 sample.

What is compared, in one process:

- Prefect run: `curate_flow(...)` on the embedded (ephemeral) Prefect server that a user's
  `chatsift curate` starts, under the same settings (flows.cli.local `local_prefect()`: heartbeat
  off, analytics off), with `run.cache=False` so every part is computed, and `run.max_workers=1` so
  tasks run one at a time, like the baseline. The default thread runner (`max_workers=None`: all of
  a stage's tasks at once) is timed too, for information; it is not the like-for-like comparison.
- Baseline: the very same flow functions with no Prefect at all, on flows/execution.py's plain
  runner: inside `plain_execution()`, `curate_flow.fn(...)` runs curate's body with its stages
  (plain functions in both variants) and each task's undecorated function (`run_parts` and
  `run_step` call `task.fn`, one at a time, in the order the flow submits them). `run_logger()` is
  a plain `logging` logger ("chatsift") and the `publish_*` calls publish nothing. No second copy of
  the pipeline: both variants run the same code, so the baseline writes everything the Prefect run
  writes (report.json, report.md, lineage.json, the contamination report), bar the artifacts. The
  runner's `PlainCalls` counts the task functions called (per task name, with the wall seconds
  inside them).

Overhead share = (Prefect wall - baseline wall) / Prefect wall. It contains everything Prefect
adds to a run: flow- and task-run creation and state changes on the API, parameter validation and
hashing (default cache policy), the run logger's API and console handlers, futures and the
task-runner thread, the artifacts, and the server's own CPU use on this 2-core machine while the
run goes on. Outside the share, reported on their own lines because a process pays them once:
`import prefect` and the embedded server's start (a fresh PREFECT_HOME: its database is created and
migrated), and the first run in the process (loading the tokenizer and, for the demo, the
embedding model: both variants run once as a warm-up before anything is timed). After each
Prefect run the bench waits for the server to finish recording task runs (it records them
asynchronously) and reports that wait ("settle") separately; it counts the task runs and any
subflow runs from the API and checks them (in all and per task name) against the plain runner's
count of task functions called, and that no stage ran as a subflow.

Where the overhead goes: the server's record of each task run's duration (Running → Completed)
is set against the baseline's time in the same task function. "In task runs" is their
difference; "between tasks" is the rest ((Prefect wall - time in task runs) - (baseline wall -
time in task functions)): the flow run, creating task runs, hashing their inputs,
submission and futures. On a shared 2-core machine the difference of two runs' wall times carries
the machine's noise (other processes; seen: one task 55% slower in one repeat and not the next),
which grows with the run's length; the between-tasks part is measured inside each run and is the
steadier figure. The per-repeat lines print the time in each task as prefect/baseline, so a noisy
repeat shows itself. CPU seconds are printed too: this process in each variant, and the server
process during the Prefect run.

Both variants must write the same bytes: conversations/, ledger/ and shard files are compared,
manifest.json without its run_id and created_at, lineage.json without its run_id and the
manifest's digest, and the reports' stage counts and totals. The demo runs 3 times and the scaled
sample 3 times (medians reported; the variant that goes first alternates between repeats;
--scaled-repeats 1 for one x30 repeat of ~7 minutes here). The stage cache is off; the embedding
cache (~/.cache/chatsift, outside the run) is on for both and warm after the warm-up.

The x30 sample is bench.curate's: the 3003 real ShareGPT conversations written 30 times with
new ids (`write_scaled_dump`), one 635 MB JSON dump. Exact dedupe drops the 29 copies, so ingest,
clean and the exact-dedupe keys handle 90,090 conversations and the later stages ~2,800 (in the
same 19 parts, so the same number of task runs): 90,090 distinct conversations would give those
task runs ~30x more work and Prefect a smaller share.

What the baseline cannot include: the artifacts (run report, stage table, links) are published
only on Prefect (the plain runner's `publish_*` do nothing), so their cost counts as overhead; the
baseline runs the tasks one after another, as the 1-worker Prefect run does, so the default
runner's concurrency gain (or loss) is not part of the share; and a user's first run also pays
`import prefect` and the server start, reported apart.

Usage: python -m bench.overhead [--scale 30] [--demo-repeats 3] [--scaled-repeats 3] [--skip-demo]
       [--skip-scaled] [--no-default-runner] [--shared ../shared] [--work-dir DIR] [--prefect-home DIR]
A smaller sample while developing: --scale 3.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Prefect is imported only after PREFECT_HOME is set (in main)
    from flows.execution import PlainCalls
    from schemas import RunReport

from tests.helpers.runs import manifest_without_run, output_files

REPO = Path(__file__).resolve().parents[1]


def _say(line: str) -> None:
    print(line, flush=True)


# ---------------------------------------------------------------------------------------------
# The baseline: the same flow functions on the plain runner, without Prefect.


def baseline_curate(inputs: list[Path], out_dir: Path, config: Any, run_id: str) -> tuple[RunReport, PlainCalls]:
    """curate_flow's body and its stages in order, each task's `.fn` called one at a time."""
    from flows.curate import curate_flow
    from flows.execution import plain_execution

    with plain_execution() as calls:
        report = curate_flow.fn(inputs=inputs, out_dir=out_dir, config=config, run_id=run_id)
    return report, calls


# ---------------------------------------------------------------------------------------------
# The Prefect run, and what the server recorded of it.


def prefect_curate(inputs: list[Path], out_dir: Path, config: Any, run_id: str) -> tuple[Any, Any]:
    """curate_flow as `chatsift curate` calls it; returns (report, flow run id)."""
    from flows.curate import curate_flow

    state = curate_flow(inputs=inputs, out_dir=out_dir, config=config, run_id=run_id, return_state=True)
    return state.result(), state.state_details.flow_run_id


@dataclass
class Recorded:
    task_runs: int
    subflow_runs: int
    settle_s: float
    not_completed: int
    # The task runs' own durations (Running → Completed), as Prefect recorded them.
    task_seconds: float
    seconds_by_name: dict[str, float]
    # Task runs per task name, to set against the plain runner's calls per name.
    runs_by_name: dict[str, int]


def recorded_runs(flow_run_id: Any, *, timeout: float = 180.0) -> Recorded:
    """Count the run's subflow runs and task runs on the server, waiting until it has recorded them all.

    Task runs reach the server as events and are written asynchronously: poll until every
    recorded run is in a final state and the counts stop changing for 1.5 s.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

    started = time.perf_counter()
    last: tuple[int, int] | None = None
    stable_since = started
    with get_client(sync_client=True) as client:
        while True:
            subflows = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])),
                limit=200,
            )
            ids = [flow_run_id, *(f.id for f in subflows)]
            task_runs: list[Any] = []
            while True:
                page = client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)), limit=200, offset=len(task_runs)
                )
                task_runs += page
                if len(page) < 200:
                    break
            # A subflow run has a placeholder task run in its parent: not a task of ours.
            placeholders = {f.parent_task_run_id for f in subflows}
            tasks = [t for t in task_runs if t.id not in placeholders]
            final = all(t.state is not None and t.state.is_final() for t in tasks)
            counts = (len(subflows), len(tasks))
            now = time.perf_counter()
            if counts != last:
                last, stable_since = counts, now
            if final and now - stable_since >= 1.5:
                break
            if now - started > timeout:
                _say(f"  (server still recording after {timeout:.0f} s: counts {counts} may be short)")
                break
            time.sleep(0.25)
    not_completed = sum(1 for t in tasks if t.state is None or not t.state.is_completed())
    by_name: dict[str, float] = {}
    runs_by_name: dict[str, int] = {}
    for t in tasks:
        name = t.name.rsplit("-", 1)[0]  # "clean-part-67d": the task's name and a short suffix
        runs_by_name[name] = runs_by_name.get(name, 0) + 1
        if t.start_time and t.end_time:
            by_name[name] = by_name.get(name, 0.0) + (t.end_time - t.start_time).total_seconds()
    # The 1.5 s stability window is the bench's own wait, not the server's.
    settle = max(0.0, stable_since - started)
    return Recorded(len(tasks), len(subflows), settle, not_completed, sum(by_name.values()), by_name, runs_by_name)


# ---------------------------------------------------------------------------------------------
# Output comparison (the files a trainer or reviewer reads, as the tests compare them).


def _lineage_without_run(run: Path) -> dict | None:
    """lineage.json less its run id and the digest of shards/manifest.json (which holds created_at)."""
    path = run / "lineage.json"
    if not path.is_file():
        return None
    lineage = json.loads(path.read_text())
    lineage.pop("run_id", None)
    for output in lineage.get("outputs", []):
        if output.get("path") == "shards/manifest.json":
            output.pop("blake2b", None)
    return lineage


def _counts(report: Any) -> list[tuple]:
    return [(s.stage, s.inputs, s.kept, s.dropped, s.rows_out, s.dropped_by_reason, s.changed) for s in report.stages]


def outputs_differ(a: Path, b: Path, report_a: Any, report_b: Any) -> list[str]:
    """What differs between two runs' outputs (file bytes, manifest, report counts); empty when they match."""
    files_a, files_b = output_files(a), output_files(b)
    problems = [f"only in one run: {name}" for name in sorted(set(files_a) ^ set(files_b))]
    problems += [
        f"bytes differ: {name}" for name in sorted(set(files_a) & set(files_b)) if files_a[name] != files_b[name]
    ]
    if manifest_without_run(a) != manifest_without_run(b):
        problems.append("manifest.json differs (beyond run_id and created_at)")
    lineage_a, lineage_b = _lineage_without_run(a), _lineage_without_run(b)
    if lineage_a is None or lineage_b is None:
        problems.append("lineage.json missing from a run")
    elif lineage_a != lineage_b:
        # code_version and code_fingerprint differ too when the checkout's sources change between the runs.
        keys = sorted(k for k in set(lineage_a) | set(lineage_b) if lineage_a.get(k) != lineage_b.get(k))
        problems.append(f"lineage.json differs (beyond run_id and the manifest's digest) in: {', '.join(keys)}")
    if _counts(report_a) != _counts(report_b):
        problems.append("the reports' stage counts differ")
    if (report_a.records_read, report_a.kept, report_a.dropped, report_a.rows) != (
        report_b.records_read,
        report_b.kept,
        report_b.dropped,
        report_b.rows,
    ):
        problems.append("the reports' totals differ")
    if not files_a:
        problems.append("no output files")
    return problems


# ---------------------------------------------------------------------------------------------
# Measurement.


def _with_run(config: Any, **run: object) -> Any:
    from schemas.config import CurationConfig

    data = config.model_dump(mode="json")
    data["run"] |= run
    return CurationConfig.model_validate(data)


@dataclass
class Result:
    label: str
    conversations: int
    parts: int
    prefect_s: list[float] = field(default_factory=list)
    baseline_s: list[float] = field(default_factory=list)
    default_s: list[float] = field(default_factory=list)
    settle_s: list[float] = field(default_factory=list)
    task_runs: int = 0
    subflow_runs: int = 0
    baseline_tasks: int = 0
    # Per task name: (task runs recorded, the plain runner's calls), where they differ in a repeat.
    count_mismatches: list[str] = field(default_factory=list)
    not_completed: int = 0
    match: list[bool] = field(default_factory=list)
    default_match: list[bool] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    # CPU seconds: this process during the Prefect run and the baseline, the server during the Prefect run.
    prefect_cpu: list[float] = field(default_factory=list)
    baseline_cpu: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)
    # Wall seconds inside task runs (Prefect's record) and inside the task functions (baseline).
    prefect_task_s: list[float] = field(default_factory=list)
    baseline_task_s: list[float] = field(default_factory=list)

    @property
    def prefect(self) -> float:
        return statistics.median(self.prefect_s)

    @property
    def baseline(self) -> float:
        return statistics.median(self.baseline_s)

    @property
    def overhead(self) -> float:
        return self.prefect - self.baseline

    @property
    def share(self) -> float:
        return self.overhead / self.prefect

    @property
    def between(self) -> float:
        """Median over repeats of the overhead outside task runs: (Prefect wall - time in task runs) minus
        (baseline wall - time in task functions)."""
        return statistics.median(
            (p - pt) - (b - bt)
            for p, pt, b, bt in zip(
                self.prefect_s, self.prefect_task_s, self.baseline_s, self.baseline_task_s, strict=True
            )
        )


def _server_cpu() -> float:
    """CPU seconds used so far by the embedded server's process (Linux /proc); NaN where unknown."""
    from prefect.server.api.server import SubprocessASGIServer

    process = SubprocessASGIServer().server_process
    try:
        fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()  # type: ignore[union-attr]
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (AttributeError, OSError, ValueError, IndexError):
        return float("nan")


@dataclass
class Timing:
    wall: float
    cpu: float  # this process, all threads
    server_cpu: float


def _timed(fn: Any, *args: Any) -> tuple[Any, Timing]:
    gc.collect()
    cpu, server, started = time.process_time(), _server_cpu(), time.perf_counter()
    out = fn(*args)
    wall = time.perf_counter() - started
    return out, Timing(wall, time.process_time() - cpu, _server_cpu() - server)


def measure(label: str, inputs: list[Path], config: Any, work: Path, repeats: int, default_runner: bool) -> Result:
    serial = _with_run(config, cache=False, max_workers=1)
    default = _with_run(config, cache=False, max_workers=None)
    runs = work / "runs" / label
    result: Result | None = None
    for i in range(1, repeats + 1):
        # Alternate which variant goes first, so a drift of the machine over the repeats falls on both.
        if i % 2:
            (p_report, flow_run_id), p = _timed(prefect_curate, inputs, runs / "prefect", serial, f"r{i}")
            recorded = recorded_runs(flow_run_id)
            (b_report, calls), b = _timed(baseline_curate, inputs, runs / "baseline", serial, f"r{i}")
        else:
            (b_report, calls), b = _timed(baseline_curate, inputs, runs / "baseline", serial, f"r{i}")
            (p_report, flow_run_id), p = _timed(prefect_curate, inputs, runs / "prefect", serial, f"r{i}")
            recorded = recorded_runs(flow_run_id)
        p_s, b_s = p.wall, b.wall
        if result is None:
            result = Result(label, p_report.records_read, int(p_report.outputs["parts"]))
        result.prefect_s.append(p_s)
        result.baseline_s.append(b_s)
        result.settle_s.append(recorded.settle_s)
        result.prefect_cpu.append(p.cpu)
        result.baseline_cpu.append(b.cpu)
        result.server_cpu.append(p.server_cpu)
        result.prefect_task_s.append(recorded.task_seconds)
        result.baseline_task_s.append(calls.seconds)
        result.task_runs, result.subflow_runs = recorded.task_runs, recorded.subflow_runs
        result.baseline_tasks, result.not_completed = calls.tasks, recorded.not_completed
        result.count_mismatches += [
            f"{name}: {recorded.runs_by_name.get(name, 0)} task runs recorded, {calls.by_name.get(name, 0)} calls"
            for name in sorted(set(recorded.runs_by_name) | set(calls.by_name))
            if recorded.runs_by_name.get(name, 0) != calls.by_name.get(name, 0)
        ]
        differences = outputs_differ(runs / "prefect" / f"r{i}", runs / "baseline" / f"r{i}", p_report, b_report)
        result.match.append(not differences)
        result.differences += differences
        line = (
            f"  {label} #{i}: prefect (1 worker) {p_s:.2f} s, baseline {b_s:.2f} s, "
            f"share {(p_s - b_s) / p_s:.1%}; {recorded.task_runs} task runs + {recorded.subflow_runs} subflow runs "
            f"recorded (baseline called {calls.tasks} task functions: {calls.by_name}), "
            f"server settled {recorded.settle_s:.1f} s after return; outputs match: {not differences}"
        )
        if default_runner:
            (d_report, d_id), d_timing = _timed(prefect_curate, inputs, runs / "default", default, f"r{i}")
            d_s = d_timing.wall
            recorded_runs(d_id)
            d_diff = outputs_differ(runs / "default" / f"r{i}", runs / "baseline" / f"r{i}", d_report, b_report)
            result.default_s.append(d_s)
            result.default_match.append(not d_diff)
            result.differences += [f"default runner: {problem}" for problem in d_diff]
            line += f"; default thread runner {d_s:.2f} s (outputs match: {not d_diff})"
        _say(line)
        times = ", ".join(
            f"{name} {recorded.seconds_by_name.get(name, float('nan')):.2f}/{seconds:.2f}"
            for name, seconds in calls.seconds_by_name.items()
        )
        _say(f"    time in task runs, prefect/baseline s: {times}")
        shutil.rmtree(runs, ignore_errors=True)
    assert result is not None
    return result


def warm_up(inputs: list[Path], config: Any, work: Path) -> tuple[float, float]:
    """One run of each variant, untimed in the results: loads the tokenizer, the embedder, Prefect's flows."""
    serial = _with_run(config, cache=False, max_workers=1)
    _, b = _timed(baseline_curate, inputs, work / "warm-up" / "baseline", serial, "w")
    (_, flow_run_id), p = _timed(prefect_curate, inputs, work / "warm-up" / "prefect", serial, "w")
    recorded_runs(flow_run_id)
    shutil.rmtree(work / "warm-up", ignore_errors=True)
    return b.wall, p.wall


# ---------------------------------------------------------------------------------------------


def _table(results: list[Result]) -> str:
    head = (
        f"{'input':<24}{'conv.':>8}{'parts':>6}{'task':>6}{'flow':>6}{'prefect s':>11}{'baseline s':>12}"
        f"{'overhead s':>12}{'share':>8}{'ms/task':>9}{'settle s':>10}{'default s':>11}{'match':>7}"
    )
    rows = [head, "-" * len(head)]
    for r in results:
        per_task = 1000 * r.overhead / r.task_runs if r.task_runs else float("nan")
        default = f"{statistics.median(r.default_s):.2f}" if r.default_s else "-"
        match = "yes" if all(r.match) and all(r.default_match) else "NO"
        rows.append(
            f"{r.label:<24}{r.conversations:>8,}{r.parts:>6}{r.task_runs:>6}{r.subflow_runs + 1:>6}"
            f"{r.prefect:>11.2f}{r.baseline:>12.2f}{r.overhead:>12.2f}{r.share:>8.1%}{per_task:>9.0f}"
            f"{statistics.median(r.settle_s):>10.1f}{default:>11}{match:>7}"
        )
    return "\n".join(rows)


def _where_table(results: list[Result]) -> str:
    """Where the wall-time overhead goes, and what it costs in CPU (medians)."""
    head = (
        f"{'input':<24}{'in task runs s':>16}{'between tasks s':>17}{'of prefect s':>14}{'ms/run':>8}"
        f"{'CPU prefect s':>15}{'CPU baseline s':>16}{'CPU server s':>14}"
    )
    rows = [head, "-" * len(head)]
    med = statistics.median
    for r in results:
        inside = med([p - b for p, b in zip(r.prefect_task_s, r.baseline_task_s, strict=True)])
        between = r.between
        runs = r.task_runs + r.subflow_runs + 1
        rows.append(
            f"{r.label:<24}{inside:>16.2f}{between:>17.2f}{between / r.prefect:>14.1%}"
            f"{1000 * r.overhead / runs:>8.0f}"
            f"{med(r.prefect_cpu):>15.2f}{med(r.baseline_cpu):>16.2f}{med(r.server_cpu):>14.2f}"
        )
    return "\n".join(rows)


def _per_run_fit(results: list[Result]) -> tuple[float, float] | None:
    """(seconds per flow run, seconds per task run) fitted to the first two inputs' between-tasks overhead."""
    if len(results) < 2:
        return None
    (a1, b1, y1), (a2, b2, y2) = [(r.subflow_runs + 1, r.task_runs, r.between) for r in results[:2]]
    det = a1 * b2 - a2 * b1
    if det == 0:
        return None
    return (y1 * b2 - y2 * b1) / det, (a1 * y2 - a2 * y1) / det


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=int, default=30, help="copies of the 3003-conversation sample (default 30)")
    ap.add_argument("--demo-repeats", type=int, default=3)
    ap.add_argument("--scaled-repeats", type=int, default=3)
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--skip-scaled", action="store_true")
    ap.add_argument("--no-default-runner", action="store_true", help="do not time the default thread runner")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--work-dir", type=Path, help="inputs and runs go here (default: a temporary folder)")
    ap.add_argument("--prefect-home", type=Path, help="PREFECT_HOME to use (default: a fresh one in the work dir)")
    args = ap.parse_args()

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="chatsift-overhead-"))
    work.mkdir(parents=True, exist_ok=True)
    # Before Prefect is imported: its settings are read at import.
    os.environ["PREFECT_HOME"] = str(args.prefect_home or work / "prefect-home")
    load_before = os.getloadavg()
    started = time.perf_counter()
    import prefect

    import_s = time.perf_counter() - started
    from bench.curate import write_scaled_dump
    from demo.inputs import DEMO_CONFIG, write_demo_inputs
    from flows.cli.local import local_prefect
    from schemas.config import CurationConfig

    _say(
        f"prefect {prefect.__version__}, {os.cpu_count()} cores, load average {load_before[0]:.2f}; "
        f"work dir {work}; PREFECT_HOME {os.environ['PREFECT_HOME']}"
    )
    results: list[Result] = []
    try:
        with local_prefect():
            from prefect import get_client

            started = time.perf_counter()
            with get_client(sync_client=True) as client:  # starts the embedded server
                client.hello()
            server_s = time.perf_counter() - started
            _say(f"one-off: import prefect {import_s:.2f} s, embedded server start {server_s:.1f} s")

            demo_inputs = write_demo_inputs(work / "demo-input")
            warm_b, warm_p = warm_up(demo_inputs, DEMO_CONFIG, work)
            _say(
                f"one-off: warm-up on the demo (first runs in the process): baseline {warm_b:.2f} s, "
                f"prefect {warm_p:.2f} s"
            )
            if not args.skip_demo:
                _say(f"demo (DEMO_CONFIG, contamination on), {args.demo_repeats} repeat(s):")
                results.append(
                    measure("demo", demo_inputs, DEMO_CONFIG, work, args.demo_repeats, not args.no_default_runner)
                )
            if not args.skip_scaled:
                src = args.shared / "data/sharegpt/sharegpt_v3_unfiltered_cleaned_split.first3003.json.gz"
                with gzip.open(src, "rt", encoding="utf-8") as f:
                    sample = json.load(f)
                dump = work / f"sharegpt-x{args.scale}" / "dump.json"
                dump.parent.mkdir(parents=True, exist_ok=True)
                size = write_scaled_dump(sample, args.scale, False, dump)
                conversations = len(sample) * args.scale
                del sample
                _say(
                    f"x{args.scale} sample ({conversations:,} conversations, {size / 1e6:.0f} MB JSON, default "
                    f"CurationConfig, batch_size {CurationConfig().run.batch_size}), {args.scaled_repeats} repeat(s):"
                )
                label = f"x{args.scale} sample"
                results.append(
                    measure(label, [dump], CurationConfig(), work, args.scaled_repeats, not args.no_default_runner)
                )
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)

    load_after = os.getloadavg()
    _say("")
    _say(_table(results))
    _say("")
    _say(_where_table(results))
    _say(
        "task = task runs recorded by the server (placeholder task runs of subflows not counted); flow = flow runs "
        "(curate, and any subflow); prefect s / baseline s: median wall time with 1 worker / without Prefect; "
        "share = (prefect - baseline) / prefect; ms/task = overhead / task runs (all overhead, flow runs included); "
        "settle s: the server's recording lag after the flow returned (not in the wall time); default s: the "
        "default thread runner (information only). in task runs s: the task runs' durations as Prefect recorded "
        "them minus the baseline's time in the same task functions; between tasks s: the rest of the overhead "
        "(the flow run, creating task runs and hashing their inputs, submission, futures), measured "
        "within each run and so far less exposed to the machine's noise than the difference of two runs' wall "
        "times; of prefect s: that part as a share of the Prefect run (both medians over repeats); ms/run = "
        "overhead / (task runs + flow runs); CPU prefect / baseline: this process's CPU seconds (all threads); "
        "CPU server: the embedded server process's CPU seconds during the Prefect run. "
        f"Load average {load_before[0]:.2f} before, {load_after[0]:.2f} after."
    )
    _say(
        f"one-off per process (not in the share): import prefect {import_s:.2f} s, "
        f"embedded server start {server_s:.1f} s"
    )
    for r in results:
        if r.task_runs != r.baseline_tasks:
            _say(
                f"WARNING {r.label}: the server recorded {r.task_runs} task runs, the baseline made {r.baseline_tasks}"
            )
        if r.subflow_runs:
            _say(f"WARNING {r.label}: the server recorded {r.subflow_runs} subflow runs; stages run in curate's run")
        for m in sorted(set(r.count_mismatches)):
            _say(f"WARNING {r.label}: {m}")
        if r.not_completed:
            _say(f"WARNING {r.label}: {r.not_completed} task runs not in a Completed state")
        for d in sorted(set(r.differences)):
            _say(f"MISMATCH {r.label}: {d}")
        counted = (r.task_runs, r.subflow_runs) == (r.baseline_tasks, 0) and not r.count_mismatches
        _say(
            f"{r.label}: task runs recorded equal the baseline's calls ({r.baseline_tasks} task functions), "
            f"no subflow runs: {counted}"
        )
        _say(
            f"{r.label}: outputs of prefect and baseline match in every repeat: {all(r.match) and all(r.default_match)}"
        )
    parts = []
    for r in results:
        if r.label == "demo":
            parts.append(f"{r.share:.0%} of the demo run ({r.task_runs} task runs, {r.prefect:.1f} s)")
        else:
            scale = r.label.split()[0]
            parts.append(
                f"{r.share:.1%} at {scale} ({r.conversations:,} conversations, {r.task_runs} task runs, "
                f"{r.prefect:.0f} s)"
            )
    if parts:
        _say(f"README: python -m bench.overhead: Prefect overhead {', '.join(parts)}")
        between = ", ".join(f"{r.between / r.prefect:.1%} ({r.label})" for r in results)
        _say(f"of which outside task runs (flow runs, task-run creation, submission): {between}")
    fit = _per_run_fit(results)
    if fit:
        _say(
            f"fit of the between-tasks overhead over the inputs: about {1000 * fit[0]:.0f} ms per flow run "
            f"(curate) + {1000 * fit[1]:.0f} ms per task run, with 1 worker"
        )


if __name__ == "__main__":
    main()
