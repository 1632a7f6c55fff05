"""Fetching ShareGPT pages: [scrape]."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from schemas.config._base import ConfigSection

# An origin as RFC 6454 defines it: (scheme, host, port), the port always explicit.
Origin = tuple[str, str, int]
DEFAULT_PORTS = {"http": 80, "https": 443}


def url_origin(url: str) -> Origin | None:
    """The origin of an http(s) URL, host lower-cased and the default port made explicit; None for
    another scheme, no host, a bad port, or a user:password@ part (credentials are never sent)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an unbalanced "[" or a port that is not a number in 0-65535
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    return scheme, parts.hostname, DEFAULT_PORTS[scheme] if port is None else port


def origin_text(origin: Origin) -> str:
    """The origin as a URL prefix, scheme://host[:port], the port left out when it is the scheme's default."""
    scheme, host, port = origin
    netloc = f"[{host}]" if ":" in host else host
    return f"{scheme}://{netloc}" if port == DEFAULT_PORTS[scheme] else f"{scheme}://{netloc}:{port}"


def _entry_problem(entry: str) -> str | None:
    """What is wrong with one allowed_hosts entry: a bare host or scheme://host[:port], nothing else."""
    if "://" not in entry:
        if not entry or any(c in "/\\:@?#[]" or c.isspace() for c in entry):
            return "a bare host has no scheme, port, path or spaces (write scheme://host:port for a port)"
        return None
    parts = urlsplit(entry)
    if url_origin(entry) is None:
        return "not an http(s) origin with a host and a valid port, without user:password@"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "an origin has no path, query or fragment"
    return None


class ScrapeConfig(ConfigSection):
    """[scrape]: fetching ShareGPT pages over HTTP: polite, resumable, allow-listed (curation/scrape/)."""

    allowed_hosts: tuple[str, ...] = ()
    """The origins a request may go to, redirects included: "scheme://host[:port]" (http or https, port 80 or 443 when
    left out), or a bare host, which means that host on url_template's scheme and port. url_template's origin is
    always allowed; nothing else is implied, neither "www.", subdomains, another port nor another scheme
    (docs/defaults.md#scrape).
    """
    url_template: str = "https://sharegpt.com/c/{id}"
    """The page URL of an id: "{id}" is one whole path segment, with no query or fragment. A listed URL is requested
    only when its path has this shape (docs/defaults.md#scrape).
    """
    concurrency: int = Field(default=8, gt=0)
    """Requests in flight at once. 8 hides latency while per_host_rate bounds the load on the server
    (docs/defaults.md#scrape).
    """
    per_host_rate: float = Field(default=2.0, ge=0.0)
    """Requests per second per host, 0 = no limit. 2, a small fixed rate per host as polite crawlers use (Scrapy's
    AutoThrottle, Heritrix; docs/defaults.md#scrape).
    """
    timeout_s: float = Field(default=30.0, gt=0.0)
    """Seconds from a request to its response head (connect and the server's answer), each redirect hop anew, so a
    stalled server cannot hold a slot for ever (docs/defaults.md#scrape).
    """
    body_timeout_s: float = Field(default=120.0, gt=0.0)
    """Seconds to read a page body once its head came, apart from timeout_s so that a large page on a slow link is not
    cut and asked again. 120: max_page_bytes at ~1.1 Mbit/s (docs/defaults.md#scrape).
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
    """Redirect hops followed, each checked against the allowed origins. 5; httpx's own default is 20
    (docs/defaults.md#scrape).
    """
    batch_size: int = Field(default=5000, gt=0)
    """Ids per scrape task: one task per chunk, not per page, since a task run costs ~42 ms (docs/defaults.md#scrape).
    """

    @field_validator("allowed_hosts")
    @classmethod
    def _entries_are_hosts_or_origins(cls, entries: tuple[str, ...]) -> tuple[str, ...]:
        problems = [f"{entry!r}: {problem}" for entry in entries if (problem := _entry_problem(entry)) is not None]
        if problems:
            raise ValueError("; ".join(problems))
        return entries

    @field_validator("url_template")
    @classmethod
    def _template_is_a_page_url(cls, template: str) -> str:
        parts = urlsplit(template)
        path = parts.path
        problem = None
        if template.count("{id}") != 1 or "{id}" not in path:
            problem = "needs exactly one {id}, in the path"
        elif url_origin(template) is None:
            problem = "is not an http(s) URL with a host (and without user:password@)"
        elif parts.query or parts.fragment:
            problem = "has a query or a fragment"
        else:
            prefix, suffix = path.split("{id}")
            segments = path.split("/")
            if not prefix.endswith("/") or suffix[:1] not in ("", "/"):
                problem = "must have {id} as a whole path segment (/c/{id})"
            elif "%" in path or any(s in (".", "..") for s in segments):
                problem = "must have a plain path (no %-escapes, no . or .. segments)"
        if problem is not None:
            raise ValueError(f"{template!r} {problem}")
        return template

    def allowed_origins(self) -> frozenset[Origin]:
        """The origins requests may go to: url_template's and every allowed_hosts entry's."""
        template = url_origin(self.url_template)
        assert template is not None  # checked when the config was made
        scheme, _, port = template
        origins = {template}
        for entry in self.allowed_hosts:
            origin = url_origin(entry) if "://" in entry else (scheme, entry.lower(), port)
            assert origin is not None  # checked when the config was made
            origins.add(origin)
        return frozenset(origins)
