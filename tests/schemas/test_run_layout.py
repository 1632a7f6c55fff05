"""A run's folder: its id is a name under the output folder, never a path, and run.json finds the
run's inputs from any working directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.config import CurationConfig
from schemas.errors import ConfigError
from schemas.run_layout import RunPaths, check_run_id, new_run_id, read_run_to_resume, run_record_json


@pytest.mark.parametrize("run_id", ["../escape1", "/tmp/abs-run", "a/b", "..", "a..b", ".hidden", "", "x" * 129])
def test_a_run_id_that_is_a_path_is_refused(tmp_path: Path, run_id: str) -> None:
    with pytest.raises(ConfigError, match="is not a folder name"):
        RunPaths.for_run(tmp_path / "out", run_id, CurationConfig())
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("run_id", ["nightly", "run-2024.06.01_a", "generated"])
def test_a_run_id_that_is_a_name_is_its_folder(tmp_path: Path, run_id: str) -> None:
    # A generated id is made inside the test: a time-stamped parameter would differ between xdist workers.
    run_id = new_run_id() if run_id == "generated" else run_id
    paths = RunPaths.create(tmp_path, run_id)
    assert check_run_id(run_id) == run_id and paths.root == tmp_path / run_id and paths.run_id == run_id


def test_a_taken_run_id_is_refused_with_the_fix(tmp_path: Path) -> None:
    paths = RunPaths.create(tmp_path, "r1")
    paths.refuse_if_taken()  # a new id: nothing to refuse
    paths.root.mkdir()
    with pytest.raises(ConfigError) as error:
        paths.refuse_if_taken()
    assert f"--resume {paths.root}" in str(error.value) and "another --run-id" in str(error.value)


def _write_run(run_dir: Path, record: str) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(record)
    (run_dir / "config.json").write_text(CurationConfig().model_dump_json())


def test_run_json_records_absolute_paths_that_resume_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started_in, elsewhere = tmp_path / "x", tmp_path / "y"
    (started_in / "data").mkdir(parents=True)
    elsewhere.mkdir()
    (started_in / "data" / "in.jsonl").write_text("{}\n")
    monkeypatch.chdir(started_in)
    record = run_record_json("r1", [Path("data/in.jsonl")], Path("runs"), "2025-01-01T00:00:00+00:00")
    assert json.loads(record)["inputs"] == [str(started_in / "data" / "in.jsonl")]
    assert json.loads(record)["out_dir"] == str(started_in / "runs")
    _write_run(started_in / "runs" / "r1", record)
    monkeypatch.chdir(elsewhere)
    inputs, _, _, run_id = read_run_to_resume(started_in / "runs" / "r1")
    assert inputs == [started_in / "data" / "in.jsonl"] and run_id == "r1"


@pytest.mark.parametrize("out_dir", ["runs", "./nested/runs"])
def test_an_old_run_json_with_relative_paths_resumes_from_its_own_and_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out_dir: str
) -> None:
    """Written before paths were resolved: inputs relative to where the run started, out_dir as typed."""
    started_in = tmp_path / "x"
    (started_in / "data").mkdir(parents=True)
    (started_in / "data" / "in.jsonl").write_text("{}\n")
    run_dir = started_in / out_dir / "old"
    old = {"run_id": "old", "inputs": ["data/in.jsonl"], "out_dir": out_dir, "started_at": "2024-01-01T00:00:00"}
    _write_run(run_dir, json.dumps(old))
    for cwd in (started_in, tmp_path):
        monkeypatch.chdir(cwd)
        inputs, _, _, _ = read_run_to_resume(run_dir)
        assert [p.resolve() for p in inputs] == [started_in / "data" / "in.jsonl"], cwd
