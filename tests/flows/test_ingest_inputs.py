"""Hostile input paths through the ingest flow and the CLI: drops reach the run's ledger, the run goes on."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from curation.ingest.read import list_inputs
from flows.cli import main
from flows.execution import plain_execution
from flows.ingest import ingest_stage
from schemas import RunReport, StageReport
from schemas.config import CurationConfig
from schemas.run_layout import RunPaths
from tests.helpers.assertions import assert_nothing_lost
from tests.helpers.fifo import fifo_unblocked_after

CONFIG = CurationConfig()


def _records(prefix: str, n: int) -> list[dict[str, Any]]:
    question = "What is a prime number, and why does {} matter here?"
    answer = "A whole number above 1 whose only divisors are 1 and itself; {} is one example."
    turns = [("human", question), ("gpt", answer)]
    return [
        {"id": f"{prefix}{i}", "conversations": [{"from": who, "value": text.format(i)} for who, text in turns]}
        for i in range(n)
    ]


def _ingest(inputs: list[Path], out: Path) -> tuple[StageReport, RunPaths]:
    paths = RunPaths.for_run(out, "run1", CONFIG)
    with plain_execution():
        _, report, _ = ingest_stage(list_inputs(inputs), paths, CONFIG)
    return report, paths


def _ledger(paths: RunPaths) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(f) for f in sorted(paths.ledger_dir.glob("*.parquet"))])


def test_fifos_sockets_and_dead_links_become_ledger_rows_and_the_run_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(_records("a", 3)))
    (folder / "dangling.json").symlink_to(folder / "gone.json")
    os.mkfifo(folder / "fifo.json")
    given_fifo = tmp_path / "given.jsonl"
    os.mkfifo(given_fifo)
    with fifo_unblocked_after(folder / "fifo.json", seconds=20), fifo_unblocked_after(given_fifo, seconds=20):
        report, paths = _ingest([folder, given_fifo], tmp_path / "out")
    assert (report.inputs, report.kept, report.dropped) == (6, 3, 3)
    assert report.dropped_by_reason == {"not_a_readable_file": 3}
    ledger = _ledger(paths)
    by_file = dict(zip(ledger["input_file"], ledger["detail"], strict=True))
    assert sorted(by_file) == sorted(str(p) for p in [folder / "dangling.json", folder / "fifo.json", given_fifo])
    assert "FIFO" in by_file[str(given_fifo)] and "does not exist" in by_file[str(folder / "dangling.json")]
    assert paths.ledger_part("ingest", "inputs").exists()


def test_a_file_reached_twice_is_read_once_and_the_run_log_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(_records("a", 5)))
    (folder / "b.json").write_text(json.dumps(_records("b", 2)))
    with caplog.at_level(logging.WARNING, logger="chatsift"):
        report, _ = _ingest([folder / "a.json", folder, folder / "b.json"], tmp_path / "out")
    assert (report.inputs, report.kept, report.dropped) == (7, 7, 0)
    assert len(report.warnings) == 2 and all("read once" in w for w in report.warnings)
    assert [r.getMessage() for r in caplog.records if "read once" in r.getMessage()] == report.warnings


@pytest.mark.slow
def test_curate_with_the_same_input_twice_accounts_for_every_record(
    tmp_path: Path, prefect_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.json").write_text(json.dumps(_records("a", 5)))
    monkeypatch.chdir(tmp_path)
    assert main(["curate", "a.json", "a.json", "./a.json", "--out", "o", "--run-id", "twice"]) == 0
    report = RunReport.model_validate_json((tmp_path / "o" / "twice" / "report.json").read_text())
    assert_nothing_lost(report)
    assert report.records_read == 5
    ingest = next(s for s in report.stages if s.stage == "ingest")
    assert ingest.warnings == ["input a.json is listed more than once: read once"] * 2
