"""Benchmark ingest → clean on the real ShareGPT sample scaled up by re-identified copies.

Prints conversations/second per stage and the peak memory (RSS) of the measuring process, and
one line for the README. Usage: python -m bench.curate [--scale 30] [--html] [--huge-turns N] [--shared ../shared]

--huge-turns N adds N conversations whose answer is ~7 MB of ChatGPT HTML (under the 8 MiB record
limit), the four shapes in turn: 1.4M line breaks and 140K paragraphs (html_too_large drops),
a highlighted code block and one long line (converted). Their peak RSS is the figure to watch:
one such turn took a run to 3.1 GB before the element bound (docs/defaults.md#markdown).

--distinct makes every copy new text: about a third of its words are swapped for other words of the sample (by
a seeded draw per copy), so exact and near-duplicate removal keep the copies and the contamination check embeds
each one. The lengths, markup and vocabulary stay the sample's.

--contamination (with --distinct, at --scale 30 the 90K figure of issue 37) runs `chatsift curate` with defaults
and the contamination check against the nine benchmark presets from ../shared twice, into one output folder with
its stage cache and one fresh embedding cache: cold, then warm (the same input again). It prints each stage's
seconds and reused parts for both, their wall times and their peak RSS.

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
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from curation.clean.batch import clean_batch
from curation.ingest.groups import partition_records
from curation.ingest.read import read_conversations
from curation.runs.stage_reports import merge_stage_reports
from demo.chatgpt_html import as_captured
from schemas.config import LOCAL_BENCHMARK_PRESETS, CurationConfig

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


WORD = re.compile(r"[A-Za-z]{3,}")
SWAPPED_SHARE = 1 / 3  # of a distinct copy's words: most of its word 5-grams change, so MinHash keeps it


def distinct_copy(conv: dict, copy: int, vocabulary: list[str]) -> dict:
    """Copy `copy` of a raw ShareGPT record with about a third of its words swapped for words drawn from
    `vocabulary` (a seeded draw per copy and record), capitals kept."""
    rng = random.Random(f"{copy}/{conv['id']}")

    def swap(word: re.Match[str]) -> str:
        if rng.random() >= SWAPPED_SHARE:
            return word.group()
        new = vocabulary[rng.randrange(len(vocabulary))]
        return new.capitalize() if word.group()[0].isupper() else new

    turns = [{**t, "value": WORD.sub(swap, t["value"])} for t in conv["conversations"]]
    return {**conv, "id": f"{conv['id']}-x{copy}", "conversations": turns}


def scaled_copies(sample: list[dict], scale: int, html: bool, distinct: bool) -> Iterator[dict]:
    """`scale` re-identified copies of the sample (the same text, or distinct text from the second copy on), with
    the assistant turns rendered as ChatGPT HTML where `html`."""
    rendered = [{**c, "conversations": as_captured(c["conversations"])} for c in sample] if html else sample
    words = [w.lower() for c in sample[:500] for t in c["conversations"] for w in WORD.findall(t["value"])]
    for copy in range(scale):
        for c, shown in zip(sample, rendered, strict=True):
            if not (distinct and copy):
                yield {**shown, "id": f"{c['id']}-x{copy}"}
                continue
            record = distinct_copy(c, copy, words)
            yield {**record, "conversations": as_captured(record["conversations"])} if html else record


def write_scaled_dump(
    sample: list[dict], scale: int, html: bool, dest: Path, huge_turns: int = 0, distinct: bool = False
) -> int:
    """Write `scale` re-identified copies of the sample (distinct text with `distinct`), then `huge_turns`
    conversations with a huge answer each, as one JSON array; returns bytes written."""
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
    with open(dest, "w", encoding="utf-8") as f:
        f.write("[")
        first = True
        for record in itertools.chain(scaled_copies(sample, scale, html, distinct), huge):
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
    cmd = [sys.executable, "-m", "flows.cli", "curate", str(dump), "--out", str(out), "--run-id", run_id]
    wall, peak_kb = _timed_child([*cmd, "--config", str(config)])
    report = json.loads((out / run_id / "report.json").read_text())
    return wall, peak_kb, report["records_read"]


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


def contamination_runs(dump: Path, out: Path, shared: Path, label: str) -> None:
    """`chatsift curate` with defaults and the nine benchmark presets, cold then warm, into one output folder:
    each stage's seconds and reused parts, the wall times and peak RSS."""
    presets = out.parent / "presets"  # the nine files side by side, as presets_dir wants them
    presets.mkdir()
    benchmarks = shared / "data" / "benchmarks"
    for spec in LOCAL_BENCHMARK_PRESETS.values():
        source = benchmarks / spec.path if (benchmarks / spec.path).exists() else benchmarks / "raw" / spec.path
        (presets / spec.path).symlink_to(source)
    names = ", ".join(f'"{name}"' for name in LOCAL_BENCHMARK_PRESETS)
    config = out.parent / "contamination.toml"
    config.write_text(f'[contamination]\npresets = [{names}]\npresets_dir = "{presets}"\n', encoding="utf-8")
    env = {**os.environ, "CHATSIFT_CACHE_DIR": str(out.parent / "cache")}  # a cold embedding cache
    runs: dict[str, dict] = {}
    for name in ("cold", "warm"):
        run_id = f"bench-{name}-{time.time_ns()}"
        cmd = [sys.executable, "-m", "flows.cli", "curate", str(dump), "--out", str(out), "--run-id", run_id]
        log = out.parent / f"{name}.log"  # the run's Prefect log, read when it fails
        wall, peak_kb = _timed_child([*cmd, "--config", str(config)], env, log)
        runs[name] = {"wall": wall, "peak": peak_kb, "report": json.loads((out / run_id / "report.json").read_text())}
        print(f"{name}: {wall:.0f} s, peak RSS {peak_kb / 1024:,.0f} MB", flush=True)
    cold, warm = runs["cold"]["report"], runs["warm"]["report"]
    print(f"{'stage':<16}{'inputs':>9}{'cold s':>9}{'warm s':>9}{'reused':>9}")
    for a, b in zip(cold["stages"], warm["stages"], strict=True):
        reused = f"{b['parts_reused']}/{b['parts']}"
        print(f"{a['stage']:<16}{a['inputs']:>9,}{a['seconds']:>9.1f}{b['seconds']:>9.1f}{reused:>9}")
    slowest = max(cold["stages"], key=lambda s: s["seconds"])
    print(
        f"README: chatsift curate with contamination (nine presets) on {cold['records_read']:,} conversations "
        f"({label}): cold {runs['cold']['wall'] / 60:.1f} min (peak RSS {runs['cold']['peak'] / 1024:,.0f} MB; "
        f"{slowest['stage']} {slowest['seconds'] / 60:.1f} min), warm {runs['warm']['wall'] / 60:.1f} min "
        f"(peak RSS {runs['warm']['peak'] / 1024:,.0f} MB); kept {cold['kept']:,}, dropped {cold['dropped']:,}"
    )


def _timed_child(cmd: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> tuple[float, int]:
    """Run `cmd` from the repository, its stderr into `log` if given: (wall seconds, the peak RSS of its processes
    in kB, polled)."""
    started = time.perf_counter()
    with (
        open(log or os.devnull, "w", encoding="utf-8") as stderr,
        subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr if log else None, env=env) as child,
    ):
        peak_kb = 0
        while child.poll() is None:
            peak_kb = max([peak_kb, *map(_peak_rss_kb, _process_tree(child.pid))])
            time.sleep(0.05)
    if child.returncode:
        tail = log.read_text(encoding="utf-8")[-3000:] if log else ""
        raise SystemExit(f"{' '.join(cmd[:4])} exited {child.returncode}\n{tail}")
    return time.perf_counter() - started, peak_kb


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
    ap.add_argument("--distinct", action="store_true", help="every copy new text (a third of its words swapped)")
    ap.add_argument(
        "--contamination", action="store_true", help="chatsift curate with the nine presets, cold then warm"
    )
    ap.add_argument("--whole-run", action="store_true", help="run chatsift curate on the dump: time and peak RSS")
    ap.add_argument(
        "--task-runners", default="threads", help="with --whole-run: runners to compare, in turn (threads,processes)"
    )
    ap.add_argument("--repeats", type=int, default=1, help="with --whole-run: rounds over the runners")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # internal: the measuring child
    args = ap.parse_args()
    label = (
        ("HTML" if args.html else "markdown")
        + (", distinct copies" if args.distinct else "")
        + (f", plus {args.huge_turns} of ~{HUGE_TURN_CHARS / 1e6:.0f} MB" if args.huge_turns else "")
    )
    if args.measure:
        measure(args.measure, label)
        return
    src = args.shared / "data/sharegpt/sharegpt_v3_unfiltered_cleaned_split.first3003.json.gz"
    with gzip.open(src, "rt", encoding="utf-8") as f:
        sample = json.load(f)
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "dump.json"
        write_scaled_dump(sample, args.scale, args.html, dump, args.huge_turns, args.distinct)
        del sample
        if args.contamination:
            contamination_runs(dump, Path(tmp) / "out", args.shared, label)
            return
        if args.whole_run:
            whole_runs(dump, Path(tmp) / "out", label, args.task_runners.split(","), args.repeats)
            return
        # A fresh process, so its peak RSS is the pipeline's, not the dump writer's.
        cmd = [sys.executable, "-m", "bench.curate", "--measure", str(dump), "--huge-turns", str(args.huge_turns)]
        cmd += ["--html"] if args.html else []
        subprocess.run(cmd, check=True, cwd=REPO)


if __name__ == "__main__":
    main()
