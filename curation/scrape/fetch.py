"""Fetch ShareGPT pages politely, resumably and safely; every requested id ends with an outcome.

- Polite: at most `concurrency` requests in flight, at most `per_host_rate` request starts per
  second per host, retries with exponential backoff and full jitter, Retry-After honoured.
- Resumable: every id that ends is journaled (fsync'd) in a RawPageStore as soon as it ends, and
  raw pages are kept by content hash, so a killed run started again requests only what had not
  ended; ids that ended as "failed" are requested again (those are mostly transient).
- Safe: only origins (scheme, host and port) on the allow-list are requested, redirects are
  followed by hand and each hop is checked, a listed URL is requested only when it has the
  url_template's shape (curation/scrape/page_urls.py), ids are validated before they become file
  names, bodies are capped in size, and pages are only stored here (ingest parses their
  __NEXT_DATA__ JSON; nothing is executed).

The HTTP client, the clock, `sleep` and the random source are arguments, so tests drive all of it.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import httpx

from curation.ingest.read import fetch_sidecar_path
from curation.scrape.page_urls import id_in_path, template_path
from curation.scrape.store import RawPageStore
from curation.stage import Stage
from schemas.config import ScrapeConfig
from schemas.config.scrape import DEFAULT_PORTS, Origin, origin_text, url_origin
from schemas.files import atomic_target, atomic_write_text
from schemas.ledger import Dropped, DropReason
from schemas.scrape import FetchOutcome, FetchResult, PageFetchSidecar, ScrapeTarget

# ShareGPT page ids are 7 base62 characters in every share seen (wNBG8Gp, QWJhYvA: the 3003 real
# conversations in shared/data); letters and digits only, up to 32 to allow for other lengths.
# Nothing else is accepted, so an id can never spell a path ("/", "\\", "..", NUL).
SHAREGPT_ID = re.compile(r"[A-Za-z0-9]{1,32}")
# The cleaned public dumps split long conversations into parts "<page id>_<n>" (QWJhYvA_0,
# hRPPgZT_17); such an id names the page before the "_": every part comes from one page.
SPLIT_PART_ID = re.compile(r"([A-Za-z0-9]{1,32})_[0-9]{1,6}")
# Longer input is not echoed whole into a ledger detail.
_MAX_SHOWN_CHARS = 80
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Statuses worth another try (RFC 9110 section 15.6: server errors; RFC 6585 section 4: 429).
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_BLOCKED_STATUSES = frozenset({401, 403, 451})
# The page data a fetched ShareGPT page must hold whole: the Next.js script ingest reads (the same
# opening tag curation/ingest/read.py looks for) and the "</script" that ends it.
_NEXT_DATA_OPEN = re.compile(rb"""<script\b[^>]*\bid\s*=\s*["']?__NEXT_DATA__["']?[^>]*>""", re.IGNORECASE)
_SCRIPT_CLOSE = re.compile(rb"</script", re.IGNORECASE)


def _shown(text: str) -> str:
    return repr(text if len(text) <= _MAX_SHOWN_CHARS else text[:_MAX_SHOWN_CHARS] + "...")


def validate_page_id(text: str) -> str | None:
    """None when `text` is a ShareGPT page id; otherwise what is wrong with it (a ledger detail)."""
    if not text:
        return "empty id"
    if len(text) > 32:
        return f"id of {len(text)} characters, over 32: {_shown(text)}"
    if "\x00" in text:
        return f"NUL byte in id: {_shown(text)}"
    if "/" in text or "\\" in text:
        return f"path separator in id (path traversal?): {_shown(text)}"
    if ".." in text:
        return f"'..' in id (path traversal?): {_shown(text)}"
    if SHAREGPT_ID.fullmatch(text) is None:
        return f"not a ShareGPT page id (letters and digits only): {_shown(text)}"
    return None


def page_id_of(text: str) -> str:
    """The page id a requested id names: "QWJhYvA_0" (a split part of a dump) names "QWJhYvA"."""
    part = SPLIT_PART_ID.fullmatch(text)
    return part.group(1) if part else text


def _request_origin(url: httpx.URL) -> Origin | None:
    """The origin httpx will connect to for `url` (its own parser, the one that sends the request);
    None for another scheme, no host, or a user:password@ part (httpx would send it as credentials)."""
    if url.scheme not in DEFAULT_PORTS or not url.host or url.userinfo:
        return None
    return url.scheme, url.host.lower(), url.port or DEFAULT_PORTS[url.scheme]


def _allowed_text(config: ScrapeConfig) -> str:
    return str(sorted(origin_text(o) for o in config.allowed_origins()))


def _invalid(text: str, url: str, reason: DropReason, detail: str, input_file: str | None, line: int) -> FetchResult:
    return FetchResult(
        page_id=text,
        url=url,
        outcome="invalid",
        reason=reason,
        detail=detail,
        input_file=input_file,
        line_index=line,
    )


class TargetList(NamedTuple):
    """Targets to fetch (one per distinct page id), the lines that could not be (outcome
    "invalid"), and how many lines repeated an id already listed (requests, not records)."""

    targets: list[ScrapeTarget]
    dropped: list[FetchResult]
    duplicates: int


def _request_lines(lines: Iterable[str | bytes]) -> Iterable[tuple[int, str, str | None]]:
    """(index, text, None) for each request line; (index, "", problem) for a line that is not UTF-8.

    Blank lines and "#" comments are layout, not requests; every other line is accounted for. Lines
    may come as bytes (a list file read raw), so one undecodable line is a drop, not a crash.
    """
    for index, line in enumerate(lines):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as err:
                yield index, "", f"line {index + 1}: not UTF-8 (byte {line[err.start]:#04x} at offset {err.start})"
                continue
        text = line.strip()
        if text and not text.startswith("#"):
            yield index, text, None


def targets_from_ids(
    lines: Iterable[str | bytes], config: ScrapeConfig, *, input_file: str | None = None
) -> TargetList:
    """One target per distinct page id in `lines` (URL from url_template); bad ids → invalid_id.

    A split-part id ("QWJhYvA_0") names its page ("QWJhYvA"). A repeated id is requested once:
    the later lines are counted in `duplicates` and are neither targets nor drops. A line that is
    not UTF-8 is an invalid_id too.
    """
    targets: list[ScrapeTarget] = []
    dropped: list[FetchResult] = []
    seen: set[str] = set()
    duplicates = 0
    for index, text, undecodable in _request_lines(lines):
        page_id = page_id_of(text)
        problem = undecodable or validate_page_id(page_id)
        if problem is not None:
            dropped.append(_invalid(text, "", "invalid_id", problem, input_file, index))
            continue
        # ScrapeConfig checked that url_template is on the allow-list and that {id} is one path segment.
        url = config.url_template.replace("{id}", page_id)
        if page_id in seen:
            duplicates += 1
            continue
        seen.add(page_id)
        targets.append(ScrapeTarget(page_id=page_id, url=url, input_file=input_file, line_index=index))
    return TargetList(targets, dropped, duplicates)


def targets_from_urls(
    lines: Iterable[str | bytes], config: ScrapeConfig, *, input_file: str | None = None
) -> TargetList:
    """One target per distinct page in a list of page URLs ("https://sharegpt.com/c/<id>").

    The URL must be on an allowed origin (host_not_allowed otherwise), its path, %-decoded and
    with dot segments resolved, of url_template's shape (invalid_url otherwise: a line that is
    not UTF-8 too), and the text in {id}'s place a valid page id (invalid_id otherwise). What is
    requested is the template's path with that id on the URL's origin: never the line as written,
    so its query and fragment are left out. Repeats as in targets_from_ids.
    """
    targets: list[ScrapeTarget] = []
    dropped: list[FetchResult] = []
    seen: set[str] = set()
    duplicates = 0
    prefix, suffix = template_path(config.url_template)
    allowed = config.allowed_origins()
    for index, text, undecodable in _request_lines(lines):
        if undecodable is not None:
            dropped.append(_invalid(text, text, "invalid_url", undecodable, input_file, index))
            continue
        origin = url_origin(text)
        if origin is None or origin not in allowed:
            where = "not an http(s) URL with a host" if origin is None else f"origin {origin_text(origin)}"
            detail = f"{_shown(text)}: {where}, not on the allow-list {_allowed_text(config)}"
            dropped.append(_invalid(text, text, "host_not_allowed", detail, input_file, index))
            continue
        id_text = id_in_path(urlsplit(text).path, url_template=config.url_template)
        if id_text is None:
            detail = f"{_shown(text)}: path is not of url_template's shape {prefix}{{id}}{suffix} once resolved"
            dropped.append(_invalid(text, text, "invalid_url", detail, input_file, index))
            continue
        page_id = page_id_of(id_text)
        problem = validate_page_id(page_id)
        if problem is not None:
            dropped.append(
                _invalid(text, text, "invalid_id", f"{problem} (from URL {_shown(text)})", input_file, index)
            )
            continue
        if page_id in seen:
            duplicates += 1
            continue
        seen.add(page_id)
        url = f"{origin_text(origin)}{prefix}{page_id}{suffix}"
        targets.append(ScrapeTarget(page_id=page_id, url=url, input_file=input_file, line_index=index))
    return TargetList(targets, dropped, duplicates)


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After value (RFC 9110 section 10.2.3): delay-seconds or an
    HTTP-date (a past date is 0); None when absent or not either form."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 section 5.6.7: HTTP-dates are GMT; parsedate_to_datetime leaves "-0000" naive.
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(failed_tries: int, *, config: ScrapeConfig, rng: random.Random) -> float:
    """Seconds before the next try after `failed_tries` failures: "full jitter", uniform over
    [0, min(backoff_max_s, backoff_base_s * 2 ** (failed_tries - 1))] (AWS Architecture Blog,
    "Exponential Backoff and Jitter"): retries of many ids spread out instead of arriving together."""
    exponent = min(max(failed_tries - 1, 0), 62)  # 2**62 s is past any cap; avoids float overflow
    cap = min(config.backoff_max_s, config.backoff_base_s * float(2**exponent))
    return rng.uniform(0.0, cap)


class HostRateLimiter:
    """At most `rate` request starts per second per host, shared by every task of one fetch.

    Each host has a next free start time; a caller takes the next slot and sleeps until it.
    Taking a slot has no await in it, so tasks on one event loop never take the same slot.
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = asyncio.sleep,
    ) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}

    async def wait(self, host: str) -> float:
        """Sleep until `host` may be requested again; returns the seconds slept."""
        if self._interval == 0.0:
            return 0.0
        now = self._clock()
        slot = max(now, self._next.get(host, now))
        self._next[host] = slot + self._interval
        delay = slot - now
        if delay > 0:
            await self._sleep(delay)  # type: ignore[misc]
        return delay


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Try(NamedTuple):
    """One try's end: a final result's fields, or a retryable failure with an optional wait."""

    outcome: FetchOutcome | None  # None: retryable
    reason: DropReason | None
    detail: str
    status: int | None
    data: bytes | None = None
    retry_after: float | None = None


def _retryable(reason: DropReason, detail: str, status: int | None, retry_after: float | None = None) -> _Try:
    return _Try(None, reason, detail, status, None, retry_after)


async def _read_capped(response: httpx.Response, config: ScrapeConfig) -> _Try:
    declared = response.headers.get("content-length")
    expected: int | None = None
    if declared is not None and declared.strip().isdigit():
        expected = int(declared)
        if expected > config.max_page_bytes:
            # Refused from the header alone: a huge body is never downloaded.
            detail = f"Content-Length {expected} > max_page_bytes={config.max_page_bytes}"
            return _Try("failed", "page_too_large", detail, response.status_code)
    body = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > config.max_page_bytes:
                detail = f"body passed max_page_bytes={config.max_page_bytes} while streaming; aborted"
                return _Try("failed", "page_too_large", detail, response.status_code)
    except httpx.RemoteProtocolError as err:
        detail = f"connection closed after {len(body)} of {expected if expected is not None else '?'} bytes: {err}"
        return _retryable("truncated_body", detail, response.status_code)
    # Content-Length counts the bytes as sent: before content decoding when the server encoded
    # the body anyway (we ask for identity), else the body itself.
    received = response.num_bytes_downloaded if response.headers.get("content-encoding") else len(body)
    if expected is not None and received < expected:
        detail = f"{received} of Content-Length {expected} bytes"
        return _retryable("truncated_body", detail, response.status_code)
    # Whole as framed, but not a page: not retried now (the same answer would come back), asked
    # again by the next run ("failed" is not final). HTTP/1.1 ends a body at its Content-Length
    # (RFC 9112 section 6.3), so a server that declares too few bytes cuts its own page; the
    # page data's "</script" is then missing and this catches it.
    if not body:
        return _Try("failed", "empty_input", "HTTP 200 with an empty body", response.status_code)
    opening = _NEXT_DATA_OPEN.search(body)
    if opening is None or _SCRIPT_CLOSE.search(body, opening.end()) is None:
        missing = "no" if opening is None else "an unfinished"
        length = f"Content-Length {expected}" if expected is not None else "no Content-Length"
        detail = f'{missing} <script id="__NEXT_DATA__"> in {len(body)} bytes ({length})'
        return _Try("failed", "no_next_data", detail, response.status_code)
    return _Try("fetched", None, "", response.status_code, bytes(body))


async def _try_once(
    url: str,
    *,
    client: httpx.AsyncClient,
    config: ScrapeConfig,
    limiter: HostRateLimiter,
    now: Callable[[], datetime],
) -> _Try:
    """One try: GET, following up to max_redirects allow-listed redirects by hand.

    Every hop, the first included, is checked as httpx parsed it: scheme, host and port. A hop may
    go to another path of an allowed origin (a moved page): the page is still stored under the
    requested id, and no part of the hop's URL becomes a file name.
    """
    allowed = config.allowed_origins()
    for hop in range(config.max_redirects + 1):
        try:
            origin = _request_origin(httpx.URL(url))
        except httpx.InvalidURL:
            origin = None
        if origin is None or origin not in allowed:
            where = "not an http(s) URL with a host" if origin is None else f"origin {origin_text(origin)}"
            detail = f"{'redirect' if hop else 'request'} to {_shown(url)}: {where}, not on the allow-list "
            return _Try("failed", "redirect_off_allowlist", detail + _allowed_text(config), None)
        # The rate limit's wait is outside the timeout: waiting for our own turn is not the server's fault.
        await limiter.wait(origin[1])
        # Total time to the response head; httpx's own timeouts are per phase (connect, each read).
        async with asyncio.timeout(config.timeout_s) as head_deadline:
            answer = await _request(url, client=client, config=config, now=now, head_deadline=head_deadline)
        if isinstance(answer, _Try):
            return answer
        url = answer
    return _Try("failed", "redirect_off_allowlist", f"more than max_redirects={config.max_redirects} redirects", None)


async def _request(
    url: str,
    *,
    client: httpx.AsyncClient,
    config: ScrapeConfig,
    now: Callable[[], datetime],
    head_deadline: asyncio.Timeout,
) -> _Try | str:
    """One GET: how it ended, or the URL a redirect points to."""
    # identity: the size cap and the Content-Length check then count the very bytes stored, and no
    # small compressed body can expand past the cap in memory before it is counted.
    async with client.stream("GET", url, headers={"accept-encoding": "identity"}) as response:
        status = response.status_code
        if status in _REDIRECT_STATUSES:
            location = response.headers.get("location")
            if not location:
                return _Try("failed", "fetch_failed", f"HTTP {status} without a Location header", status)
            return str(response.url.join(location))
        if status == 200:
            # The head came in time; the body has a limit of its own. Under one total limit, a page
            # over max_page_bytes that streams slowly timed out before reaching the cap, and was
            # asked for again.
            head_deadline.reschedule(None)
            try:
                async with asyncio.timeout(config.body_timeout_s):
                    return await _read_capped(response, config)
            except TimeoutError:
                return _retryable(
                    "fetch_failed", f"body not read within body_timeout_s={config.body_timeout_s}", status
                )
        if status == 404:
            return _Try("not_found", "not_found", "HTTP 404", status)
        if status == 410:
            return _Try("gone", "gone", "HTTP 410", status)
        if status in _BLOCKED_STATUSES:
            return _Try("blocked", "blocked", f"HTTP {status}", status)
        if status == 429 or 500 <= status <= 599:
            wait = None
            if status in _RETRY_AFTER_STATUSES:
                wait = parse_retry_after(response.headers.get("retry-after"), now=now())
            return _retryable("fetch_failed", f"HTTP {status}", status, wait)
        # Other answers (other 4xx, 1xx/2xx/3xx not handled above) will not change on a retry.
        return _Try("failed", "fetch_failed", f"HTTP {status} (not retried)", status)


def client_timeouts(config: ScrapeConfig) -> httpx.Timeout:
    """httpx's per-phase limits for fetch_pages' client: connect, write and pool within timeout_s;
    one read within body_timeout_s, so a pause in a body is judged by the body's own limit (the
    head's total is fetch_pages' timeout_s deadline)."""
    return httpx.Timeout(config.timeout_s, read=config.body_timeout_s)


async def _fetch_target(
    target: ScrapeTarget,
    *,
    client: httpx.AsyncClient,
    config: ScrapeConfig,
    store: RawPageStore,
    limiter: HostRateLimiter,
    slots: asyncio.Semaphore,
    now: Callable[[], datetime],
    sleep: Callable[[float], object],
    rng: random.Random,
) -> FetchResult:
    last = _Try(None, "fetch_failed", "not tried", None)
    tries = 0
    while tries < config.max_tries:
        tries += 1
        async with slots:
            try:
                last = await _try_once(target.url, client=client, config=config, limiter=limiter, now=now)
            except TimeoutError:
                last = _retryable("fetch_failed", f"no response head within timeout_s={config.timeout_s}", None)
            except httpx.TimeoutException as err:
                last = _retryable("fetch_failed", f"{type(err).__name__}: {err}", None)
            except httpx.RemoteProtocolError as err:
                last = _retryable("fetch_failed", f"protocol error: {err}", None)
            except httpx.TransportError as err:
                last = _retryable("fetch_failed", f"{type(err).__name__}: {err}", None)
        if last.outcome is not None:
            break
        if tries < config.max_tries:
            if last.retry_after is not None:
                # Honoured in place of the backoff, capped: a longer wait still costs one try.
                delay = min(last.retry_after, config.max_retry_after_s)
            else:
                delay = backoff_delay(tries, config=config, rng=rng)
            await sleep(delay)  # type: ignore[misc]
    result = _result(target, last, tries, store, now)
    store.record(result)
    return result


def _result(
    target: ScrapeTarget, last: _Try, tries: int, store: RawPageStore, now: Callable[[], datetime]
) -> FetchResult:
    base = FetchResult(
        page_id=target.page_id,
        url=target.url,
        outcome="failed",
        tries=tries,
        status=last.status,
        input_file=target.input_file,
        line_index=target.line_index,
    )
    if last.outcome == "fetched" and last.data is not None:
        sha = store.put(last.data)
        fetched_at = now().astimezone(UTC).isoformat()
        update: dict[str, object] = {
            "outcome": "fetched",
            "sha256": sha,
            "bytes": len(last.data),
            "fetched_at": fetched_at,
        }
    elif last.outcome is None:
        # Out of tries on a retryable failure: its last error is the detail.
        update = {"reason": last.reason, "detail": f"tries={tries} last={last.detail}"}
    else:
        update = {"outcome": last.outcome, "reason": last.reason, "detail": last.detail}
    return base.model_copy(update=update)


async def fetch_pages(
    targets: Sequence[ScrapeTarget],
    *,
    client: httpx.AsyncClient,
    config: ScrapeConfig,
    store: RawPageStore,
    now: Callable[[], datetime] = _utc_now,
    sleep: Callable[[float], object] = asyncio.sleep,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> list[FetchResult]:
    """How every target ended, in target order; each is journaled in `store` as soon as it ends.

    Targets whose id already ended for good in `store` (fetched, not_found, gone, blocked,
    invalid) are not requested: their journaled result comes back with reused=True. `client`
    must not follow redirects itself (follow_redirects=False): hops are checked here.
    """
    rng = rng or random.Random()
    ended = store.ended()
    limiter = HostRateLimiter(config.per_host_rate, clock=clock, sleep=sleep)
    slots = asyncio.Semaphore(config.concurrency)
    results: list[FetchResult | None] = [None] * len(targets)
    pending: list[tuple[int, ScrapeTarget]] = []
    for i, target in enumerate(targets):
        previous = ended.get(target.page_id)
        if previous is not None and store.is_final(previous):
            results[i] = previous.model_copy(
                update={"reused": True, "input_file": target.input_file, "line_index": target.line_index}
            )
        else:
            pending.append((i, target))

    async def run(i: int, target: ScrapeTarget) -> None:
        results[i] = await _fetch_target(
            target,
            client=client,
            config=config,
            store=store,
            limiter=limiter,
            slots=slots,
            now=now,
            sleep=sleep,
            rng=rng,
        )

    # One coroutine per pending target, but only `concurrency` of them hold a request at a time.
    async with asyncio.TaskGroup() as group:
        for i, target in pending:
            group.create_task(run(i, target))
    return [r for r in results if r is not None]


def write_fetched_pages(store: RawPageStore, results: Iterable[FetchResult], pages_dir: Path) -> list[Path]:
    """Copy each fetched page to `pages_dir/<page_id>.html`, where ingest reads saved pages, with
    its URL and fetch time in the hidden sidecar `.<page_id>.html.fetch.json` beside it.

    The sidecar is written first, so ingest never sees a scraped page without its provenance;
    both are atomic. Copies, not hard links: editing a page must never change the store.
    """
    written: list[Path] = []
    for result in results:
        if result.outcome != "fetched" or result.sha256 is None or result.fetched_at is None:
            continue
        problem = validate_page_id(result.page_id)
        if problem is not None:
            raise ValueError(f"refusing to write a page for an invalid id: {problem}")
        page = pages_dir / f"{result.page_id}.html"
        sidecar = PageFetchSidecar(url=result.url, fetched_at=result.fetched_at)
        atomic_write_text(fetch_sidecar_path(page), sidecar.model_dump_json() + "\n")
        with atomic_target(page) as tmp:
            tmp.write_bytes(store.read(result.sha256))
        written.append(page)
    return written


def write_pages_by_day(store: RawPageStore, results: list[FetchResult], pages_root: Path) -> int:
    """write_fetched_pages into pages_root/<YYYY-MM-DD>/ by the UTC day each page was fetched; returns how many."""
    by_day: dict[str, list[FetchResult]] = {}
    for r in results:
        if r.outcome == "fetched" and r.fetched_at:
            by_day.setdefault(r.fetched_at[:10], []).append(r)
    return sum(len(write_fetched_pages(store, day, pages_root / d)) for d, day in sorted(by_day.items()))


def scrape_dropped(results: Iterable[FetchResult]) -> list[Dropped]:
    """A ledger row (stage "scrape") for every result that is not a fetched page."""
    dropped = []
    for r in results:
        if r.outcome == "fetched":
            continue
        conversation_id = r.page_id or f"{Path(r.input_file or 'ids').name}#{r.line_index}"
        dropped.append(
            Dropped(
                conversation_id=conversation_id,
                stage="scrape",
                reason=r.reason or "fetch_failed",
                detail=r.detail,
                input_file=r.input_file,
                record_index=r.line_index,
            )
        )
    return dropped


# Not cached: every fetch is journaled in the page store instead, which makes a re-run free.
FETCH_PAGES = Stage("scrape", fetch_pages, config="scrape")
