"""Benchmark chatsift against FastChat's ShareGPT scripts on the same dump: the clean step, and the whole pipeline.

    .venv/bin/pip install -e ".[bench]"        # fschat and transformers, the peer
    .venv/bin/python -m bench.pipeline         # the 3003 real conversations, 3 rounds
    .venv/bin/python -m bench.pipeline --conversations 500 --repeats 1   # quicker

The input: the real ShareGPT sample with its assistant turns rendered in ChatGPT's markup by the
project's own renderer (demo.chatgpt_html), written once as one JSON file that both read.

- The clean step, both on --processes processes: FastChat's `clean_html_all` (fastchat.data.
  clean_sharegpt, a ProcessPoolExecutor over the samples) against chatsift's ingest of the file,
  cut into that many parts, and `clean_batch` on each part in a pool of that size (what a curate
  run's ingest and clean stages call). Each side's time includes reading the file.
- The whole pipeline: FastChat's `clean_html_all` then `split_all` (fastchat.data.
  split_long_conversation, the Mistral tokenizer as transformers wraps it, max length 2048)
  against `chatsift curate FILE` with its defaults (cache off, so every stage runs): the flow's
  own wall time from its report (started_at to finished_at), so the Prefect server's start is
  left out. chatsift also dedupes, checks contamination, redacts, tokenizes and packs.

The two run in turn, --repeats rounds; each line gives the medians and the ratio FastChat /
chatsift (above 1: chatsift is faster). The last line is the README's.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.curate import write_scaled_dump
from bench.timing import alternating_medians, seconds
from curation.clean.batch import clean_batch
from curation.ingest.read import read_conversations
from curation.shards.tokenizer_load import load_tokenizer
from schemas import Conversation
from schemas.config import CurationConfig

REPO = Path(__file__).resolve().parents[1]
SAMPLE = "data/sharegpt/sharegpt_v3_unfiltered_cleaned_split.first3003.json.gz"
MAX_LENGTH = 2048


def fastchat_clean(dump: Path, processes: int) -> list[dict[str, Any]]:
    """FastChat's clean step on `dump`, in a pool of `processes` (its ProcessPoolExecutor takes the cores)."""
    from fastchat.data.clean_sharegpt import clean_html_all

    with open(dump, encoding="utf-8") as f:
        content = json.load(f)
    with _cores(processes), _quiet():
        cleaned: list[dict[str, Any]] = clean_html_all(content, 0, None)
    return cleaned


def fastchat_clean_and_split(dump: Path, processes: int, tokenizer: Any) -> list[dict[str, Any]]:
    from fastchat.data.split_long_conversation import split_all

    cleaned = fastchat_clean(dump, processes)
    with _cores(processes), _quiet():
        pieces: list[dict[str, Any]] = split_all(cleaned, 0, None, tokenizer, MAX_LENGTH)
    return pieces


@contextlib.contextmanager
def _quiet() -> Any:
    """FastChat prints a line per skipped sample and tqdm bars, and bs4 warns (in its forked workers too)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


@contextlib.contextmanager
def _cores(processes: int) -> Any:
    """FastChat's pools take os.cpu_count() workers: make that `processes` while they are built."""
    real = os.cpu_count
    os.cpu_count = lambda: processes
    try:
        yield
    finally:
        os.cpu_count = real


def _clean_part(convs: list[Any]) -> int:
    config = CurationConfig()
    return len(clean_batch(convs, config=config)[0])


def chatsift_clean(dump: Path, processes: int) -> int:
    """chatsift's ingest of `dump` cut into `processes` parts by record ranges, then clean_batch on each
    part in a pool of that size; the conversations kept."""
    config = CurationConfig()
    convs = [r for r in read_conversations(dump, config=config.ingest) if isinstance(r, Conversation)]
    size = math.ceil(len(convs) / processes)
    parts = [convs[k : k + size] for k in range(0, len(convs), size)]
    with ProcessPoolExecutor(processes) as pool:
        return sum(pool.map(_clean_part, parts))


def chatsift_curate(dump: Path, out: Path) -> float:
    """`chatsift curate dump` with defaults and the cache off: the flow's wall seconds from its report."""
    config = out / "bench.toml"
    config.write_text("[run]\ncache = false\n", encoding="utf-8")
    run_id = f"bench-{time.time_ns()}"
    cmd = [sys.executable, "-m", "flows.cli", "curate", str(dump), "--out", str(out), "--run-id", run_id]
    done = subprocess.run(
        [*cmd, "--config", str(config), "--progress", "off"], cwd=REPO, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"chatsift curate exited {done.returncode}:\n{done.stderr[-4000:]}")
    report = json.loads((out / run_id / "report.json").read_text(encoding="utf-8"))
    started, finished = (datetime.fromisoformat(report[key]) for key in ("started_at", "finished_at"))
    return (finished - started).total_seconds()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--conversations", type=int, default=0, help="first N real conversations (default 0: all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 1, help="for both clean steps (default: cores)")
    args = ap.parse_args()
    try:
        import fastchat.data.clean_sharegpt  # noqa: F401
        from transformers import PreTrainedTokenizerFast
    except ImportError as err:
        raise SystemExit(f"the peer is missing ({err}): pip install -e '.[bench]'") from err
    with gzip.open(args.shared / SAMPLE, "rt", encoding="utf-8") as f:
        sample = json.load(f)[: args.conversations or None]
    with tempfile.TemporaryDirectory() as cache:
        mistral = load_tokenizer(CurationConfig().tokenizer.spec, cache_dir=Path(cache))
    peer_tokenizer = PreTrainedTokenizerFast(tokenizer_object=mistral)
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "sharegpt_html.json"
        size_mb = write_scaled_dump(sample, 1, True, dump) / 1e6
        print(f"{len(sample):,} real conversations in ChatGPT markup, {size_mb:.1f} MB; {args.processes} processes")
        medians = alternating_medians(
            {
                "clean chatsift": lambda: seconds(lambda: chatsift_clean(dump, args.processes)),
                "clean fastchat": lambda: seconds(lambda: fastchat_clean(dump, args.processes)),
                "whole chatsift": lambda: chatsift_curate(dump, Path(tmp)),
                "whole fastchat": lambda: seconds(
                    lambda: fastchat_clean_and_split(dump, args.processes, peer_tokenizer)
                ),
            },
            args.repeats,
        )
        lines = []
        for label, peer, step in (
            ("the clean step", "clean_html_all", "clean"),
            ("the whole pipeline (chatsift curate, defaults)", "clean_html_all + split_all", "whole"),
        ):
            ours, theirs = medians[f"{step} chatsift"], medians[f"{step} fastchat"]
            lines.append(f"{label}: chatsift {ours:.1f} s, FastChat {peer} {theirs:.1f} s: {theirs / ours:.2f}x")
        print(lines[0])
        print("README: " + "; ".join(lines[1:]) + f"; clean step {lines[0].rsplit(' ', 1)[1]}")


if __name__ == "__main__":
    main()
