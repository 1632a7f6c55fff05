"""Benchmark ingest → clean on the real ShareGPT sample scaled up by re-identified copies.

Prints conversations/second per stage and the peak memory (RSS) of the measuring process, and
one line for the README. Usage: python -m bench.curate [--scale 30] [--html] [--huge-turns N] [--shared ../shared]

--huge-turns N adds N conversations whose answer is ~7 MB of ChatGPT HTML (under the 8 MiB record
limit), the four shapes in turn: 1.4M line breaks and 140K paragraphs (html_too_large drops),
a highlighted code block and one long line (converted). Their peak RSS is the figure to watch:
one such turn took a run to 3.1 GB before the element bound (docs/defaults.md#markdown).

--whole-run runs `chatsift curate` with defaults (cache off) on the dump instead, every stage, and prints
its wall time and peak RSS (the highest VmHWM among its processes, polled): one 7 MB answer took a whole
run to 3.5 GB in MinHash and split, which ingest + clean alone do not show. With --task-runners
threads,processes --repeats N it alternates the runners and prints the medians and their ratio.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from curation.clean.batch import clean_batch
from curation.ingest.groups import partition_records
from curation.ingest.read import read_conversations
from curation.runs.stage_reports import merge_stage_reports
from demo.chatgpt_html import as_captured
from schemas.config import CurationConfig

REPO = Path(__file__).resolve().parents[1]


HUGE_TURN_CHARS = 7_000_000
_ANSWER = '<div class="markdown prose w-full break-words dark:prose-invert light">{}</div>'
_CODE_LINE = '<span class="hljs-keyword">def</span> <span class="hljs-title">f</span>(a_b): return a_b * 2\n'


def huge_answer(shape: int) -> str:
    """~HUGE_TURN_CHARS of ChatGPT answer HTML in one of four shapes (0-3)."""
    n = HUGE_TURN_CHARS
    return _ANSWER.format(
        (
            "<p>" + "a<br>" * (n // 5) + "</p>",
            "<p>A paragraph with <strong>bold</strong> text.</p>" * (n // 50),
            '<pre><code class="hljs language-python">' + _CODE_LINE * (n // len(_CODE_LINE)) + "</code></pre>",
            "<p>" + "word " * (n // 5) + "</p>",
        )[shape % 4]
    )


def write_scaled_dump(sample: list[dict], scale: int, html: bool, dest: Path, huge_turns: int = 0) -> int:
    """Write `scale` re-identified copies of the sample, then `huge_turns` conversations with a huge
    answer each, as one JSON array; returns bytes written."""
    if html:
        sample = [{**c, "conversations": as_captured(c["conversations"])} for c in sample]
    huge = (
        {
            "id": f"huge-{k}",
            "conversations": [
                {"from": "human", "value": "A long answer, please."},
                {"from": "gpt", "value": huge_answer(k)},
            ],
        }
        for k in range(huge_turns)
    )
    copies = ({**c, "id": f"{c['id']}-x{copy}"} for copy in range(scale) for c in sample)
    with open(dest, "w", encoding="utf-8") as f:
        f.write("[")
        first = True
        for record in itertools.chain(copies, huge):
            f.write(("" if first else ",\n") + json.dumps(record, ensure_ascii=False))
            first = False
        f.write("]")
    return dest.stat().st_size


def measure(dump: Path, label: str) -> None:
    """Read and clean `dump` in this process and print rates and this process's peak RSS."""
    config = CurationConfig()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reports = []
    read = 0
    ingest_seconds = 0.0
    t0 = t_ingest = time.perf_counter()
    batches = partition_records(
        read_conversations(dump, config=config.ingest),
        batch_size=config.run.batch_size,
        max_text_chars=int(config.run.part_max_mb * 1e6),
    )
    for convs, dropped in batches:
        ingest_seconds += time.perf_counter() - t_ingest
        read += len(convs) + len(dropped)
        reports.extend(clean_batch(convs, config=config)[2])
        t_ingest = time.perf_counter()
    total = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"input: {read:,} conversations, {dump.stat().st_size / 1e6:.0f} MB JSON ({label} assistant turns)")
    print(f"{'stage':<10}{'conv/s':>12}{'seconds':>10}")
    print(f"{'ingest':<10}{read / ingest_seconds:>12,.0f}{ingest_seconds:>10.1f}")
    for r in merge_stage_reports(reports):
        rate = f"{r.inputs / r.seconds:>12,.0f}" if r.seconds > 0.05 else f"{'(off)':>12}"
        print(f"{r.stage:<10}{rate}{r.seconds:>10.1f}")
    print(
        f"total: {read / total:,.0f} conv/s over {total:.1f} s on one core; "
        f"peak RSS {peak_mb:.0f} MB ({rss_before:.0f} MB after imports)"
    )
    print(
        f"README: ingest+clean of {read:,} real conversations ({label}) at {read / total:,.0f} conv/s "
        f"on one core, peak RSS {peak_mb:.0f} MB"
    )


def whole_run(dump: Path, out: Path, task_runner: str) -> tuple[float, int, int]:
    """Run `chatsift curate` on `dump` (cache off): (wall seconds, peak RSS of its processes in kB, records read)."""
    config = out.parent / f"{task_runner}.toml"
    config.write_text(f'[run]\ntask_runner = "{task_runner}"\ncache = false\n', encoding="utf-8")
    run_id = f"bench-{task_runner}-{time.time_ns()}"
    started = time.perf_counter()
    cmd = [sys.executable, "-m", "flows.cli", "curate", str(dump), "--out", str(out), "--run-id", run_id]
    cmd += ["--config", str(config)]
    with subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL) as child:
        peak_kb = 0
        while child.poll() is None:
            peak_kb = max([peak_kb, *map(_peak_rss_kb, _process_tree(child.pid))])
            time.sleep(0.05)
    if child.returncode:
        raise SystemExit(f"chatsift curate exited {child.returncode}")
    report = json.loads((out / run_id / "report.json").read_text())
    return time.perf_counter() - started, peak_kb, report["records_read"]


def whole_runs(dump: Path, out: Path, label: str, task_runners: list[str], repeats: int) -> None:
    """Whole runs on each task runner in turn, `repeats` rounds; the medians, and the first runner's
    time over each other's (above 1: the other is faster)."""
    seconds: dict[str, list[float]] = {name: [] for name in task_runners}
    peaks: dict[str, int] = dict.fromkeys(task_runners, 0)
    records = 0
    for _ in range(repeats):
        for name in task_runners:
            wall, peak_kb, records = whole_run(dump, out, name)
            seconds[name].append(wall)
            peaks[name] = max(peaks[name], peak_kb)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    figures = ", ".join(f"{name} {medians[name]:.0f} s (peak RSS {peaks[name] / 1024:.0f} MB)" for name in task_runners)
    first = task_runners[0]
    ratios = "".join(f"; {first} / {name}: {medians[first] / medians[name]:.2f}x" for name in task_runners[1:])
    print(f"README: whole run (chatsift curate) of {records:,} conversations ({label}), {repeats} round(s): ", end="")
    print(f"{figures}{ratios}")


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants alive now (Linux /proc)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [p for child in task.read_text().split() for p in _process_tree(int(child))]
        except OSError:
            continue  # the task ended while we looked
    return found


def _peak_rss_kb(pid: int) -> int:
    """VmHWM of `pid`: its own peak, unlike ru_maxrss, which carries a forking parent's across exec."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((line for line in status.splitlines() if line.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(line.split()[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=30)
    ap.add_argument("--html", action="store_true", help="render assistant turns as ChatGPT HTML first")
    ap.add_argument("--huge-turns", type=int, default=0, help="add N conversations with a ~7 MB answer")
    ap.add_argument("--whole-run", action="store_true", help="run chatsift curate on the dump: time and peak RSS")
    ap.add_argument(
        "--task-runners", default="threads", help="with --whole-run: runners to compare, in turn (threads,processes)"
    )
    ap.add_argument("--repeats", type=int, default=1, help="with --whole-run: rounds over the runners")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # internal: the measuring child
    args = ap.parse_args()
    label = ("HTML" if args.html else "markdown") + (
        f", plus {args.huge_turns} of ~{HUGE_TURN_CHARS / 1e6:.0f} MB" if args.huge_turns else ""
    )
    if args.measure:
        measure(args.measure, label)
        return
    src = args.shared / "data/sharegpt/sharegpt_v3_unfiltered_cleaned_split.first3003.json.gz"
    with gzip.open(src, "rt", encoding="utf-8") as f:
        sample = json.load(f)
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "dump.json"
        write_scaled_dump(sample, args.scale, args.html, dump, args.huge_turns)
        del sample
        if args.whole_run:
            whole_runs(dump, Path(tmp) / "out", label, args.task_runners.split(","), args.repeats)
            return
        # A fresh process, so its peak RSS is the pipeline's, not the dump writer's.
        cmd = [sys.executable, "-m", "bench.curate", "--measure", str(dump), "--huge-turns", str(args.huge_turns)]
        cmd += ["--html"] if args.html else []
        subprocess.run(cmd, check=True, cwd=REPO)


if __name__ == "__main__":
    main()
