"""A run's files on disk: damaged cache and stage files, a run that fails its ledger balance, raw text at rest.

Each test runs the real curate flow on the demo input (plus planted secrets) on the plain runner:
the same flow functions, without a Prefect server, a second or two per run once the embedder
is loaded.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from demo.inputs import DEMO_CONFIG, write_demo_inputs
from flows.cli import main
from flows.curate import LedgerImbalanceError, curate_flow
from flows.execution import plain_execution
from schemas import RunReport
from schemas.config import CurationConfig
from schemas.files import file_digest
from schemas.run_layout import RunRecord, read_run_to_resume
from tests.helpers.assertions import assert_nothing_lost
from tests.helpers.runs import assert_same_outputs
from tests.helpers.secret_cases import LOOK_ALIKES, PLANTED, planted_secret_strings

pytestmark = pytest.mark.slow

# One of each kind the secrets stage redacts (curation/clean/secrets.py): an OpenAI key, an AWS
# access key id, a GitHub token, an e-mail address and an international phone number.
OLDER_KINDS = (
    "sk-Ab3dEf6hIj9kLmN0pQr5tUv8wXyZ1234abcd",
    "AKIAQ7RT2XV9LMN4PZ3K",
    "ghp_Zq8WmR4tYp2LkN6vBx9CjH3sDf7GaE1uIo5T",
    "jane.doe.planted@corpmail.io",
    "+44 20 7946 0958",
)
# ... and every newer kind (tests/helpers/secret_cases.py): AWS pairs, Stripe, JWTs, keys split by
# invisible characters, French phones, credit cards, public IPv4 addresses.
PLANTED_SECRETS = tuple(
    dict.fromkeys([*OLDER_KINDS, *(s for t, e in PLANTED.values() for s in planted_secret_strings(t, e))])
)
# The grep looks for the secrets no look-alike holds: "ref 12 06 12 34 56 78" is kept whole, phone included.
GREPPED_SECRETS = [s for s in PLANTED_SECRETS if not any(s in text for text in LOOK_ALIKES.values())]
ANSWER = "The value is well formed, so check the account's permissions first, then rotate it and try again."


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The demo inputs, and a JSONL where every planted secret is in a kept record and in one
    the shape stage drops (no assistant turn), before the secrets stage ever sees it."""
    folder = tmp_path_factory.mktemp("inputs")
    demo = write_demo_inputs(folder / "demo")
    records = []
    for i, secret in enumerate(OLDER_KINDS):
        question = f"Here is my credential {secret} for deployment step {i}; why does the service reject it?"
        answer = f"The value you pasted ({secret}) looks well formed; check the account's permissions, then rotate it."
        records.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
        records.append({"messages": [{"role": "user", "content": f"Only a question about {secret}, record {i}."}]})
    # Every kind the stage knows, each in a kept record's prompt and in its title.
    for k, (text, _) in enumerate(PLANTED.values()):
        turns = [("human", f"Why does the service reject this (case {k})?\n{text}"), ("gpt", f"Case {k}: {ANSWER}")]
        records.append(
            {"id": f"kind-{k}", "title": f"About {text}", "conversations": [{"from": f, "value": v} for f, v in turns]}
        )
    # The look-alikes, which must come out as they went in.
    rounds = [
        (f"Is line {k} safe to publish: {text} ?", f"Line {k}: {ANSWER}") for k, text in enumerate(LOOK_ALIKES.values())
    ]
    turns = [(role, value) for question, answer in rounds for role, value in (("human", question), ("gpt", answer))]
    records.append({"id": "look-alikes", "conversations": [{"from": f, "value": v} for f, v in turns]})
    planted = folder / "planted.jsonl"
    planted.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return [*demo, planted]


def _curate(inputs: list[Path], out: Path, run_id: str, config: CurationConfig = DEMO_CONFIG) -> RunReport:
    with plain_execution():
        return curate_flow.fn(inputs=inputs, out_dir=out, config=config, run_id=run_id)


def _files(folder: Path) -> Iterator[Path]:
    return (f for f in sorted(folder.rglob("*")) if f.is_file())


def _published(run: Path) -> list[Path]:
    """What a trainer or reviewer reads from a finished run."""
    return [f for name in ("conversations", "shards", "ledger") for f in _files(run / name)] + [
        run / name for name in ("report.json", "report.md", "lineage.json")
    ]


def _entry(cache: Path, stage: str) -> tuple[Path, dict[str, Any]]:
    """The demo's one cache entry of `stage` (its input is one part) and its record."""
    (record,) = [p for p in (cache / stage).glob("*/*/result.json") if not p.parent.name.startswith(".")]
    return record.parent, json.loads(record.read_text(encoding="utf-8"))


def _cached_output(entry: Path, record: dict[str, Any]) -> Path:
    """The cached copy of the entry's stages/ part (the others are ledger parts)."""
    (name,) = [n for n, f in record["files"].items() if (f if isinstance(f, str) else f["path"]).startswith("stages/")]
    return entry / name


def _drop_last_row(path: Path) -> None:
    """Rewrite `path` as a valid Parquet file of the same schema, one row short."""
    table = pq.read_table(path)
    path.unlink()  # a new inode: never write through a link into the run that made it
    pq.write_table(table.slice(0, table.num_rows - 1), path)


def _digests(files: list[Path]) -> dict[Path, str]:
    return {f: file_digest(f) for f in files}


def test_published_files_share_no_inode_and_survive_damage_to_stages_and_cache(
    inputs: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = _curate(inputs, out, "first")
    run = out / "first"
    published = _published(run)
    assert len(published) > 6
    assert [f for f in published if f.stat().st_nlink != 1] == []
    others = {(f.stat().st_dev, f.stat().st_ino) for folder in (out / "cache", run / "stages") for f in _files(folder)}
    assert others and not {(f.stat().st_dev, f.stat().st_ino) for f in published} & others

    # One byte-damaged file in stages/ and one in the cache: the published files do not move ...
    before = _digests(published)
    (split_part,) = (run / "stages" / "split").glob("part-*.parquet")
    os.truncate(split_part, split_part.stat().st_size // 2)
    entry, record = _entry(out / "cache", "split")
    cached = _cached_output(entry, record)
    whole = cached.stat().st_size
    os.truncate(cached, whole // 2)
    assert _digests(published) == before
    # ... and the next run sees the damaged entry, computes the part again and says so.
    again = _curate(inputs, out, "again")
    assert_same_outputs(run, out / "again")
    (rejected,) = again.cache_entries_rejected
    expected = f"{cached.name} is {whole // 2} bytes, the record says {whole}"
    assert (rejected.stage, rejected.reason) == ("split", expected)
    assert first.kept == again.kept
    assert_nothing_lost(again)


def test_damaged_cache_entries_are_computed_again_and_reported(inputs: list[Path], tmp_path: Path) -> None:
    """The issue's three: a truncated cache Parquet, a truncated result.json, and a valid Parquet one row short."""
    out = tmp_path / "out"
    _curate(inputs, out, "first")
    clean_entry, clean_record = _entry(out / "cache", "clean")
    clean_file = _cached_output(clean_entry, clean_record)
    os.truncate(clean_file, clean_file.stat().st_size // 2)
    tokenize_entry, _ = _entry(out / "cache", "tokenize")
    record_text = (tokenize_entry / "result.json").read_text(encoding="utf-8")
    (tokenize_entry / "result.json").write_text(record_text[: len(record_text) // 2], encoding="utf-8")
    split_entry, split_record = _entry(out / "cache", "split")
    _drop_last_row(_cached_output(split_entry, split_record))

    again = _curate(inputs, out, "again")
    assert_same_outputs(out / "first", out / "again")
    assert_nothing_lost(again)
    rejected = {r.stage: r.reason for r in again.cache_entries_rejected}
    assert sorted(rejected) == ["clean", "split", "tokenize"]
    assert "bytes" in rejected["clean"] and "result.json" in rejected["tokenize"] and "the record" in rejected["split"]
    markdown = (out / "again" / "report.md").read_text(encoding="utf-8")
    assert "3 damaged stage-cache entries" in markdown
    # the entries were written again: a third run reuses every part, and rejects nothing
    third = _curate(inputs, out, "third")
    assert third.cache_entries_rejected == []
    assert all(s.parts_reused == s.parts for s in third.stages if s.stage != "ingest")


def test_run_failing_its_ledger_balance_leaves_nothing_that_looks_finished(
    inputs: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cache entry one row short whose record matches it (what a bug in a stage would store): the
    run loses a record, and must fail without publishing anything a trainer could take as finished."""
    out = tmp_path / "out"
    _curate(inputs, out, "first")
    entry, record = _entry(out / "cache", "split")
    part = _cached_output(entry, record)
    _drop_last_row(part)
    described = record["files"][part.name]
    if isinstance(described, dict):
        described.update(size=part.stat().st_size, blake2b=file_digest(part))
    (entry / "result.json").write_text(json.dumps(record), encoding="utf-8")

    with pytest.raises(LedgerImbalanceError, match=" != "):  # the run total or a stage boundary
        _curate(inputs, out, "lost")
    run = out / "lost"
    assert not [
        name
        for name in ("report.json", "report.md", "lineage.json", "shards", "conversations")
        if (run / name).exists()
    ]
    assert not [p for p in run.iterdir() if p.name.startswith(".tmp-")]
    status = RunRecord.model_validate_json((run / "run.json").read_text(encoding="utf-8"))
    assert status.status == "failed" and "LedgerImbalanceError" in status.error and status.finished_at
    assert not (run / "stages" / "ingest").exists()
    capsys.readouterr()
    assert main(["runs", "list", str(out)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "  finished " in lines["first"] and "  failed " in lines["lost"] and "LedgerImbalanceError" in lines["lost"]
    assert main(["shards", "verify", str(run / "shards")]) != 0
    # resuming the failed run, once the entry is gone, finishes it
    for f in _files(entry):
        f.unlink()
    resumed_inputs, resumed_out, resumed_config, run_id = read_run_to_resume(run)
    _curate(resumed_inputs, resumed_out, run_id, resumed_config)
    assert RunRecord.model_validate_json((run / "run.json").read_text(encoding="utf-8")).status == "finished"
    assert_same_outputs(out / "first", run)


def _holding_secrets(folder: Path) -> dict[str, list[str]]:
    """Every file under `folder` whose bytes hold a planted secret; Parquet is also read (its pages
    may be compressed) and its rows searched."""
    found = {}
    for f in _files(folder):
        blob = f.read_bytes()
        if f.suffix == ".parquet":
            blob += json.dumps(pq.read_table(f).to_pylist(), default=str, ensure_ascii=False).encode()
        hits = [s for s in GREPPED_SECRETS if s.encode() in blob]
        if hits:
            found[str(f.relative_to(folder))] = hits
    return found


def test_no_planted_secret_is_kept_on_disk_after_a_run(inputs: list[Path], tmp_path: Path) -> None:
    assert all(any(s in p.read_text("utf-8", "replace") for p in inputs if p.is_file()) for s in PLANTED_SECRETS)
    out = tmp_path / "out"
    report = _curate(inputs, out, "run")
    # the premise: the planted records reach the secrets stage, which redacts every secret
    secrets = next(s for s in report.stages if s.stage == "secrets")
    assert sum(secrets.changed.values()) >= 2 * len(OLDER_KINDS) + 2 * len(PLANTED)
    assert (out / "cache").is_dir() and (out / "run" / "stages").is_dir()
    assert _holding_secrets(out) == {}
    # Titles were redacted, not dropped; the look-alikes came through unchanged.
    conversations = pq.read_table(out / "run" / "conversations").to_pylist()
    titles = [c["title"] for c in conversations if c["id"].startswith("kind-")]
    assert len(titles) == len(PLANTED) and all(re.search(r"<[A-Z_]+>", t) for t in titles)
    kept_text = "\n".join(t["content"] for c in conversations for t in c["turns"])
    assert [name for name, text in LOOK_ALIKES.items() if text not in kept_text] == []


def test_raw_intermediates_are_kept_when_asked(inputs: list[Path], tmp_path: Path) -> None:
    """keep_raw_intermediates: the ingest parts stay in stages/ingest and the cache, unredacted, and are reused."""
    data = DEMO_CONFIG.model_dump(mode="json")
    data["run"]["keep_raw_intermediates"] = True
    config = CurationConfig.model_validate(data)
    out = tmp_path / "out"
    _curate(inputs, out, "first", config)
    again = _curate(inputs, out, "again", config)
    ingest = next(s for s in again.stages if s.stage == "ingest")
    assert ingest.parts_reused == ingest.parts >= 1
    kept = _holding_secrets(out)
    assert any(name.startswith("again/stages/ingest/") for name in kept)
    assert any(name.startswith("cache/ingest/") for name in kept)
    assert not any(name.startswith(("again/conversations/", "again/shards/")) for name in kept)
