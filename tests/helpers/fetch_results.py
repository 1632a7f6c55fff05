"""FetchResult records as the scraper journals them, for tests of the fetcher and the page store."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.scrape import FetchResult

# A fixed "now" for results that carry a fetch time.
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def fetch_result(page_id: str, outcome: str, **extra: object) -> FetchResult:
    """How one id ended: `outcome` with the given fields, at URL http://h/c/<page_id>."""
    return FetchResult.model_validate({"page_id": page_id, "url": f"http://h/c/{page_id}", "outcome": outcome, **extra})
