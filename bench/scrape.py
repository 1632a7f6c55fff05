"""Benchmark curation.scrape.fetch.fetch_pages against a local HTTP server serving real-markup pages.

    .venv/bin/python -m bench.scrape               # 600 pages per concurrency level
    .venv/bin/python -m bench.scrape --pages 200   # quicker

Pages are the real ShareGPT markup (demo.chatgpt_html: __NEXT_DATA__ with assistant turns in
ChatGPT's HTML) built from the 3003 real conversations in ../shared/data, or synthetic ones where
that is absent. They are rendered once and served as pre-built bytes by a minimal keep-alive
asyncio HTTP/1.1 server in a child process, so the server does no work per page but copy bytes.
Each level runs the real fetch_pages (rate limit off, per_host_rate=0) into a fresh store, so the
figure includes hashing, the atomic object writes and the fsync'd journal line per page.
The last line printed is the summary for the README.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import multiprocessing
import os
import platform
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from curation.scrape.fetch import fetch_pages, targets_from_ids
from curation.scrape.store import RawPageStore
from demo.chatgpt_html import as_captured, sharegpt_page_html
from flows.scrape import scrape_client
from schemas.config import ScrapeConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SAMPLE = (
    REPO_ROOT.parent / "shared" / "data" / "sharegpt" / "sharegpt_v3_unfiltered_cleaned_split.first3003.json.gz"
)


def build_pages(count: int, sample: Path) -> tuple[dict[str, bytes], str]:
    """`count` rendered pages by id ("p000001"...), and where their conversations came from."""
    if sample.is_file():
        with gzip.open(sample, "rt", encoding="utf-8") as f:
            records: list[dict[str, Any]] = json.load(f)
        source = f"the real sample ({sample.name})"
    else:
        records = [
            {
                "conversations": [
                    {"from": "human", "value": f"Question {i}: how do I sort a list in Python?"},
                    {"from": "gpt", "value": f"Use `sorted(xs)`.\n\n```python\nprint(sorted([3, 1, 2]))\n```\n\n{i}"},
                ]
            }
            for i in range(200)
        ]
        source = "synthetic conversations (../shared is absent)"
    pages: dict[str, bytes] = {}
    for i in range(count):
        record = records[i % len(records)]
        items = as_captured(record["conversations"])
        page_id = f"p{i:06d}"
        pages[page_id] = sharegpt_page_html(page_id=page_id, items=items, title=f"bench {i}").encode("utf-8")
    return pages, source


def _serve(pages: dict[str, bytes], port_out: Any, ready: Any, latency: float = 0.0) -> None:
    """A minimal HTTP/1.1 keep-alive server: GET /c/<id> → the pre-rendered page or 404."""
    responses = {
        f"/c/{pid}".encode(): b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
        for pid, body in pages.items()
    }
    not_found = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                if latency:
                    # A stand-in for the network round trip and the server's think time.
                    await asyncio.sleep(latency)
                writer.write(responses.get(path, not_found))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_out.value = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


async def _fetch_all(port: int, ids: list[str], concurrency: int, store: RawPageStore) -> tuple[float, int]:
    config = ScrapeConfig(
        allowed_hosts=("127.0.0.1",),
        url_template=f"http://127.0.0.1:{port}/c/{{id}}",
        concurrency=concurrency,
        per_host_rate=0.0,
    )
    targets = targets_from_ids(ids, config).targets
    async with scrape_client(config) as client:
        started = time.perf_counter()
        results = await fetch_pages(targets, client=client, config=config, store=store, rng=random.Random(0))
        seconds = time.perf_counter() - started
    fetched = sum(r.outcome == "fetched" for r in results)
    if fetched != len(ids):
        raise RuntimeError(f"only {fetched} of {len(ids)} pages fetched: {results[:3]}")
    return seconds, fetched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=600)
    parser.add_argument("--levels", default="1,8,32")
    parser.add_argument("--sample", type=Path, default=DEFAULT_SAMPLE)
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="server delay per response, as a remote host's round trip"
    )
    args = parser.parse_args()
    pages, source = build_pages(args.pages, args.sample)
    mean_kb = sum(map(len, pages.values())) / len(pages) / 1024
    port = multiprocessing.Value("i", 0)
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(pages, port, ready, args.latency_ms / 1000), daemon=True)
    server.start()
    ready.wait(30)
    ids = list(pages)
    print(
        f"{len(ids)} pages from {source}, mean {mean_kb:.1f} KB, {args.latency_ms:g} ms per response; "
        f"{os.cpu_count()} CPUs, {platform.python_version()}"
    )
    print(f"{'concurrency':>11} | {'pages/s':>8} | {'MB/s':>6} | {'client CPU %':>12}")
    figures = []
    try:
        for level in [int(x) for x in args.levels.split(",")]:
            with tempfile.TemporaryDirectory() as tmp:
                store = RawPageStore(Path(tmp) / "store")
                cpu0 = resource.getrusage(resource.RUSAGE_SELF)
                seconds, fetched = asyncio.run(_fetch_all(port.value, ids, level, store))
                cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime) / seconds * 100
            rate = fetched / seconds
            figures.append((level, rate))
            print(f"{level:>11} | {rate:>8.0f} | {rate * mean_kb / 1024:>6.1f} | {cpu:>12.0f}")
    finally:
        server.terminate()
        server.join(5)
    if (os.cpu_count() or 1) <= 2:
        print(
            "note: client and server share this machine's CPUs; with the client near 100% of one core, "
            "the figure is the client's (httpx + hashing + the fsync'd journal), not the server's"
        )
    shown = ", ".join(f"{rate:.0f} pages/s at concurrency {level}" for level, rate in figures)
    print(
        f"README: fetch_pages on a local server ({args.latency_ms:g} ms per response), rate limit off, "
        f"{mean_kb:.0f} KB real-markup pages: {shown}."
    )


if __name__ == "__main__":
    main()
