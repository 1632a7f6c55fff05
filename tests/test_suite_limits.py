"""The suite's own limits (pyproject.toml's pytest addopts): a test that hangs fails with its traceback,
and the slowest tests are printed at the end of every run."""

from __future__ import annotations

import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import REPO_ROOT


def _addopts() -> list[str]:
    pytest_options = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    return shlex.split(pytest_options["addopts"])


def test_the_suite_sets_a_per_test_limit_and_prints_the_slowest_tests() -> None:
    options = dict(o.split("=", 1) for o in _addopts() if "=" in o)
    assert 60 <= int(options["--timeout"]) <= 900
    assert options["--durations"] == "15"


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
