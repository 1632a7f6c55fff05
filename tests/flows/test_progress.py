"""Progress where the user looks (flows/progress.py): the terminal's bars carry the figures the run's progress
artifact does, for curate (stages), each batch of parts (contamination's parts checked, shards' parts
tokenized); nothing is drawn where stderr is no terminal. Scrape's and finetune's bars are checked in
test_scrape.py and test_finetune.py, on their own commands."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from demo.inputs import DEMO_CONFIG
from flows import progress
from flows.cli import main
from flows.execution import plain_execution
from flows.progress import RunProgress, terminal_progress
from tests.helpers.terminal import terminal_text


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=160), out


def test_a_bar_shows_done_of_total_and_the_note() -> None:
    console, out = _console()
    with plain_execution(), terminal_progress("on", console=console):
        pages = RunProgress(key="scrape-progress", title="scrape", total=40, unit="pages")
        pages.update(25, "24 fetched")
        assert pages.description() == "25 of 40 pages; 24 fetched"
        pages.update(40, "39 fetched")
    shown = terminal_text(out.getvalue())
    assert "scrape" in shown and "40/40 pages" in shown and "39 fetched" in shown


def test_no_bars_without_a_terminal_or_when_off() -> None:
    piped = Console(file=io.StringIO(), width=160)  # not a terminal
    for mode, console in (("auto", piped), ("off", _console()[0])):
        with plain_execution(), terminal_progress(mode, console=console):  # type: ignore[arg-type]
            assert progress._terminal is None
            RunProgress(key="k", title="scrape", total=3, unit="pages").update(3)
        assert console.file.getvalue() == ""  # type: ignore[attr-defined]


def test_curate_contamination_and_shards_build_show_their_bars(
    tmp_path: Path, prefect_server: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "demo.json"
    config.write_text(DEMO_CONFIG.model_dump_json())
    assert main(["demo", "--out", str(tmp_path / "runs"), "--progress", "on"]) == 0
    curate = terminal_text(capsys.readouterr().err)
    assert "7/7 stages done" in curate and "records read" in curate
    assert "clean-part" in curate  # a batch of parts has its bar while it runs
    [run] = [p for p in (tmp_path / "runs").iterdir() if p.name not in ("demo-input", "cache")]
    parts = len(list((run / "conversations").glob("part-*.parquet")))
    conversations = str(run / "conversations")

    assert main(["contamination", conversations, "--out", str(tmp_path / "c"), "--config", str(config)]) == 0
    assert "contamination-part" not in terminal_text(capsys.readouterr().err)  # stderr is no terminal here
    argv = ["contamination", conversations, "--out", str(tmp_path / "c"), "--config", str(config), "--progress", "on"]
    assert main(argv) == 0
    assert (
        "contamination-part" in (shown := terminal_text(capsys.readouterr().err)) and f"{parts}/{parts} parts" in shown
    )

    argv = ["shards", "build", conversations, "--out", str(tmp_path / "s"), "--config", str(config), "--progress", "on"]
    assert main(argv) == 0
    shown = terminal_text(capsys.readouterr().err)
    assert "tokenize-part" in shown and f"{parts}/{parts} parts" in shown
