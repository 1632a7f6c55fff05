"""curation.scrape.store: the journal and the raw pages by content hash."""

from __future__ import annotations

from pathlib import Path

from curation.scrape.store import RawPageStore
from tests.helpers.fetch_results import NOW, fetch_result


def test_journal_latest_wins_and_a_torn_tail_is_cut(tmp_path: Path) -> None:
    store = RawPageStore(tmp_path / "store")
    store.record(fetch_result("a", "failed", reason="fetch_failed", detail="tries=5 last=HTTP 500"))
    store.record(fetch_result("b", "not_found", reason="not_found"))
    sha = store.put(b"<html></html>")
    store.record(fetch_result("a", "fetched", sha256=sha, bytes=13, fetched_at=NOW.isoformat()))
    with open(store.journal, "a", encoding="utf-8") as f:
        f.write('{"page_id": "c", "url": "x", "outc')  # killed mid-append
    reopened = RawPageStore(tmp_path / "store")
    ended = reopened.ended()
    assert {k: v.outcome for k, v in ended.items()} == {"a": "fetched", "b": "not_found"}
    assert reopened.is_final(ended["a"]) and reopened.is_final(ended["b"])
    assert not reopened.is_final(fetch_result("x", "failed", reason="fetch_failed"))
    reopened.object_path(sha).unlink()
    assert not reopened.is_final(ended["a"])  # the bytes are gone: fetch again
