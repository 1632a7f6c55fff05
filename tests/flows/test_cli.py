"""The `chatsift` command as a user runs it: config errors fail early, the demo runs for real."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.cli import main
from schemas import RunReport
from schemas.config import CurationConfig
from schemas.config.file import load_config
from schemas.errors import ConfigError
from tests.conftest import environ_with_every_server_service


def test_config_prints_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["shape"]["min_chars"] == 16 and printed["run"]["batch_size"] == 5000
    assert main(["config"]) == 0
    toml = capsys.readouterr().out
    # commented TOML: each table with its description, each unset option commented out
    assert "[shape]\n" in toml and "\nmin_chars = 16\n" in toml and "\n# cache_dir =  (unset)\n" in toml
    assert "# [run]: how a run is cut into tasks" in toml and "[[contamination.rephrase_rules]]" in toml


def test_the_printed_config_saved_and_passed_back_runs_as_the_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], prefect_server: None
) -> None:
    """`chatsift config > c.toml && chatsift curate demo-input --config c.toml`: the same run as no config."""
    import polars as pl

    from demo.inputs import write_demo_inputs

    assert main(["config"]) == 0
    saved = tmp_path / "c.toml"
    saved.write_text(capsys.readouterr().out)
    assert load_config(saved) == CurationConfig()
    inputs = [str(p) for p in write_demo_inputs(tmp_path / "demo-input")]
    for run_id, extra in (("saved", ["--config", str(saved)]), ("none", [])):
        argv = ["curate", *inputs, "--out", str(tmp_path / "runs"), "--run-id", run_id, "--progress", "off"]
        # outside capsys: Prefect's console handler keeps the stream it first meets, and capsys's closes with
        # this test, which broke the next test's run in this process
        with capsys.disabled():
            assert main([*argv, *extra]) == 0
    runs = tmp_path / "runs"
    assert (runs / "saved" / "config.json").read_text() == (runs / "none" / "config.json").read_text()
    for name in ("saved", "none"):
        assert (runs / name / "shards" / "manifest.json").is_file()
    conversations = [pl.read_parquet(runs / r / "conversations" / "*.parquet").sort("id") for r in ("saved", "none")]
    assert conversations[0].equals(conversations[1]) and conversations[0].height > 0
    reports = [RunReport.model_validate_json((runs / r / "report.json").read_text()) for r in ("saved", "none")]
    assert [(s.stage, s.kept, s.dropped_by_reason) for s in reports[0].stages] == [
        (s.stage, s.kept, s.dropped_by_reason) for s in reports[1].stages
    ]


def test_config_file_overrides_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text('[model]\nallowed_models = ["Model: GPT-4"]\n[blocked]\nmode = "drop"\n')
    config = load_config(toml)
    assert config.model.allowed_models == ("Model: GPT-4",) and config.blocked.mode == "drop"
    assert config.shape.min_chars == 16
    assert config.config_hash() != load_config(None).config_hash()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[run]\nbatch_size = 0\n", "run.batch_size"),
        ("[shape]\nmin_char = 3\n", "shape.min_char"),
        ('[blocked]\nmode = "delete"\n', "blocked.mode"),
        ("[run\n", "not valid TOML"),
    ],
)
def test_bad_config_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    (tmp_path / "in.jsonl").write_text("{}\n")
    out = tmp_path / "out"
    assert main(["curate", str(tmp_path / "in.jsonl"), "--out", str(out), "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "chatsift: error" in err
    assert not out.exists()
    with pytest.raises(ConfigError):
        load_config(bad)


def test_missing_input_fails_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["curate", str(tmp_path / "nope.json"), "--out", str(tmp_path / "out")]) == 2
    assert "input(s) not found" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound, never listening, held for the test."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("text", "args", "expected"),
    [
        ('[run]\ncache_dir = "/proc/chatsift-cache"\n', [], "run.cache_dir='/proc/chatsift-cache' is not writable"),
        ('[run]\ncache_dir = "{tmp}/a-file"\n', [], "run.cache_dir='{tmp}/a-file': {tmp}/a-file is a file"),
        ('[run]\ntask_runner = "dask"\ndask_address = "tcp://127.0.0.1:{port}"\n', [], "run.dask_address="),
        ("[dedupe_minhash]\nbands = 100000\nrows = 100000\n", [], "dedupe_minhash: Value error, bands x rows"),
        ('[language]\nallowed = ["klingon"]\n', [], "language.allowed: Value error, 'klingon'"),
        ("[split]\nmax_tokens = 4096\n[shards]\nmax_seq_len = 512\n", [], "set split.max_tokens to at most 512"),
        ("[shape]\nmin_turns = true\n", [], "shape.min_turns: Value error, expected a whole number, got true"),
        ("", ["--run-id", "../escape1"], "run id '../escape1' is not a folder name"),
        ("", ["--run-id", "{tmp}/abs-run"], "is not a folder name"),
    ],
)
def test_bad_options_and_arguments_fail_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], closed_port: int, text: str, args: list[str], expected: str
) -> None:
    """Each of these used to create the run folder and fail later with a traceback (or, for the
    language, split and min_turns ones, run to exit 0 with nothing useful)."""
    (tmp_path / "a-file").write_text("")
    config = tmp_path / "c.toml"
    config.write_text(text.format(tmp=tmp_path, port=closed_port))
    (tmp_path / "in.jsonl").write_text("{}\n")
    before = sorted(tmp_path.rglob("*"))
    started = time.monotonic()
    argv = ["curate", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out"), "--config", str(config)]
    assert main(argv + [a.format(tmp=tmp_path) for a in args]) == 2
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err
    assert err.startswith("chatsift: error: ") and expected.format(tmp=tmp_path) in err and err.count("\n") == 1
    assert sorted(tmp_path.rglob("*")) == before  # no run folder, nothing outside --out


def test_a_reused_run_id_is_refused_unless_resuming(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    earlier = tmp_path / "out" / "r1"
    earlier.mkdir(parents=True)
    (earlier / "report.json").write_text("{}")
    (tmp_path / "in.jsonl").write_text("{}\n")
    argv = ["curate", str(tmp_path / "in.jsonl"), "--out", str(tmp_path / "out"), "--run-id", "r1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"pass --resume {earlier} to continue it" in err and f"or remove {earlier}" in err
    assert (earlier / "report.json").read_text() == "{}" and sorted(earlier.iterdir()) == [earlier / "report.json"]


def test_resume_refuses_the_options_it_would_ignore(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["curate", "--resume", str(tmp_path), "--run-id", "other", "--out", str(tmp_path / "o")]) == 2
    assert "--resume runs the run again with its own" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_the_flow_parameters_refuse_a_run_id_path_and_loose_types(tmp_path: Path) -> None:
    """The Prefect deployment path: a run form's parameters go through the flow's own validation."""
    from prefect.exceptions import ParameterTypeError

    from flows.curate import curate_flow

    with pytest.raises(ParameterTypeError, match="min_turns"):
        curate_flow.validate_parameters({"inputs": ["in.jsonl"], "config": {"shape": {"min_turns": True}}})
    form = {"inputs": ["in.jsonl"], "config": CurationConfig().model_dump(mode="json"), "run_id": "../escape1"}
    (tmp_path / "in.jsonl").write_text("{}\n")
    form["inputs"] = [str(tmp_path / "in.jsonl")]
    form["out_dir"] = str(tmp_path / "out")
    with pytest.raises(ConfigError, match="is not a folder name"):
        curate_flow.fn(**curate_flow.validate_parameters(form))
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape1").exists()


@pytest.mark.slow
def test_a_run_started_in_one_directory_resumes_from_another(
    tmp_path: Path, prefect_server: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    started_in, elsewhere = tmp_path / "x", tmp_path / "y"
    (started_in / "data").mkdir(parents=True)
    elsewhere.mkdir()
    answer = "A whole number above 1 whose only divisors are 1 and itself."
    turns = [{"from": "human", "value": "What is a prime number?"}, {"from": "gpt", "value": answer}]
    (started_in / "data" / "in.jsonl").write_text(json.dumps({"id": "p1", "conversations": turns}) + "\n")
    monkeypatch.chdir(started_in)
    assert main(["curate", "data/in.jsonl", "--out", "runs", "--run-id", "r1"]) == 0
    monkeypatch.chdir(elsewhere)
    assert main(["curate", "--resume", str(started_in / "runs" / "r1")]) == 0
    report = RunReport.model_validate_json((started_in / "runs" / "r1" / "report.json").read_text())
    assert (report.records_read, report.kept) == (1, 1) and not list(elsewhere.iterdir())


@pytest.mark.slow
def test_demo_command_runs_the_pipeline_on_embedded_prefect(tmp_path: Path) -> None:
    env = {
        **environ_with_every_server_service(),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "demo", "--out", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [run_dir] = [p for p in (tmp_path / "runs").iterdir() if p.name not in ("demo-input", "cache")]
    report = RunReport.model_validate_json((run_dir / "report.json").read_text())
    assert report.records_read == report.kept + report.dropped > 0
    assert f"run {report.run_id}: read {report.records_read}" in done.stdout
    assert list((run_dir / "conversations").glob("part-*.parquet"))


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"chatsift {version('chatsift')}")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["shards", "verify", "{tmp}/nowhere"], "holds no manifest.json"),
        (["runs", "diff", "{tmp}", "{tmp}"], "no report.json"),
        (["contamination", "{tmp}/nowhere"], "is not a folder"),
        (["curate", "--resume", "{tmp}"], "is not a run folder"),
        (["finetune", "--shards", "{tmp}", "--model", "{tmp}", "--resume"], "--resume needs the --run-id"),
        (["scrape", "--ids", "{tmp}/none.txt", "--out", "{tmp}/out"], "scrape list not found"),
        (["serve", "in", "--config", "{tmp}/none.toml"], "config file not found"),
    ],
)
def test_every_command_reports_errors_the_same_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    """One place prints errors: one line, one prefix, exit code 2, and nothing written."""
    before = sorted(tmp_path.rglob("*"))
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chatsift: error: ") and expected in err and err.count("\n") == 1
    assert sorted(tmp_path.rglob("*")) == before


def test_the_command_table_builds_every_subcommand() -> None:
    from flows.cli import COMMANDS, build_parser

    parser = build_parser()
    names = [c.name for c in COMMANDS]
    assert len(names) == len(set(names))
    for name in names:
        with pytest.raises(SystemExit) as done:
            parser.parse_args([name, "--help"])
        assert done.value.code == 0


def test_every_option_of_every_command_has_help_text() -> None:
    import argparse

    from flows.cli import build_parser

    def undocumented(parser: argparse.ArgumentParser, path: str) -> list[str]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found += undocumented(sub, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                found.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
        return found

    assert undocumented(build_parser(), "chatsift") == []


def test_every_command_and_argument_says_what_it_is_for() -> None:
    """`chatsift --help` and each command's --help: no command and no argument without its help text."""
    import argparse

    from flows.cli import build_parser

    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                for name, sub in action.choices.items():
                    if not helps.get(name):
                        missing.append(f"{path} {name}")
                    walk(sub, f"{path} {name}")
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "chatsift")
    assert missing == []
