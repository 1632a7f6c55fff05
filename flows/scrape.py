"""The `scrape` flow: a list of ShareGPT ids or page URLs → saved pages ingest reads, plus a ledger.

The folder layout (store/, pages/<day>/, <run_id>/ledger/, <run_id>/scrape_report.json) is
schemas.run_layout.ScrapePaths. `chatsift curate OUT/pages --out ...` curates what was scraped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prefect import flow, task

from curation.parquet import write_ledger
from curation.scrape.fetch import (
    FETCH_PAGES,
    client_timeouts,
    scrape_dropped,
    targets_from_ids,
    targets_from_urls,
    write_pages_by_day,
)
from curation.scrape.store import RawPageStore
from flows.execution import publish_failure, publish_markdown, run_logger, run_step
from flows.progress import RunProgress
from schemas.config import CurationConfig, ScrapeConfig
from schemas.errors import ConfigError, InputError
from schemas.files import atomic_write_text
from schemas.run_layout import ScrapePaths, new_run_id
from schemas.scrape import FetchResult, ScrapeTarget

T = TypeVar("T")


def check_scrape_arguments(ids_file: Path | None, urls_file: Path | None) -> Path:
    """The list file to read, or a ConfigError / InputError before any request. The [scrape] options,
    allow-list and url_template included, were checked when the config was made."""
    if (ids_file is None) == (urls_file is None):
        raise ConfigError("scrape needs exactly one of --ids FILE or --urls FILE")
    source = ids_file if ids_file is not None else urls_file
    assert source is not None
    if not source.is_file():
        raise InputError(f"scrape list not found: {source}")
    return source


def _run_async(coro: Coroutine[Any, Any, T]) -> T:
    # asyncio.run refuses to start inside a running event loop (a task run on one): use a thread then.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def scrape_client(config: ScrapeConfig) -> httpx.AsyncClient:
    """The HTTP client fetch_pages expects: no automatic redirects, our User-Agent, pool = concurrency."""
    return httpx.AsyncClient(
        follow_redirects=False,
        timeout=client_timeouts(config),
        headers={"user-agent": config.user_agent},
        limits=httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency),
    )


async def _fetch_with_client(
    targets: list[ScrapeTarget], config: CurationConfig, store: RawPageStore
) -> list[FetchResult]:
    async with scrape_client(config.scrape) as client:
        return await FETCH_PAGES.call(targets, config=config, client=client, store=store)


@task(name="scrape-chunk", retries=0)
def scrape_chunk(
    targets: list[ScrapeTarget], chunk: int, folder: ScrapePaths, run_id: str, config: CurationConfig
) -> dict:
    """Fetch one chunk of targets, write its pages and its ledger part; returns counts."""
    store = RawPageStore(folder.store)
    started = time.perf_counter()
    results = _run_async(_fetch_with_client(targets, config, store))
    seconds = time.perf_counter() - started
    pages = write_pages_by_day(store, results, folder.pages)
    write_ledger(folder.ledger_part(run_id, f"{chunk:05d}"), scrape_dropped(results))
    now = [r for r in results if not r.reused]
    return {
        "outcomes": dict(Counter(r.outcome for r in results)),
        "reasons": dict(Counter(r.reason for r in results if r.reason)),
        "fetched_now": sum(r.outcome == "fetched" for r in now),
        "fetched_from_store": sum(r.outcome == "fetched" for r in results if r.reused),
        "requested": len(now),
        "retries": sum(max(r.tries - 1, 0) for r in now),
        "bytes_fetched_now": sum(r.bytes for r in now),
        "pages_written": pages,
        "seconds": seconds,
    }


@flow(name="scrape", on_failure=[publish_failure])
def scrape_flow(
    ids_file: Path | None = None,
    urls_file: Path | None = None,
    out_dir: Path = Path("scrapes"),
    config: CurationConfig = CurationConfig(),
    run_id: str | None = None,
) -> dict:
    """Fetch every listed page into out_dir/pages (saved-page form, with provenance); every id that
    did not become a page is in out_dir/<run_id>/ledger with its reason."""
    scrape = config.scrape
    source = check_scrape_arguments(ids_file, urls_file)
    run_id = run_id or new_run_id()
    folder = ScrapePaths(Path(out_dir))
    # Raw lines: one that is not UTF-8 becomes a ledger row, not a crash (bytes split on \n, \r, \r\n only).
    lines = source.read_bytes().splitlines()
    build = targets_from_ids if ids_file is not None else targets_from_urls
    listed = build(lines, scrape, input_file=str(source))
    # Invalid lines are not journaled: they are found again from the list on every run, and a
    # journaled "invalid" for a URL off the allow-list would shadow the same id on an allowed host.
    write_ledger(folder.ledger_part(run_id, "invalid"), scrape_dropped(listed.dropped))
    size = scrape.batch_size
    chunks = [listed.targets[i : i + size] for i in range(0, len(listed.targets), size)]
    # One chunk after another: each chunk already fetches `concurrency` pages at once, and the
    # per-host rate limit holds across the run only if chunks do not overlap.
    progress = RunProgress(key="scrape-progress", title="scrape", total=len(listed.targets), unit="pages")
    counts: list[dict] = []
    for i, chunk in enumerate(chunks):
        counts.append(run_step(scrape_chunk, chunk, i, folder, run_id, config))
        fetched = sum(c["outcomes"].get("fetched", 0) for c in counts)
        progress.update(sum(map(len, chunks[: i + 1])), f"{fetched:,} fetched")
    report = _report(run_id, source, listed.duplicates, listed.dropped, counts, folder)
    atomic_write_text(folder.report(run_id), json.dumps(report, indent=2) + "\n")
    publish_markdown(markdown=_markdown(report), key="scrape-report", description="chatsift scrape report")
    run_logger().info("scrape %s: %s", run_id, report["outcomes"])
    return report


def _report(
    run_id: str, source: Path, duplicates: int, invalid: list[FetchResult], counts: list[dict], folder: ScrapePaths
) -> dict:
    outcomes: Counter[str] = Counter({"invalid": len(invalid)} if invalid else {})
    reasons: Counter[str] = Counter(r.reason for r in invalid if r.reason)
    for c in counts:
        outcomes.update(c["outcomes"])
        reasons.update(c["reasons"])
    seconds = sum(c["seconds"] for c in counts)
    fetched_now = sum(c["fetched_now"] for c in counts)
    return {
        "run_id": run_id,
        "finished_at": datetime.now(UTC).isoformat(),
        "input_file": str(source),
        "ids": sum(outcomes.values()),
        "duplicate_lines": duplicates,
        "outcomes": dict(sorted(outcomes.items())),
        "dropped_by_reason": dict(sorted(reasons.items())),
        "fetched_now": fetched_now,
        "fetched_from_store": sum(c["fetched_from_store"] for c in counts),
        "requested": sum(c["requested"] for c in counts),
        "retries": sum(c["retries"] for c in counts),
        "bytes_fetched_now": sum(c["bytes_fetched_now"] for c in counts),
        "seconds": round(seconds, 3),
        "pages_per_second": round(fetched_now / seconds, 2) if seconds > 0 else 0.0,
        "pages_dir": str(folder.pages),
        "store": str(folder.store),
        "ledger_dir": str(folder.ledger_part(run_id, "").parent),
    }


def _markdown(report: dict) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in report["outcomes"].items())
    reasons = "\n".join(f"| {k} | {v} |" for k, v in report["dropped_by_reason"].items()) or "| (none) | 0 |"
    return (
        f"# Scrape {report['run_id']}\n\n{report['ids']} ids ({report['duplicate_lines']} repeated lines), "
        f"{report['fetched_now']} fetched now, {report['fetched_from_store']} from the store, "
        f"{report['retries']} retries, {report['pages_per_second']} pages/s.\n\n"
        f"| outcome | ids |\n|---|---|\n{rows}\n\n| reason | ids |\n|---|---|\n{reasons}\n"
    )
