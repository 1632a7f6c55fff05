"""The fetcher against real HTTP servers on 127.0.0.1 (tests/helpers/scrape_server.py): which requests
reach a server, what is stored, and what goes to the ledger."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from curation.scrape.fetch import (
    TargetList,
    client_timeouts,
    fetch_pages,
    scrape_dropped,
    targets_from_ids,
    targets_from_urls,
    write_pages_by_day,
)
from curation.scrape.store import RawPageStore
from schemas.config import ScrapeConfig
from schemas.scrape import FetchResult
from tests.helpers.scrape_server import SHORT_CONTENT_LENGTH, TRICKLE_SECONDS, TRICKLE_SLICES, MisbehavingServer


@pytest.fixture
def servers(sharegpt_sample: list[dict]) -> Iterator[tuple[MisbehavingServer, MisbehavingServer]]:
    """Two servers on two ports of 127.0.0.1; the first one's "rp" pages redirect to the second."""
    with MisbehavingServer(lambda page_id: sharegpt_sample[0]) as other:
        with MisbehavingServer(lambda page_id: sharegpt_sample[1], other_origin=other.origin) as main:
            yield main, other


def _config(server: MisbehavingServer, *allowed: str) -> ScrapeConfig:
    return ScrapeConfig(
        allowed_hosts=allowed or ("127.0.0.1",),
        url_template=f"{server.origin}/c/{{id}}",
        per_host_rate=0,
        max_tries=2,
        backoff_base_s=0.01,
        backoff_max_s=0.02,
        timeout_s=5,
    )


def _fetch(listed: TargetList, config: ScrapeConfig, tmp: Path) -> tuple[list[FetchResult], list[str]]:
    """How every target ended, and the names of the pages written for ingest."""
    store = RawPageStore(tmp / "store")

    async def run() -> list[FetchResult]:
        async with httpx.AsyncClient(follow_redirects=False, timeout=client_timeouts(config)) as client:
            return await fetch_pages(listed.targets, client=client, config=config, store=store)

    results = asyncio.run(run())
    write_pages_by_day(store, results, tmp / "pages")
    return results, sorted(p.name for p in (tmp / "pages").rglob("*.html"))


def _reasons(listed: TargetList, results: list[FetchResult]) -> dict[str, str]:
    return {d.conversation_id: d.reason for d in scrape_dropped([*listed.dropped, *results])}


def test_the_allow_list_names_the_port(tmp_path: Path, servers: tuple[MisbehavingServer, MisbehavingServer]) -> None:
    main, other = servers
    config = _config(main)  # a bare host: that host on the template's scheme and port only
    lines = [f"{main.origin}/c/ok00001", f"{other.origin}/c/ok00002", f"{main.origin}/c/rp00003"]
    listed = targets_from_urls(lines, config)
    results, pages = _fetch(listed, config, tmp_path)
    assert other.paths() == [], "nothing may reach the other port: neither a listed URL nor a redirect"
    # requests run concurrently: which reach the server is checked, not their order
    assert sorted(main.paths()) == ["/c/ok00001", "/c/rp00003"]
    assert pages == ["ok00001.html"]
    assert _reasons(listed, results) == {
        f"{other.origin}/c/ok00002": "host_not_allowed",
        "rp00003": "redirect_off_allowlist",
    }

    # Both origins listed: the redirect and the URL on the other port are followed.
    both = _config(main, main.origin, other.origin)
    listed = targets_from_urls(lines, both)
    results, pages = _fetch(listed, both, tmp_path / "both")
    assert sorted(other.paths()) == ["/c/ok00002", "/c/rp00003"]
    assert pages == ["ok00001.html", "ok00002.html", "rp00003.html"]


TRAVERSALS = [
    "/c/../../etc/passwd",
    "/c/",
    "/c/%2e%2e/%2e%2e/etc/passwd",
    "/c/..%2fetc",
    "/c/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/c/ok00002/../../etc/passwd",
    "/c/ok00003/extra",
    "/moved/ok00004",
]


def test_only_page_urls_of_the_template_shape_are_requested(
    tmp_path: Path, servers: tuple[MisbehavingServer, MisbehavingServer]
) -> None:
    main, _ = servers
    config = _config(main)
    lines = [f"{main.origin}{path}" for path in [*TRAVERSALS, "/c/ok00001", "/c/ok%30%30%30%30%35", "/c/a%00b"]]
    listed = targets_from_urls(lines, config, input_file="urls.txt")
    results, pages = _fetch(listed, config, tmp_path)
    # percent-decoding comes first, so "ok%30%30..." is the page ok00005, asked for in its plain form
    assert sorted(main.paths()) == ["/c/ok00001", "/c/ok00005"]
    assert pages == ["ok00001.html", "ok00005.html"]
    reasons = _reasons(listed, results)
    invalid = {f"{main.origin}{path}": "invalid_url" for path in TRAVERSALS}
    assert reasons == {**invalid, f"{main.origin}/c/a%00b": "invalid_id"}


def test_short_empty_and_data_less_bodies_are_not_fetched(
    tmp_path: Path, servers: tuple[MisbehavingServer, MisbehavingServer]
) -> None:
    main, _ = servers
    config = _config(main)
    kinds = ["ok", "cl", "em", "nd", "tr"]
    listed = targets_from_urls([f"{main.origin}/c/{kind}00001" for kind in kinds], config)
    results, pages = _fetch(listed, config, tmp_path)
    ended = {r.page_id[:2]: r for r in results}
    assert pages == ["ok00001.html"]
    assert {kind: (r.outcome, r.reason) for kind, r in ended.items()} == {
        "ok": ("fetched", None),
        "cl": ("failed", "no_next_data"),  # the first 40 bytes of a page: the server's Content-Length lies
        "em": ("failed", "empty_input"),
        "nd": ("failed", "no_next_data"),
        "tr": ("failed", "truncated_body"),
    }
    assert f"{SHORT_CONTENT_LENGTH} bytes" in ended["cl"].detail
    # A truncated body is retried; an answer that came whole is not asked again in the same run.
    assert main.hits() == {"ok00001": 1, "cl00001": 1, "em00001": 1, "nd00001": 1, "tr00001": 2}


def test_a_slow_body_is_not_cut_by_the_head_timeout(
    tmp_path: Path, servers: tuple[MisbehavingServer, MisbehavingServer]
) -> None:
    """timeout_s bounds the wait for the response head; the body has body_timeout_s. A page that
    takes longer than timeout_s to stream in used to time out on every try."""
    main, _ = servers
    config = _config(main).model_copy(update={"timeout_s": TRICKLE_SECONDS})
    assert TRICKLE_SLICES * TRICKLE_SECONDS > 2 * config.timeout_s
    listed = targets_from_ids(["tb00001"], config)
    results, pages = _fetch(listed, config, tmp_path)
    assert [(r.outcome, r.tries) for r in results] == [("fetched", 1)]
    assert pages == ["tb00001.html"] and main.hits()["tb00001"] == 1


def test_a_page_over_the_cap_is_fetched_once_however_slowly_it_streams(
    tmp_path: Path, servers: tuple[MisbehavingServer, MisbehavingServer]
) -> None:
    """1 MiB every TRICKLE_SECONDS reaches a 4 MiB cap well after timeout_s: the cap ends it, not a
    retryable timeout, so the page is never asked for again (max_tries=2 would show a second hit)."""
    main, _ = servers
    config = _config(main).model_copy(update={"timeout_s": TRICKLE_SECONDS, "max_page_bytes": 4 * 1024 * 1024})
    listed = targets_from_ids(["th00001"], config)
    results, pages = _fetch(listed, config, tmp_path)
    assert [(r.outcome, r.reason, r.tries) for r in results] == [("failed", "page_too_large", 1)]
    assert pages == [] and main.hits()["th00001"] == 1


def test_a_body_slower_than_body_timeout_is_retried_and_named(
    tmp_path: Path, servers: tuple[MisbehavingServer, MisbehavingServer]
) -> None:
    main, _ = servers
    config = _config(main).model_copy(update={"body_timeout_s": TRICKLE_SECONDS})
    listed = targets_from_ids(["tb00002"], config)
    results, pages = _fetch(listed, config, tmp_path)
    assert [(r.outcome, r.reason, r.tries) for r in results] == [("failed", "fetch_failed", 2)]
    assert f"body not read within body_timeout_s={TRICKLE_SECONDS}" in results[0].detail
    assert pages == [] and main.hits()["tb00002"] == 2
