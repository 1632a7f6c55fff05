"""Benchmark curation.ingest.read on a large ShareGPT JSON dump.

    .venv/bin/python -m bench.ingest            # ~1 GB dump (the README figure)
    .venv/bin/python -m bench.ingest --mb 200   # quicker

The dump repeats the 3003 real conversations from ../shared/data (each copy with new ids, so ids
stay unique), or synthetic ones where the real data is absent. It is written to a temporary
directory by a child process, so that the reading process's peak RSS (resource.getrusage) counts
the reader only. The last line printed is the summary for the README.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from curation.ingest.read import read_conversations
from schemas import Conversation
from schemas.config import IngestConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SAMPLE = (
    REPO_ROOT.parent / "shared" / "data" / "sharegpt" / "sharegpt_v3_unfiltered_cleaned_split.first3003.json.gz"
)
_ID_PLACEHOLDER = "\u0000chatsift-bench-id\u0000"


def _templates(sample: Path) -> tuple[list[tuple[bytes, str, bytes]], str]:
    """Each record serialised once around its id: (before the id, the id, after the id)."""
    records: list[dict[str, Any]]
    if sample.exists():
        with gzip.open(sample, "rt", encoding="utf-8") as f:
            records = json.load(f)
        origin = f"the {len(records)} real conversations of {sample.name}"
    else:
        records = list(_synthetic_records(3000))
        origin = "3000 synthetic conversations (no real data found)"
    templates = []
    for record in records:
        text = json.dumps({**record, "id": _ID_PLACEHOLDER}, ensure_ascii=False, indent=1)
        before, after = text.split(json.dumps(_ID_PLACEHOLDER), 1)
        templates.append((before.encode(), str(record["id"]), after.encode()))
    return templates, origin


def _synthetic_records(count: int) -> Iterator[dict[str, Any]]:
    for i in range(count):
        words = " ".join(f"word{(i * 7 + k) % 997}" for k in range(40 + i % 400))
        yield {
            "id": f"synthetic{i}",
            "conversations": [
                {"from": "human", "value": f"Question {i}: {words[:200]}?"},
                {"from": "gpt", "value": f'<div class="markdown prose"><p>{words}</p></div>'},
            ]
            * (1 + i % 4),
        }


def generate_dump(path: Path, megabytes: int, sample: Path) -> str:
    """Write a JSON array of at least `megabytes` MB; returns where the records came from."""
    templates, origin = _templates(sample)
    target = megabytes * 1_000_000
    written = 0
    copy = 0
    with path.open("wb") as f:
        f.write(b"[\n")
        written += 2
        while written < target:
            for before, record_id, after in templates:
                prefix = b",\n" if written > 2 else b""
                piece = prefix + before + json.dumps(f"{record_id}.r{copy}").encode() + after
                f.write(piece)
                written += len(piece)
                if written >= target:
                    break
            copy += 1
        f.write(b"\n]\n")
    return origin


def read_dump(path: Path, config: IngestConfig) -> str:
    """Read the dump with read_conversations and return the one-line summary."""
    size = path.stat().st_size
    kept = dropped = 0
    imports_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    started = time.perf_counter()
    for record in read_conversations(path, config=config):
        if isinstance(record, Conversation):
            kept += 1
        else:
            dropped += 1
    seconds = time.perf_counter() - started
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    records = kept + dropped
    return (
        f"ingest: {size / 1e6:,.0f} MB ShareGPT JSON dump, {records:,} records ({dropped} dropped) in "
        f"{seconds:.1f} s = {records / seconds:,.0f} records/s, {size / 1e6 / seconds:,.1f} MB/s, "
        f"peak RSS {peak_rss_mb:,.0f} MiB, {imports_rss_mb:,.0f} of it before reading "
        f"(read_chunk_bytes={config.read_chunk_bytes:,}; "
        f"Python {platform.python_version()}, one core)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=1000, help="dump size in MB (default 1000)")
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE, help="real ShareGPT sample (.json.gz)")
    parser.add_argument("--chunk-bytes", type=int, default=IngestConfig().read_chunk_bytes)
    # Internal: the child process that writes the dump.
    parser.add_argument("--generate-into", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.generate_into is not None:
        print(f"generated from {generate_dump(args.generate_into, args.mb, args.sample)}", flush=True)
        return

    with tempfile.TemporaryDirectory(prefix="chatsift-bench-") as tmp:
        dump = Path(tmp) / "sharegpt_dump.json"
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bench.ingest", "--mb", str(args.mb), "--sample", str(args.sample)]
            + ["--generate-into", str(dump)],
            check=True,
            cwd=REPO_ROOT,
        )
        print(f"wrote {dump.stat().st_size / 1e6:,.0f} MB in {time.perf_counter() - started:.1f} s", flush=True)
        print(read_dump(dump, IngestConfig(read_chunk_bytes=args.chunk_bytes)))


if __name__ == "__main__":
    main()
