"""Benchmark tokenization and packing on the real ShareGPT sample.

For max_seq_len 2048 and 4096: clean the 3003 real conversations, split them at that length,
tokenize with the default chat template and tokenizer (one encoder for both, as in a run;
encode_batch: all cores), pack with best-fit decreasing, and print tokens/second, packing
efficiency against the best any packing could do (packing_lower_bound), the pieces' mean and
median tokens (context per piece), and peak RSS. Splitting is shown at piece_target_ratio 1.0
(FastChat's rule: split only what does not fit), 0.8, 0.6 (the default) and 0.5: splitting
earlier costs context per piece and leaves fewer pieces over half a row, which no packing can pair.
First, split + tokenize with the defaults done as a run does them (one encoder, each text encoded
once) against split counting plain texts and tokenize encoding afresh, alternating, medians of 3.
Last, what pack holds per token once it has read the tokenized parts (bytes of RSS each further copy adds).
Usage: python -m bench.shards [--shared ../shared] [--tokenizer SPEC] [--template NAME]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.timing import alternating_medians
from curation.clean.batch import clean_batch
from curation.ingest.read import read_conversations
from curation.parquet import read_tokenized, write_tokenized
from curation.shards.chat_templates import chat_template_for
from curation.shards.pack import pack_conversations, packing_lower_bound, with_unique_ids
from curation.shards.split import count_turn_texts, split_long_conversations
from curation.shards.tokenization import ConversationEncoder, tokenize_conversations
from curation.shards.tokenizer_load import batch_token_counter, load_tokenizer
from schemas import Conversation
from schemas.config import CurationConfig, ShardsConfig, SplitConfig
from schemas.shards import TokenizedConversation

REPO = Path(__file__).resolve().parents[1]


def split_then_tokenize(convs: list[Conversation], tokenizer: Any, template: Any, config: SplitConfig) -> float:
    """Seconds for split then tokenize as a run does them: one encoder, each text encoded once for both."""
    started = time.perf_counter()
    encoder = ConversationEncoder(tokenizer, template)
    encoder.tokenize(split_long_conversations(convs, count_tokens=encoder.content_token_counts, config=config).kept)
    return time.perf_counter() - started


def split_then_tokenize_apart(convs: list[Conversation], tokenizer: Any, template: Any, config: SplitConfig) -> float:
    """Seconds for the same with split counting plain texts and tokenize encoding afresh (each text twice)."""
    started = time.perf_counter()
    count_tokens = count_turn_texts(batch_token_counter(tokenizer))
    pieces = split_long_conversations(convs, count_tokens=count_tokens, config=config).kept
    tokenize_conversations(pieces, tokenizer=tokenizer, template=template)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--tokenizer", default=CurationConfig().tokenizer.spec)
    ap.add_argument("--template", default=CurationConfig().shards.template)
    args = ap.parse_args()
    src = args.shared / "data/sharegpt/sharegpt_v3_unfiltered_cleaned_split.first3003.json.gz"
    config = CurationConfig()
    records = read_conversations(src, config=config.ingest)
    convs = clean_batch([r for r in records if isinstance(r, Conversation)], config=config)[0]
    with tempfile.TemporaryDirectory() as cache:
        tokenizer = load_tokenizer(args.tokenizer, cache_dir=Path(cache))
    template = chat_template_for(args.template)  # type: ignore[arg-type]
    print(
        f"{len(convs)} cleaned real conversations; tokenizer {args.tokenizer}; template {args.template}; "
        f"{os.cpu_count()} cores"
    )
    medians = alternating_medians(
        {
            "once": lambda: split_then_tokenize(convs, tokenizer, template, config.split),
            "apart": lambda: split_then_tokenize_apart(convs, tokenizer, template, config.split),
        },
        3,
    )
    once, apart = medians["once"], medians["apart"]
    print(
        f"README: split + tokenize with defaults, each text encoded once: {once:.1f} s; split counting plain texts "
        f"and tokenize encoding afresh: {apart:.1f} s ({apart / once:.2f}x)"
    )
    for max_seq_len, ratio in ((m, r) for m in (2048, 4096) for r in (1.0, 0.8, 0.6, 0.5)):
        split_config = SplitConfig(
            max_tokens=max_seq_len, turn_overhead_tokens=config.split.turn_overhead_tokens, piece_target_ratio=ratio
        )
        started = time.perf_counter()
        # As a run does: split counts with the part's encoder, tokenize reuses its encodings.
        encoder = ConversationEncoder(tokenizer, template)
        split = split_long_conversations(convs, count_tokens=encoder.content_token_counts, config=split_config).kept
        tokenized, _ = encoder.tokenize(split)
        seconds = time.perf_counter() - started
        tokens = sum(len(t.input_ids) for t in tokenized)
        shards_config = ShardsConfig(max_seq_len=max_seq_len)
        started = time.perf_counter()
        rows, dropped, info = pack_conversations(with_unique_ids(tokenized), config=shards_config)
        pack_seconds = time.perf_counter() - started
        lengths = [len(t.input_ids) for t in tokenized if len(t.input_ids) <= max_seq_len]
        # Context per piece in rounds: over the pieces of conversations that were cut, and all.
        rounds = [sum(t.role == "user" for t in piece.turns) for piece in split]
        cut_rounds = [r for r, piece in zip(rounds, split, strict=True) if piece.parent_id is not None]
        fewest_rows = packing_lower_bound(lengths, capacity=max_seq_len)
        print(
            f"max_seq_len {max_seq_len}, split.piece_target_ratio {ratio}: {len(split)} conversations/pieces "
            f"(tokens mean {statistics.mean(lengths):.0f}, median {statistics.median(lengths):.0f}; "
            f"{len(split) / len(convs):.2f} a conversation; rounds a piece {statistics.mean(rounds):.1f}, "
            f"{statistics.mean(cut_rounds or [0]):.1f} in the {len(cut_rounds)} pieces of cut conversations), "
            f"{tokens:,} tokens split and tokenized at {tokens / seconds:,.0f} tokens/s; packed into {info.rows} rows "
            f"(volume bound {info.lower_bound_rows}, no packing fewer than {fewest_rows}: at most "
            f"{100 * sum(lengths) / (fewest_rows * max_seq_len):.2f}%) in {pack_seconds:.2f} s, "
            f"efficiency {100 * info.efficiency:.2f}%, {len(dropped)} dropped as longer than max_seq_len"
        )
    held_bytes_per_token(tokenized)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")


def held_bytes_per_token(tokenized: list[TokenizedConversation], copies: int = 6) -> None:
    """What pack holds per token: the tokenized conversations written as a tokenize part, then read back `copies`
    times and all kept, as pack keeps a run's parts; the RSS each further copy adds, per token, and the read time."""
    with tempfile.TemporaryDirectory() as tmp:
        part = Path(tmp) / "part.parquet"
        write_tokenized(part, tokenized)
        held, marks, seconds = [], [_rss_mib()], []
        for _ in range(copies):
            started = time.perf_counter()
            held.append(read_tokenized(part))
            seconds.append(time.perf_counter() - started)
            marks.append(_rss_mib())
    tokens = sum(len(t.input_ids) for t in tokenized)
    per_token = (marks[-1] - marks[1]) * 2**20 / ((copies - 1) * tokens)
    print(
        f"pack's read of the tokenized parts: {per_token:.1f} bytes held a token (each of copies 2-{copies} of "
        f"{tokens:,} tokens), read in {statistics.median(seconds):.2f} s (median)"
    )


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="utf-8") as status:
        return int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) / 1024


if __name__ == "__main__":
    main()
