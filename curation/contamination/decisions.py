"""Reviewer decisions on flagged pairs, read from the CSV or JSONL a reviewer edits."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from schemas.contamination import ReviewerDecision
from schemas.errors import InputError

REQUIRED_COLUMNS = ("conversation_id", "benchmark", "item_id", "decision")


class DecisionsFileError(InputError):
    """The decisions file cannot be used as it is; the message names the line and the fix."""


def read_decisions(path: Path) -> list[ReviewerDecision]:
    """Decisions from a CSV (header row; the report's flagged_pairs.csv works as a template) or
    JSONL file. Columns besides conversation_id, benchmark, item_id, decision, reviewer and note
    are ignored, so a reviewer can fill in the decision column of the exported pairs and save."""
    if not path.is_file():
        raise DecisionsFileError(f"decisions file not found: {path} (fix contamination.decisions_file)")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix == ".jsonl":
        rows: list[tuple[int, dict]] = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append((n, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise DecisionsFileError(f"{path}:{n}: not JSON ({e})") from e
    else:
        reader = csv.DictReader(io.StringIO(text))
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DecisionsFileError(f"{path}: missing column(s) {missing}; the header needs {list(REQUIRED_COLUMNS)}")
        rows = [(n, row) for n, row in enumerate(reader, start=2)]
    decisions = []
    for n, row in rows:
        if not isinstance(row, dict):
            raise DecisionsFileError(f"{path}:{n}: expected an object with {list(REQUIRED_COLUMNS)}")
        if not str(row.get("decision") or "").strip():
            continue  # an exported pair nobody has ruled on yet
        fields = {k: str(row.get(k) or "").strip() for k in (*REQUIRED_COLUMNS, "reviewer", "note")}
        fields["decision"] = fields["decision"].lower()
        try:
            decisions.append(ReviewerDecision.model_validate(fields))
        except ValidationError as e:
            problems = "; ".join(f"{err['loc'][0]}: {err['msg']}" for err in e.errors(include_url=False))
            raise DecisionsFileError(f"{path}:{n}: {problems} (decision must be keep or remove)") from e
    return decisions


def decisions_by_conversation(decisions: Sequence[ReviewerDecision]) -> dict[str, list[ReviewerDecision]]:
    """Decisions grouped by conversation id; a later row for the same pair overrides an earlier one."""
    latest: dict[tuple[str, str, str], ReviewerDecision] = {}
    for d in decisions:
        latest[(d.conversation_id, d.benchmark, d.item_id)] = d
    grouped: defaultdict[str, list[ReviewerDecision]] = defaultdict(list)
    for d in latest.values():
        grouped[d.conversation_id].append(d)
    return dict(grouped)
