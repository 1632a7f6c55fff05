"""Fetching ShareGPT pages: [scrape]."""

from __future__ import annotations

from pydantic import Field

from schemas.config._base import ConfigSection


class ScrapeConfig(ConfigSection):
    """[scrape]: fetching ShareGPT pages over HTTP: polite, resumable, allow-listed (curation/scrape/)."""

    allowed_hosts: tuple[str, ...] = ("sharegpt.com",)
    """Exact host names a request may go to, redirects included. Neither "www." nor subdomains are implied: list
    "www.sharegpt.com" too if a redirect goes there.
    """
    url_template: str = "https://sharegpt.com/c/{id}"
    """The page URL of an id; its host must be on allowed_hosts (checked before any request)."""
    concurrency: int = Field(default=8, gt=0)
    """Requests in flight at once. 8 hides latency while per_host_rate bounds the load on the server
    (docs/defaults.md#scrape).
    """
    per_host_rate: float = Field(default=2.0, ge=0.0)
    """Requests per second per host, 0 = no limit. 2, a small fixed rate per host as polite crawlers use (Scrapy's
    AutoThrottle, Heritrix; docs/defaults.md#scrape).
    """
    timeout_s: float = Field(default=30.0, gt=0.0)
    """Seconds per request in total (connect, read and the whole body), so a stalled server cannot hold a slot for ever.
    """
    max_tries: int = Field(default=5, ge=1)
    """Tries per id, the first request included, before it ends as fetch_failed."""
    # The sleep is uniform(0, min(backoff_max_s, backoff_base_s * 2**try)).
    backoff_base_s: float = Field(default=1.0, ge=0.0)
    """Base of the exponential backoff with full jitter between tries, in seconds (Brooker 2015,
    docs/defaults.md#scrape).
    """
    backoff_max_s: float = Field(default=60.0, ge=0.0)
    """Cap of one backoff sleep, in seconds (docs/defaults.md#scrape)."""
    max_retry_after_s: float = Field(default=300.0, ge=0.0)
    """A 429/503 Retry-After (RFC 9110 section 10.2.3) replaces the backoff, capped at this many seconds: a longer one
    waits this long and still counts as a try, so a server asking for hours cannot stall the run
    (docs/defaults.md#scrape).
    """
    max_page_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    """Largest page body, checked on Content-Length and while streaming. 16 MiB: the largest real conversation is 94 KB
    of JSON, so only broken or hostile responses hit it (docs/defaults.md#scrape).
    """
    user_agent: str = "chatsift/0.1 (ShareGPT page fetcher; +https://github.com/chatsift/chatsift)"
    """The User-Agent header: descriptive, with a contact URL, as polite crawlers send (RFC 9110 section 10.1.5;
    docs/defaults.md#scrape).
    """
    max_redirects: int = Field(default=5, ge=0)
    """Redirect hops followed, each checked against allowed_hosts. 5; httpx's own default is 20
    (docs/defaults.md#scrape).
    """
    batch_size: int = Field(default=5000, gt=0)
    """Ids per scrape task: one task per chunk, not per page, since a task run costs ~42 ms (docs/defaults.md#scrape).
    """
