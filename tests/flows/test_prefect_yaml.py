"""The work-pool path on a real Prefect server (`chatsift server` on 127.0.0.1): the project's prefect.yaml
registered with `prefect deploy --all`, one curate flow run picked up by `prefect worker start --run-once`,
and its artifacts read back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from demo.inputs import DEMO_CONFIG, write_demo_inputs
from flows.serve import NIGHTLY, chatsift_deployments
from schemas.config import CurationConfig
from tests.conftest import REPO_ROOT


def _prefect(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done


def test_prefect_deploy_registers_every_deployment_and_a_worker_runs_one(
    tmp_path: Path, server: dict[str, str]
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    declared = yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"]
    for pool in sorted({d["work_pool"]["name"] for d in declared}):
        _prefect("work-pool", "create", pool, "--type", "process", env=server)
    _prefect("--no-prompt", "deploy", "--all", env=server)
    served = chatsift_deployments(inputs=[], out_dir="runs", config=CurationConfig())
    with temporary_settings({PREFECT_API_URL: server["PREFECT_API_URL"]}), get_client(sync_client=True) as client:
        deployments = {d.name: d for d in client.read_deployments()}
        # the same deployments `chatsift serve` registers, each on its pool, running from this checkout
        assert set(deployments) == {d.name for d in served}
        assert deployments["finetune"].work_pool_name == "chatsift-gpu"
        assert {d.work_pool_name for name, d in deployments.items() if name != "finetune"} == {"chatsift-cpu"}
        [schedule] = deployments["recurate-nightly"].schedules
        assert schedule.schedule.cron == NIGHTLY and schedule.active  # type: ignore[union-attr]
        assert deployments["curate"].pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO_ROOT)}}
        ]
        assert {"inputs", "out_dir", "config"} <= set(deployments["curate"].parameter_openapi_schema["properties"])

        inputs = write_demo_inputs(tmp_path / "in")
        parameters = {
            "inputs": [str(p) for p in inputs],
            "out_dir": str(tmp_path / "runs"),
            "config": DEMO_CONFIG.model_dump(mode="json"),
        }
        scheduled = run_deployment("curate/curate", parameters=parameters, timeout=0)
        _prefect("worker", "start", "--pool", "chatsift-cpu", "--run-once", env=server, timeout=400)
        run = client.read_flow_run(scheduled.id)
        assert run.state is not None and run.state.is_completed(), run.state
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
        keys = {a.key for a in artifacts}
        assert {"curate-run-report", "curate-stage-counts", "curate-shards-manifest", "contamination-summary"} <= keys
    [run_dir] = [p for p in (tmp_path / "runs").iterdir() if (p / "report.json").is_file()]
    assert (run_dir / "shards" / "manifest.json").is_file()
