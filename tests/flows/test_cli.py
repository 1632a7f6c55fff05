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
