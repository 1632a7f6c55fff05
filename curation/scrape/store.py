"""The scraper's page store: raw pages by content hash and a journal of how every id ended,
shared by every scrape run of one output folder (schemas.run_layout.ScrapePaths.store)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

from pydantic import ValidationError

from schemas.errors import InputError
from schemas.files import atomic_write_bytes
from schemas.scrape import FINAL_OUTCOMES, FetchResult


class JournalError(InputError):
    """The store's journal holds a line that is not a FetchResult (other than a torn last line)."""


class RawPageStore:
    """Raw pages by content hash plus a journal of how every id ended; shared by scrape runs.

    root/objects/<sha256[:2]>/<sha256>: raw page bytes, written atomically (temp file + rename).
    root/journal.jsonl: one FetchResult a line, appended with flush + fsync as each id ends, so a
    kill loses at most the requests in flight. The latest line for an id is its state.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        self.journal = root / "journal.jsonl"
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)
        self._repair_torn_tail()

    def _repair_torn_tail(self) -> None:
        # A kill during an append can leave a last line without its newline; it is cut off so the
        # next append starts a clean line (that id simply had not ended).
        if not self.journal.exists():
            return
        data = self.journal.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(self.journal, "r+b") as f:
                f.truncate(keep)
                f.flush()
                os.fsync(f.fileno())

    def object_path(self, sha256: str) -> Path:
        return self.objects / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store raw page bytes under their sha256 (once: the same bytes are never rewritten)."""
        sha = hashlib.sha256(data).hexdigest()
        path = self.object_path(sha)
        if not path.exists():
            atomic_write_bytes(path, data)
        return sha

    def read(self, sha256: str) -> bytes:
        return self.object_path(sha256).read_bytes()

    def record(self, result: FetchResult) -> None:
        """Append how an id ended, durably (flush + fsync) before returning."""
        line = result.model_copy(update={"reused": False}).model_dump_json() + "\n"
        with self._lock, open(self.journal, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def ended(self) -> dict[str, FetchResult]:
        """The latest journaled result per page id."""
        latest: dict[str, FetchResult] = {}
        if not self.journal.exists():
            return latest
        with open(self.journal, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                try:
                    result = FetchResult.model_validate_json(line)
                except ValidationError as err:
                    raise JournalError(f"{self.journal} line {number} is not a FetchResult: {err}") from err
                latest[result.page_id] = result
        return latest

    def is_final(self, result: FetchResult) -> bool:
        """Whether an id that ended so is not requested again: fetched (with its bytes still
        here), not_found, gone, blocked or invalid. "failed" ids are requested again."""
        if result.outcome not in FINAL_OUTCOMES:
            return False
        return result.outcome != "fetched" or (result.sha256 is not None and self.object_path(result.sha256).exists())
