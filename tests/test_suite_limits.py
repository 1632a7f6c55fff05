"""The suite's own limits (pyproject.toml's pytest addopts): a test that hangs fails with its traceback,
and the slowest tests are printed at the end of every run."""

from __future__ import annotations

import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import HEAVIEST_FIRST, REPO_ROOT, scheduling_rank


def _addopts() -> list[str]:
    pytest_options = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    return shlex.split(pytest_options["addopts"])


def test_the_suite_sets_a_per_test_limit_and_prints_the_slowest_tests() -> None:
    options = dict(o.split("=", 1) for o in _addopts() if "=" in o)
    assert 60 <= int(options["--timeout"]) <= 900
    assert options["--durations"] == "15"
    assert "--no-loadscope-reorder" in _addopts()


def test_the_heaviest_files_are_scheduled_first() -> None:
    assert len(set(HEAVIEST_FIRST)) == len(HEAVIEST_FIRST)
    missing = [path for path in HEAVIEST_FIRST if not (REPO_ROOT / path).is_file()]
    assert not missing, f"HEAVIEST_FIRST names files that are gone: {missing}"
    files = ["tests/test_layering.py", *reversed(HEAVIEST_FIRST), "tests/curation/test_stage.py"]
    ordered = sorted(files, key=scheduling_rank)
    assert ordered == [*HEAVIEST_FIRST, "tests/test_layering.py", "tests/curation/test_stage.py"]


def test_a_hanging_test_fails_with_its_traceback(tmp_path: Path) -> None:
    (tmp_path / "test_hang.py").write_text("import time\n\n\ndef test_hang():\n    time.sleep(120)\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=2", "test_hang.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 1, run.stdout
    assert "Timeout" in run.stdout and "time.sleep(120)" in run.stdout
