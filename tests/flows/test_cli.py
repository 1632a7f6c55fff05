"""The `chatsift` command as a user runs it: config errors fail early, the demo runs for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.cli import main
from schemas import RunReport
from schemas.config.file import load_config
from schemas.errors import ConfigError


def test_config_prints_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["shape"]["min_chars"] == 16 and printed["run"]["batch_size"] == 5000


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


@pytest.mark.slow
def test_demo_command_runs_the_pipeline_on_embedded_prefect(tmp_path: Path) -> None:
    env = {
        **os.environ,
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
