"""Benchmark ChatGPT HTML -> markdown against FastChat's converter, one core each, on the same turns.

    .venv/bin/pip install -e ".[bench]"          # fschat, the peer
    .venv/bin/python -m bench.converter          # all 3003 real conversations, 3 repeats
    .venv/bin/python -m bench.converter --conversations 500 --repeats 2   # quicker

The input is the real ShareGPT sample with its assistant turns rendered in ChatGPT's markup by the
project's own renderer (demo.chatgpt_html.as_captured): the same strings for both converters.
chatsift: curation.clean.markdown.html_to_markdown; FastChat: fastchat.data.clean_sharegpt's
html_to_markdown (BeautifulSoup + markdownify, as its clean_html_all calls it). The two run in
turn, in one process, each over every assistant turn, --repeats times; the last line is the
medians and the ratio FastChat / chatsift (above 1: chatsift is faster). Issue 31's target is 2x.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path

from bench.timing import alternating_medians
from curation.clean.markdown import html_to_markdown
from demo.chatgpt_html import as_captured

REPO = Path(__file__).resolve().parents[1]
SAMPLE = "data/sharegpt/sharegpt_v3_unfiltered_cleaned_split.first3003.json.gz"


def rendered_answers(shared: Path, conversations: int) -> list[str]:
    """The assistant turns of the first `conversations` real conversations, as ChatGPT HTML."""
    with gzip.open(shared / SAMPLE, "rt", encoding="utf-8") as f:
        records = json.load(f)[: conversations or None]
    return [m["value"] for r in records for m in as_captured(r["conversations"]) if m["from"] == "gpt"]


def seconds_over(convert: Callable[[str], str], turns: list[str]) -> float:
    started = time.perf_counter()
    for turn in turns:
        convert(turn)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--conversations", type=int, default=0, help="first N real conversations (default 0: all)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    try:
        from fastchat.data.clean_sharegpt import html_to_markdown as fastchat_html_to_markdown
    except ImportError as err:
        raise SystemExit(f"the peer is missing ({err}): pip install -e '.[bench]'") from err
    turns = rendered_answers(args.shared, args.conversations)
    size_mb = sum(len(t.encode()) for t in turns) / 1e6
    print(f"{len(turns):,} assistant turns, {size_mb:.1f} MB of ChatGPT HTML; one core each, {args.repeats} repeats")
    medians = alternating_medians(
        {
            "chatsift": lambda: seconds_over(html_to_markdown, turns),
            "fastchat": lambda: seconds_over(fastchat_html_to_markdown, turns),
        },
        args.repeats,
    )
    chatsift, fastchat = medians["chatsift"], medians["fastchat"]
    print(
        f"README: HTML -> markdown, 1 core: chatsift {chatsift:.1f} s ({size_mb / chatsift:.1f} MB/s), "
        f"FastChat html_to_markdown {fastchat:.1f} s ({size_mb / fastchat:.1f} MB/s): {fastchat / chatsift:.2f}x"
    )


if __name__ == "__main__":
    main()
