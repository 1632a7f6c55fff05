"""Failures that speak: no Prefect server, an unreachable one, a failed run. Each says what to do in one line (or
one artifact), exits non-zero, and shows no traceback; `serve --start-server` keeps its deployments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from demo.inputs import write_demo_inputs
from tests.conftest import REPO_ROOT
from tests.helpers.processes import free_port, stop, wait_until


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A user's environment with a fresh PREFECT_HOME and no server named, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return {**env, "PREFECT_HOME": str(tmp_path / "prefect-home"), **extra}


def _chatsift(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert lines[0].startswith("chatsift: error: ")
    return lines[0]


def test_serve_without_a_server_says_how_to_start_one(tmp_path: Path) -> None:
    line = _one_line_error(_chatsift("serve", str(tmp_path), "--out", str(tmp_path / "runs"), env=_env(tmp_path)))
    assert "PREFECT_API_URL names none" in line and "`chatsift server`" in line and "--start-server" in line
    assert not (tmp_path / "runs").exists()  # nothing started, nothing written


def test_an_unreachable_server_is_one_line_for_serve_and_for_a_run(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/api"
    env = _env(tmp_path, PREFECT_API_URL=url)
    line = _one_line_error(_chatsift("serve", str(tmp_path), "--out", str(tmp_path / "runs"), env=env))
    assert f"no Prefect server answers at PREFECT_API_URL={url}" in line and "chatsift server" in line
    inputs = write_demo_inputs(tmp_path / "in")
    line = _one_line_error(_chatsift("curate", *map(str, inputs), "--out", str(tmp_path / "runs"), env=env))
    assert f"no Prefect server answers at PREFECT_API_URL={url}" in line


def test_serve_can_start_a_server_that_keeps_its_deployments(tmp_path: Path) -> None:
    """--start-server: a `chatsift server` on SQLite in PREFECT_HOME; its deployments are there once serve has
    stopped and the server is started again, and neither process logged telemetry noise."""
    port, env = free_port(), _env(tmp_path)
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115
    served = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "serve", str(tmp_path), "--out", str(tmp_path / "runs")]
        + ["--start-server", "--server-port", str(port)],
        env=env,
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{port}/api"

    def deployments() -> list[str]:
        request = urllib.request.Request(f"{api}/deployments/filter", data=b"{}", method="POST")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=5) as r:
            return sorted(d["name"] for d in json.loads(r.read()))

    def registered() -> bool:
        try:
            return len(deployments()) == 6
        except OSError:
            return False

    try:
        wait_until("serve --start-server", registered, served, timeout=180)
    finally:
        stop(served)
        log.close()
    output = (tmp_path / "serve.log").read_text() + (tmp_path / "runs" / "chatsift-server.log").read_text()
    assert f"started `chatsift server` at {api}" in output
    assert "telemetry" not in output.lower() and "Traceback" not in output
    # the server went with serve; started again on the same PREFECT_HOME, it still has the deployments
    server = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "server", "--port", str(port)],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until("chatsift server again", registered, server, timeout=120)
        assert "recurate-nightly" in deployments()
    finally:
        stop(server)


def test_a_failed_run_leaves_an_artifact_that_says_what_to_do(tmp_path: Path, prefect_server: None) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.curate import curate_flow

    state = curate_flow(inputs=[tmp_path / "missing"], out_dir=tmp_path / "runs", return_state=True)
    assert state.is_failed()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    [artifact] = [a for a in artifacts if a.key == "curate-failure"]
    assert artifact.type == "markdown"
    assert "# curate failed" in str(artifact.data) and "input(s) not found" in str(artifact.data)
    assert str(tmp_path / "missing") in str(artifact.data)
