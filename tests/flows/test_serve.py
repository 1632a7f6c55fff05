"""The deployments on a real Prefect server: `chatsift server` on 127.0.0.1 (SQLite, temp PREFECT_HOME), the
deployments registered by `chatsift serve`, the re-curation deployment triggered through
the API, its outputs and artifacts read back, and both processes stopped."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from demo.inputs import DEMO_CONFIG, write_demo_inputs
from schemas import RunReport
from schemas.shards import read_manifest
from tests.conftest import REPO_ROOT
from tests.helpers.processes import stop, wait_until
from tests.helpers.tiny_training import save_tiny_llama


def test_recuration_deployment_runs_through_the_api(tmp_path: Path, server: dict[str, str]) -> None:
    # the UI is told the server's own port (Prefect's default would send it to 4200), and the log says where
    # the server keeps its data
    api = server["PREFECT_API_URL"]
    with urllib.request.urlopen(api.removesuffix("/api") + "/ui-settings", timeout=10) as r:
        assert json.loads(r.read())["api_url"] == api
    assert f"PREFECT_HOME={server['PREFECT_HOME']}" in (tmp_path / "server.log").read_text().splitlines()[0]
    inputs = write_demo_inputs(tmp_path / "in")
    config = tmp_path / "config.json"
    config.write_text(DEMO_CONFIG.model_dump_json())
    serve_log = open(tmp_path / "serve.log", "w")  # noqa: SIM115
    served = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "serve",
            *map(str, inputs),
            "--out",
            str(tmp_path / "runs"),
            "--config",
            str(config),
            # finetune goes to a process work pool, as on docker compose's GPU worker
            "--gpu-pool",
            "chatsift-gpu",
        ],
        env=server,
        cwd=REPO_ROOT,
        stdout=serve_log,
        stderr=subprocess.STDOUT,
    )
    try:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import (
            ArtifactFilter,
            ArtifactFilterFlowRunId,
            LogFilter,
            LogFilterFlowRunId,
        )
        from prefect.deployments import run_deployment
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: server["PREFECT_API_URL"]}), get_client(sync_client=True) as client:

            def registered() -> bool:
                return len(client.read_deployments()) >= 6

            wait_until("flows.serve", registered, served, timeout=120)
            deployments = {f"{d.name}": d for d in client.read_deployments()}
            assert set(deployments) == {"recurate-nightly", "curate", "contamination", "shards", "scrape", "finetune"}
            assert deployments["finetune"].work_pool_name == "chatsift-gpu"
            assert deployments["curate"].work_pool_name is None  # served by the serve process itself
            nightly = deployments["recurate-nightly"]
            assert "scheduled" in nightly.tags and nightly.description
            [schedule] = nightly.schedules
            assert schedule.schedule.cron == "0 3 * * *" and schedule.active  # type: ignore[union-attr]
            # typed parameters: the UI builds a form from this schema
            properties = nightly.parameter_openapi_schema["properties"]
            assert {"inputs", "out_dir", "config"} <= set(properties)
            flow_run = run_deployment("curate/recurate-nightly", timeout=600, poll_interval=1)
            assert flow_run.state is not None and flow_run.state.is_completed(), flow_run.state
            artifacts = client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]))
            )
            keys = {a.key for a in artifacts}
            assert {"curate-run-report", "curate-stage-counts", "curate-shards-manifest"} <= keys
            assert "contamination-report" in keys
            # progress: every stage done, and one line of counts per stage in the run's own log
            [progress] = [a for a in artifacts if a.key == "curate-progress"]
            assert progress.data == 100.0 and str(progress.description).startswith("7 of 7 stages done")
            # the flow's process ships its logs in batches, after its state may already read Completed
            stage_lines: list[str] = []
            by_run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run.id]))

            def all_stages_logged() -> bool:
                logs: list = []
                while True:  # in pages: the server answers at most 200 at a time
                    page = client.read_logs(log_filter=by_run, limit=200, offset=len(logs))
                    logs += page
                    if len(page) < 200:
                        break
                stage_lines[:] = [log.message for log in logs if log.message.startswith("stage ")]
                return any(line.startswith("stage 7/7 pack: ") for line in stage_lines)

            wait_until("the run's stage log lines", all_stages_logged, served, timeout=60)
            assert stage_lines[0].startswith("stage 1/7 ingest: ") and stage_lines[-1].startswith("stage 7/7 pack: ")
            assert any(line.startswith("stage 2/7 markdown: ") for line in stage_lines), stage_lines
            # link artifacts are markdown links ("[text](http://...)") that open from the UI: `chatsift server`
            # serves the run folders beside it
            base = api.removesuffix("/api") + "/chatsift/files"
            links = {a.key: re.fullmatch(rf"\[[^]]*\]\({re.escape(base)}(/.+)\)", str(a.data)) for a in artifacts}
            manifest, report_html = links["curate-shards-manifest"], links["contamination-report"]
            assert manifest and manifest[1].endswith("/shards/manifest.json") and Path(manifest[1]).is_file()
            assert report_html and Path(report_html[1]).name == "report.html"
            with urllib.request.urlopen(base + report_html[1], timeout=10) as r:
                assert "Contamination report" in r.read().decode()
            # the summary carries the numbers and the flagged pairs itself
            [summary] = [a for a in artifacts if a.key == "contamination-summary"]
            assert "flagged turns" in str(summary.data) and "| score | category |" in str(summary.data)
            # bad input fails the run at once, with the fix in the state message the UI shows
            bad = run_deployment(
                "curate/curate", parameters={"inputs": [str(tmp_path / "missing")]}, timeout=300, poll_interval=1
            )
            assert bad.state is not None and bad.state.is_failed()
            assert "input(s) not found" in str(bad.state.message)
            # the second scheduled re-curation over unchanged inputs reuses every part
            second = run_deployment("curate/recurate-nightly", timeout=600, poll_interval=1)
            assert second.state is not None and second.state.is_completed(), second.state
            # fine-tuning on the first run's shards, picked up from the pool by a process worker
            shards = Path(manifest[1]).parent
            tiny = save_tiny_llama(tmp_path / "tiny-llama", vocab_size=read_manifest(shards).tokenizer.vocab_size)
            # the demo's shards hold a few packed rows: one a step, over two epochs
            options = {"max_steps": 2, "epochs": 2, "gradient_accumulation_steps": 1, "loader_workers": 0}
            scheduled = run_deployment(
                "finetune/finetune",
                parameters={"shards_dir": str(shards), "model": str(tiny), "config": options, "run_id": "ft"},
                timeout=0,
            )
            worker = subprocess.run(
                [sys.executable, "-m", "prefect", "worker", "start", "--pool", "chatsift-gpu", "--run-once"],
                env=server,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert worker.returncode == 0, worker.stderr[-2000:]
            finetuned = client.read_flow_run(scheduled.id)
            assert finetuned.state is not None and finetuned.state.is_completed(), worker.stderr[-2000:]
            keys = {
                a.key
                for a in client.read_artifacts(
                    artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[finetuned.id]))
                )
            }
            assert {"finetune-loss-curve", "finetune-summary", "finetune-progress"} <= keys
    finally:
        stop(served)
        serve_log.close()
    first_dir, second_dir = sorted(p for p in (tmp_path / "runs").iterdir() if p.name not in ("cache", "finetune"))
    report = RunReport.model_validate_json((first_dir / "report.json").read_text())
    again = RunReport.model_validate_json((second_dir / "report.json").read_text())
    assert report.records_read == report.kept + report.dropped > 0
    assert sum(s.parts_reused for s in report.stages) == 0
    # every part but ingest's, whose raw parts are not cached (RunConfig.keep_raw_intermediates)
    assert [s.parts_reused for s in again.stages] == [0 if s.stage == "ingest" else s.parts for s in again.stages]
    assert sum(s.parts for s in again.stages) > 0
    run_dir = first_dir
    assert (run_dir / "shards" / "manifest.json").is_file()
    assert json.loads((run_dir / "contamination" / "report.json").read_text())["flagged_turns"] == 2
    summary = json.loads((tmp_path / "runs" / "finetune" / "ft" / "summary.json").read_text())
    assert summary["steps"] == 2 and (tmp_path / "runs/finetune/ft/final/adapter_model.safetensors").is_file()
