"""Fetching ShareGPT pages: [scrape]."""

from __future__ import annotations

from pydantic import Field

from schemas.config._base import ConfigSection


class ScrapeConfig(ConfigSection):
    """Fetching ShareGPT pages over HTTP: polite, resumable, allow-listed (curation/scrape.py)."""

    # Exact host names a request may go to, redirects included. "www." of a listed host is NOT
    # implied and neither are subdomains: list "www.sharegpt.com" too if a redirect goes there.
    allowed_hosts: tuple[str, ...] = ("sharegpt.com",)
    # The page URL of an id; its host must be on allowed_hosts (checked before any request).
    url_template: str = "https://sharegpt.com/c/{id}"
    # Requests in flight at once. 8 keeps a single host's load modest while hiding latency;
    # the per-host rate below is what bounds the load on the server.
    concurrency: int = Field(default=8, gt=0)
    # Requests per second per host, 0 = no limit. Polite-crawling convention: a fixed small
    # rate per host (Scrapy's AutoThrottle targets 1 concurrent request per host, DOWNLOAD_DELAY
    # 0.5-1 s; Heritrix's politeness delay is of the same order).
    per_host_rate: float = Field(default=2.0, ge=0.0)
    # Per request, total (connect + read + whole body): a stalled server cannot hold a slot forever.
    timeout_s: float = Field(default=30.0, gt=0.0)
    # Tries per id (first request included) before it ends as fetch_failed.
    max_tries: int = Field(default=5, ge=1)
    # Exponential backoff with full jitter: sleep uniform(0, min(backoff_max_s, backoff_base_s * 2**try))
    # (AWS Architecture Blog, "Exponential Backoff and Jitter", Brooker 2015).
    backoff_base_s: float = Field(default=1.0, ge=0.0)
    backoff_max_s: float = Field(default=60.0, ge=0.0)
    # A 429/503 Retry-After (RFC 9110 section 10.2.3: seconds or an HTTP-date) is honoured in place
    # of the backoff, capped at this: a longer one waits this long and still counts as a try, so
    # a server asking for hours cannot stall the run (the id ends as fetch_failed after max_tries).
    max_retry_after_s: float = Field(default=300.0, ge=0.0)
    # Largest page body: the largest real conversation is 94 KB of JSON (IngestConfig), a page
    # with markup a few times that; 16 MiB stops only broken or hostile responses, checked from
    # Content-Length first and then by counting the streamed body.
    max_page_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    # A descriptive User-Agent with a contact URL, as polite crawlers send (RFC 9110 section 10.1.5).
    user_agent: str = "chatsift/0.1 (ShareGPT page fetcher; +https://github.com/chatsift/chatsift)"
    # Redirect hops followed (each checked against allowed_hosts); httpx's own default is 20.
    max_redirects: int = Field(default=5, ge=0)
    # Targets per scrape task: one task per chunk, not per page (prefect.md: ~5 ms and a
    # server row per task run).
    batch_size: int = Field(default=5000, gt=0)
