"""The pure parts of curation.scrape.fetch: ids, targets, Retry-After, backoff, resume, provenance, ledger."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import httpx
import pytest

from curation.ingest.read import read_conversations
from curation.scrape.fetch import (
    backoff_delay,
    fetch_pages,
    parse_retry_after,
    scrape_dropped,
    targets_from_ids,
    targets_from_urls,
    validate_page_id,
    write_fetched_pages,
)
from curation.scrape.store import RawPageStore
from demo.chatgpt_html import sharegpt_page_html
from schemas import Conversation
from schemas.config import IngestConfig, ScrapeConfig
from schemas.config.file import load_config
from schemas.errors import ConfigError
from schemas.scrape import FetchResult
from tests.helpers.fetch_results import NOW, fetch_result

LOCAL = ScrapeConfig(allowed_hosts=("127.0.0.1",), url_template="http://127.0.0.1:8000/c/{id}", per_host_rate=0)


@pytest.mark.parametrize(
    "text",
    ["", "../etc", "..", "a/b", "a\\b", "a\x00b", "%2e%2e", "x" * 33, "abc def", "ab.cd", "\u00e9t\u00e9"],
)
def test_bad_ids_are_refused(text: str) -> None:
    assert validate_page_id(text) is not None


@pytest.mark.parametrize("text", ["wNBG8Gp", "QWJhYvA", "a", "x" * 32])
def test_sharegpt_ids_pass(text: str) -> None:
    assert validate_page_id(text) is None


def test_targets_from_ids_dedupes_strips_parts_and_drops_bad_lines() -> None:
    lines = ["wNBG8Gp", "", "# a comment", "QWJhYvA_0", "QWJhYvA_17", "../../etc/passwd", "wNBG8Gp"]
    listed = targets_from_ids(lines, ScrapeConfig(), input_file="ids.txt")
    assert [(t.id, t.url, t.line_index) for t in listed.targets] == [
        ("wNBG8Gp", "https://sharegpt.com/c/wNBG8Gp", 0),
        ("QWJhYvA", "https://sharegpt.com/c/QWJhYvA", 3),
    ]
    assert listed.duplicates == 2
    assert [(d.reason, d.line_index, d.outcome) for d in listed.dropped] == [("invalid_id", 5, "invalid")]


def test_targets_from_urls_checks_host_scheme_and_id() -> None:
    lines = [
        "http://127.0.0.1:8000/c/abc1234",
        "http://evil.example/c/abc1234",
        "http://127.0.0.1.evil.example/c/abc1235",
        "http://127.0.0.1@evil.example/c/abc1236",
        "file:///etc/passwd",
        "http://127.0.0.1:8000/c/..%2f..%2fetc",
        "http://127.0.0.1:8000/c/abc1234#again",
        "https://127.0.0.1:8000/c/abc1237",
        "http://127.0.0.1:8001/c/abc1238",
        "http://127.0.0.1:8000/c/abc$1239",
    ]
    listed = targets_from_urls(lines, LOCAL)
    assert [t.id for t in listed.targets] == ["abc1234"]
    reasons = [d.reason for d in listed.dropped]
    assert reasons == ["host_not_allowed"] * 4 + ["invalid_url"] + ["host_not_allowed"] * 2 + ["invalid_id"]
    assert listed.duplicates == 1


def test_default_hosts_do_not_imply_subdomains() -> None:
    listed = targets_from_urls(["https://www.sharegpt.com/c/abc1234", "https://sharegpt.com/c/abc1234"], ScrapeConfig())
    assert [d.reason for d in listed.dropped] == ["host_not_allowed"]
    assert [t.url for t in listed.targets] == ["https://sharegpt.com/c/abc1234"]


def test_a_listed_url_is_requested_in_the_templates_form() -> None:
    lines = ["HTTP://127.0.0.1:8000/c/./abc1234/?utm=x#top", "http://127.0.0.1:8000/c/QWJhYvA_3"]
    listed = targets_from_urls(lines, LOCAL)
    assert [t.url for t in listed.targets] == ["http://127.0.0.1:8000/c/abc1234", "http://127.0.0.1:8000/c/QWJhYvA"]


def test_the_allow_list_is_origins_and_a_bare_host_takes_the_templates_scheme_and_port() -> None:
    assert ScrapeConfig().allowed_origins() == {("https", "sharegpt.com", 443)}  # the template's origin
    config = ScrapeConfig(
        url_template="http://127.0.0.1:8000/c/{id}",
        allowed_hosts=("LocalHost", "https://sharegpt.com", "http://[::1]:8080/"),
    )
    assert config.allowed_origins() == {
        ("http", "127.0.0.1", 8000),
        ("http", "localhost", 8000),
        ("https", "sharegpt.com", 443),
        ("http", "::1", 8080),
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("allowed_hosts", ["127.0.0.1:8000"]),
        ("allowed_hosts", ["https://sharegpt.com/c"]),
        ("allowed_hosts", ["ftp://sharegpt.com"]),
        ("allowed_hosts", ["https://user@sharegpt.com"]),
        ("allowed_hosts", ["https://sharegpt.com:99999"]),
        ("allowed_hosts", ["share gpt.com"]),
        ("url_template", "https://sharegpt.com/c/"),
        ("url_template", "https://sharegpt.com/c/{id}?x={id}"),
        ("url_template", "https://sharegpt.com/c/x{id}"),
        ("url_template", "https://sharegpt.com/c/{id}#top"),
        ("url_template", "https://sharegpt.com/c/../{id}"),
        ("url_template", "file:///c/{id}"),
    ],
)
def test_bad_allow_list_entries_and_templates_fail_at_config_load(tmp_path: Path, key: str, value: object) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"scrape": {key: value}}))
    with pytest.raises(ConfigError, match=rf"scrape\.{key}: Value error, "):
        load_config(path)


def test_an_ids_line_that_is_not_utf8_is_a_drop_and_the_rest_go_on() -> None:
    listed = targets_from_ids(b"abc1234\n\xff\xfebad\nabc1235\n".splitlines(), LOCAL, input_file="ids.txt")
    assert [t.id for t in listed.targets] == ["abc1234", "abc1235"]
    [bad] = scrape_dropped(listed.dropped)
    assert (bad.conversation_id, bad.reason, bad.record_index) == ("ids.txt#1", "invalid_id", 1)
    assert bad.detail.startswith("line 2: not UTF-8")
    [url_line] = targets_from_urls([b"http://127.0.0.1:8000/c/\xe9"], LOCAL).dropped
    assert url_line.reason == "invalid_url"


def test_retry_after_seconds_date_and_garbage() -> None:
    assert parse_retry_after("120", now=NOW) == 120.0
    assert parse_retry_after(" 0 ", now=NOW) == 0.0
    assert parse_retry_after("Wed, 01 May 2024 12:01:30 GMT", now=NOW) == 90.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now=NOW) == 0.0  # in the past
    for garbage in ("soon", "-5", "1.5e3", "", None):
        assert parse_retry_after(garbage, now=NOW) is None


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    config = ScrapeConfig(backoff_base_s=1.0, backoff_max_s=10.0)
    rng = random.Random(1)
    for failed, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (60, 10.0), (10_000, 10.0)]:
        delays = [backoff_delay(failed, config=config, rng=rng) for _ in range(300)]
        assert all(0.0 <= d <= cap for d in delays)
        assert max(delays) > 0.8 * cap  # jitter spans the range, not a fixed delay


def test_resume_requests_only_what_had_not_ended(tmp_path: Path) -> None:
    hits: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        page_id = request.url.path.rsplit("/", 1)[-1]
        hits[page_id] = hits.get(page_id, 0) + 1
        if page_id == "flaky1" and hits[page_id] <= 5:
            return httpx.Response(503, headers={"retry-after": "2"})
        if page_id == "missing":
            return httpx.Response(404)
        page = sharegpt_page_html(page_id=page_id, items=[{"from": "human", "value": "hi"}])
        return httpx.Response(200, content=page.encode())

    sleeps: list[float] = []

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def run(store: RawPageStore) -> list[FetchResult]:
        listed = targets_from_ids(["good1", "missing", "flaky1"], LOCAL)
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await fetch_pages(
                listed.targets, client=client, config=LOCAL, store=store, sleep=no_sleep, now=lambda: NOW
            )

    first = asyncio.run(run(RawPageStore(tmp_path)))
    assert [(r.page_id, r.outcome, r.tries) for r in first] == [
        ("good1", "fetched", 1),
        ("missing", "not_found", 1),
        ("flaky1", "failed", 5),
    ]
    assert first[2].detail == "tries=5 last=HTTP 503" and sleeps == [2.0] * 4  # Retry-After, not backoff
    second = asyncio.run(run(RawPageStore(tmp_path)))
    assert [(r.page_id, r.outcome, r.reused) for r in second] == [
        ("good1", "fetched", True),
        ("missing", "not_found", True),
        ("flaky1", "fetched", False),
    ]
    assert hits == {"good1": 1, "missing": 1, "flaky1": 6}


def test_a_scraped_page_ingests_with_url_and_fetch_time(tmp_path: Path) -> None:
    store = RawPageStore(tmp_path / "store")
    items = [{"from": "human", "value": "What is 2+2?"}, {"from": "gpt", "value": "<p>4</p>"}]
    sha = store.put(sharegpt_page_html(page_id="abc1234", items=items).encode())
    fetched = fetch_result("abc1234", "fetched", sha256=sha, bytes=1, fetched_at=NOW.isoformat())
    pages = tmp_path / "pages" / "2024-05-01"
    written = write_fetched_pages(store, [fetched, fetch_result("nope1", "gone", reason="gone")], pages)
    assert [p.name for p in written] == ["abc1234.html"]
    records = list(read_conversations(tmp_path / "pages", config=IngestConfig()))
    assert len(records) == 1 and isinstance(records[0], Conversation)  # the sidecar is not an input
    provenance = records[0].provenance
    assert (provenance.page_id, provenance.url, provenance.fetched_at) == (
        "abc1234",
        "http://h/c/abc1234",
        "2024-05-01T12:00:00+00:00",
    )


def test_a_saved_page_without_sidecar_has_no_fetch_provenance(tmp_path: Path) -> None:
    page = tmp_path / "abc1234.html"
    page.write_text(sharegpt_page_html(page_id="abc1234", items=[{"from": "human", "value": "hi there"}]))
    [conv] = list(read_conversations(page, config=IngestConfig()))
    assert isinstance(conv, Conversation) and conv.provenance.url is None and conv.provenance.fetched_at is None


def test_scrape_dropped_maps_every_non_fetchedfetch_result() -> None:
    results = [
        fetch_result("a", "fetched", sha256="0" * 64, fetched_at=NOW.isoformat()),
        fetch_result("b", "gone", reason="gone", detail="HTTP 410", input_file="ids.txt", line_index=4),
        FetchResult(
            page_id="",
            url="",
            outcome="invalid",
            reason="invalid_id",
            detail="empty id",
            input_file="/x/ids.txt",
            line_index=7,
        ),
    ]
    dropped = scrape_dropped(results)
    assert [(d.conversation_id, d.stage, d.reason, d.detail, d.input_file, d.record_index) for d in dropped] == [
        ("b", "scrape", "gone", "HTTP 410", "ids.txt", 4),
        ("ids.txt#7", "scrape", "invalid_id", "empty id", "/x/ids.txt", 7),
    ]


def test_conversation_files_of_schema_version_1_still_read(tmp_path: Path) -> None:
    """Version 2 only added Provenance.url and fetched_at; files written before read with them None."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curation.parquet import read_conversations_parquet
    from schemas.arrow import CONVERSATION_SCHEMA, KIND_KEY, PROVENANCE_TYPE, SCHEMA_VERSION, SCHEMA_VERSION_KEY

    assert SCHEMA_VERSION == "2" and PROVENANCE_TYPE.names[-2:] == ["url", "fetched_at"]
    v1_provenance = pa.struct([f for f in PROVENANCE_TYPE if f.name not in ("url", "fetched_at")])
    fields = [
        pa.field("provenance", v1_provenance, nullable=False) if f.name == "provenance" else f
        for f in CONVERSATION_SCHEMA
    ]
    v1 = pa.schema(fields, metadata={SCHEMA_VERSION_KEY: b"1", KIND_KEY: b"conversations"})
    row = {
        "id": "a",
        "source": "sharegpt_page",
        "model": None,
        "title": None,
        "turns": [{"role": "user", "content": "hi", "source_role": "human", "weight": None}],
        "parent_id": None,
        "split_index": None,
        "provenance": {
            "input_file": "x.html",
            "byte_offset": None,
            "page_id": "a",
            "record_index": 0,
            "content_hash": "0",
        },
    }
    pq.write_table(pa.Table.from_pylist([row], schema=v1), tmp_path / "old.parquet")
    [conv] = read_conversations_parquet(tmp_path / "old.parquet")
    assert (conv.provenance.page_id, conv.provenance.url, conv.provenance.fetched_at) == ("a", None, None)
