"""What fetching one ShareGPT page ended as, and the provenance sidecar written beside a page."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.ledger import DropReason

# fetched: the raw page is in the store. not_found (404), gone (410), blocked (401/403/451) and
# invalid (bad id, URL or origin, never requested) are final answers. failed: no page after
# max_tries, or an answer that retrying now cannot change (another 4xx, too large, redirected off
# the allow-list, a 200 that is empty or has no whole __NEXT_DATA__ script).
FetchOutcome = Literal["fetched", "not_found", "gone", "blocked", "failed", "invalid"]

# Outcomes a re-run does not request again: the page is stored or the server answered for good.
# "failed" is left out on purpose: those were mostly transient (429, 5xx, timeouts), so a re-run
# tries them again.
FINAL_OUTCOMES: frozenset[str] = frozenset({"fetched", "not_found", "gone", "blocked", "invalid"})


class FetchResult(BaseModel):
    """How one page id ended: one line of the store's journal, and a ledger row unless fetched."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    page_id: str
    url: str
    outcome: FetchOutcome
    # The ledger reason for every outcome but "fetched".
    reason: DropReason | None = None
    detail: str = ""
    tries: int = 0
    # The last HTTP status seen, None when no response came (timeouts, never requested).
    status: int | None = None
    # sha256 hex of the raw page bytes, the key in the store's objects/.
    sha256: str | None = None
    bytes: int = 0
    # When the page was fetched, ISO 8601 UTC; None when not fetched.
    fetched_at: str | None = None
    # Where the id came from: the ids/urls file and its 0-based line, for the ledger.
    input_file: str | None = None
    line_index: int | None = None
    # True when the id had ended in an earlier run and this result came from the journal:
    # nothing was requested for it this time.
    reused: bool = False


class ScrapeTarget(BaseModel):
    """One page to fetch: a validated page id, its URL, and the input line it came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    page_id: str
    url: str
    input_file: str | None = None
    line_index: int | None = None

    @property
    def id(self) -> str:
        return self.page_id


class PageFetchSidecar(BaseModel):
    """`.<page>.html.fetch.json` beside a scraped page: read by ingest into Provenance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    fetched_at: str
