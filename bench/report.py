"""The contamination report page at scale: its size and the time headless Chromium takes to open it.

    .venv/bin/python -m bench.report                  # 5,000 flagged pairs, 3 repeats
    .venv/bin/python -m bench.report --pairs 500

The pairs are made of real data: each real user turn of the ShareGPT sample in ../shared (with its whole
conversation, as the report shows it) beside a real benchmark question (benchmarks/benchmark_questions.jsonl),
cycling through both until --pairs. The page is written by curation.contamination.report_html; the time to
open is `chromium --headless --dump-dom` on it (the page's script has rendered its first page of pairs when
the DOM is dumped) minus the same on a blank page, medians of alternating runs. The last line is for the README.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.timing import alternating_medians, seconds
from curation.contamination.report_html import PAGE_SIZE, contamination_report_html
from schemas.contamination import ContaminationReport, ContextTurn, FlaggedPair

REPO = Path(__file__).resolve().parents[1]
SAMPLE = "data/sharegpt/sharegpt_v3_unfiltered_cleaned_split.first3003.json.gz"
QUESTIONS = "data/benchmarks/benchmark_questions.jsonl"
_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}


def real_report(shared: Path, pairs: int) -> ContaminationReport:
    """A report of `pairs` flagged pairs: real user turns and their conversations beside real questions."""
    with gzip.open(shared / SAMPLE, "rt", encoding="utf-8") as f:
        records = json.load(f)
    # split on newlines only: a question may hold U+2028, which str.splitlines() would split on
    lines = (shared / QUESTIONS).read_text("utf-8").split("\n")
    questions = [json.loads(line) for line in lines if line.strip()]
    flagged_turns = (
        (record, k, turn)
        for record in records
        for k, turn in enumerate(record["conversations"])
        if turn["from"] == "human"
        and turn["value"].strip()
        and all(t["from"] in _ROLES for t in record["conversations"])
    )
    made = []
    for n, ((record, k, turn), question) in enumerate(zip(itertools.cycle(flagged_turns), itertools.cycle(questions))):
        if n == pairs:
            break
        made.append(
            FlaggedPair(
                conversation_id=f"{record['id']}-{n}",
                source="sharegpt_v3.json",
                turn_index=k,
                role="user",
                turn_text=turn["value"],
                benchmark=question["benchmark"],
                item_id=question["id"],
                item_text=question["text"],
                score=0.8 + (n % 200) / 1000,
                ngram_coverage=0.0,
                category=("near_verbatim", "rephrased", "similar")[n % 3],
                action="removed",
                conversation=tuple(
                    ContextTurn(role=_ROLES[t["from"]], text=t["value"]) for t in record["conversations"]
                ),
            )
        )
    return ContaminationReport(
        run_id="bench", created_at="-", model="all-MiniLM-L6-v2", device="cpu", threshold=0.8,
        near_verbatim_score=0.95, rephrased_score=0.88, ngram_n=13, ngram_min_coverage=0.5,
        action="drop_conversation", remove_categories=("near_verbatim", "rephrased", "similar"),
        flagged_turns=len(made), pairs=made,
    )  # fmt: skip


def dump_dom(chromium: str, page: Path, profile: Path) -> str:
    command = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
        "--disable-background-networking", "--disable-component-update", f"--user-data-dir={profile}",
        "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=True).stdout


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = ap.parse_args(argv)
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    report = real_report(args.shared, args.pairs)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        page, blank = folder / "report.html", folder / "blank.html"
        page.write_text(contamination_report_html(report), encoding="utf-8")
        blank.write_text("<!DOCTYPE html><html><body></body></html>", encoding="utf-8")
        dom = dump_dom(chromium, page, folder / "profile")
        expected = f"Showing 1-{min(PAGE_SIZE, args.pairs)} of {args.pairs} pairs"
        if expected not in dom:
            raise SystemExit(f"the page did not render its first page of pairs ({expected!r} not found)")
        medians = alternating_medians(
            {
                "report": lambda: seconds(lambda: dump_dom(chromium, page, folder / "profile")),
                "blank": lambda: seconds(lambda: dump_dom(chromium, blank, folder / "profile")),
            },
            args.repeats,
        )
        size = page.stat().st_size
    opened = medians["report"] - medians["blank"]
    print(f"pairs {args.pairs}: page {size / 2**20:.1f} MiB; chromium opens it in {medians['report']:.2f} s, a blank "
          f"page in {medians['blank']:.2f} s")  # fmt: skip
    print(f"bench.report: {args.pairs} flagged pairs, {size / 2**20:.1f} MiB, opened and first {PAGE_SIZE} "
          f"rendered in {opened:.2f} s over a blank page (medians of {args.repeats})")  # fmt: skip


if __name__ == "__main__":
    main()
