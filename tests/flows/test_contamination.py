"""The contamination flows on a real Prefect server: curate's stage, the standalone flow, reviewer
decisions honoured by the next run, the embedding cache reused, and bad config refused early."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from demo.inputs import DEMO_CONFIG, write_demo_inputs
from flows.cli import main
from flows.contamination import contamination_flow
from flows.curate import curate_flow
from schemas.config import BenchmarkSpec, CurationConfig
from schemas.contamination import ContaminationReport
from schemas.errors import ChatsiftError
from tests.helpers.assertions import assert_nothing_lost


def _with_contamination(config: CurationConfig, **update: object) -> CurationConfig:
    data = config.model_dump(mode="json")
    data["contamination"].update(update)
    return CurationConfig.model_validate(data)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh embedding cache, so the test sees what a first and a second run embed."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CHATSIFT_CACHE_DIR", str(folder))
    return folder


def test_curate_removes_planted_items_and_the_next_run_honours_decisions(
    tmp_path: Path, prefect_server: None, cache: Path
) -> None:
    inputs = write_demo_inputs(tmp_path / "in")
    first = curate_flow(inputs=inputs, out_dir=tmp_path / "out", config=DEMO_CONFIG, run_id="first")
    assert_nothing_lost(first)
    [stage] = [s for s in first.stages if s.stage == "contamination"]
    assert stage.dropped_by_reason == {"benchmark_contamination": 1}
    assert stage.changed["conversations_cut"] == 1 and stage.changed["units_embedded"] > 0
    ledger = pl.read_parquet(tmp_path / "out/first/ledger/contamination-*.parquet")
    rows = {r["conversation_id"]: r for r in ledger.iter_rows(named=True)}
    assert rows["demoK2l3_0"]["reason"] == "benchmark_contamination"
    assert "item=demo-1" in rows["demoK2l3_0"]["detail"] and "score=" in rows["demoK2l3_0"]["detail"]
    assert (rows["demoM4n5_0"]["reason"], rows["demoM4n5_0"]["scope"]) == ("contaminated_rounds_cut", "round")
    kept = pl.read_parquet(tmp_path / "out/first/conversations/*.parquet")
    assert "demoK2l3_0" not in kept["id"].to_list()
    [cut] = kept.filter(pl.col("id") == "demoM4n5_0")["turns"].to_list()
    assert len(cut) == 2 and "commit" in cut[0]["content"]  # the round before the contaminated one
    # the reviewers' report: JSON, CSV and one HTML file, named in the run report
    report = ContaminationReport.model_validate_json(Path(first.outputs["contamination_json"]).read_text())
    assert {(p.conversation_id, p.item_id, p.action) for p in report.pairs} == {
        ("demoK2l3_0", "demo-1", "removed"),
        ("demoM4n5_0", "demo-6", "cut"),
    }
    assert report.turns_checked == sum(report.score_counts) > len(report.pairs)
    assert "demoM4n5_0" in Path(first.outputs["contamination_html"]).read_text()
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["contamination-summary"]))
        )
    assert any("flagged turns" in str(a.data) for a in artifacts)

    # A reviewer clears the verbatim pair by filling in the exported CSV; the next run keeps it.
    exported = list(csv.DictReader(io.StringIO(Path(first.outputs["contamination_csv"]).read_text())))
    for row in exported:
        row["decision"] = "keep" if row["conversation_id"] == "demoK2l3_0" else ""
    decisions = tmp_path / "decisions.csv"
    with open(decisions, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(exported[0]))
        writer.writeheader()
        writer.writerows(exported)
    config = _with_contamination(DEMO_CONFIG, decisions_file=str(decisions))
    second = curate_flow(inputs=inputs, out_dir=tmp_path / "out", config=config, run_id="second")
    assert_nothing_lost(second)
    [stage] = [s for s in second.stages if s.stage == "contamination"]
    assert stage.dropped == 0 and stage.changed["kept_by_reviewer"] == 1
    # the cache was warm: nothing was embedded again
    assert "units_embedded" not in stage.changed and stage.changed["benchmark_items_embedded"] == 0
    assert stage.changed["units_from_cache"] > 0
    kept = pl.read_parquet(tmp_path / "out/second/conversations/*.parquet")
    assert "demoK2l3_0" in kept["id"].to_list()
    report = ContaminationReport.model_validate_json(Path(second.outputs["contamination_json"]).read_text())
    [applied] = report.decisions
    assert applied.applied and applied.decision.conversation_id == "demoK2l3_0" and "cleared" in applied.effect
    assert "kept_by_reviewer" in Path(second.outputs["contamination_html"]).read_text()


def test_standalone_flow_checks_a_folder_of_parts(tmp_path: Path, prefect_server: None, cache: Path) -> None:
    inputs = write_demo_inputs(tmp_path / "in")
    no_check = _with_contamination(DEMO_CONFIG, enabled=False)
    run = curate_flow(inputs=inputs, out_dir=tmp_path / "out", config=no_check, run_id="unchecked")
    [stage] = [s for s in run.stages if s.stage == "contamination"]
    assert stage.inputs == stage.kept and not stage.changed
    summary = contamination_flow(
        conversations=tmp_path / "out/unchecked/conversations", out_dir=tmp_path / "out", config=DEMO_CONFIG
    )
    # the verbatim copy is dropped; the rephrased round is cut from its conversation (or piece)
    assert summary["inputs"] == summary["kept"] + summary["dropped"] and summary["dropped"] == 1
    assert Path(summary["report_html"]).is_file()
    assert len(pl.read_parquet(Path(summary["conversations"]) / "*.parquet")) == summary["kept"]


def test_bad_contamination_config_fails_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = _with_contamination(
        DEMO_CONFIG,
        benchmarks=[BenchmarkSpec(name="gone", path=str(tmp_path / "gone.jsonl"), text_fields=("q",)).model_dump()],
    )
    with pytest.raises(ChatsiftError, match="gone.jsonl"):
        curate_flow(inputs=[tmp_path], out_dir=tmp_path / "out", config=missing)
    with pytest.raises(ChatsiftError, match="decisions file not found"):
        curate_flow(
            inputs=[tmp_path],
            out_dir=tmp_path / "out",
            config=_with_contamination(DEMO_CONFIG, decisions_file=str(tmp_path / "nope.csv")),
        )
    with pytest.raises(ChatsiftError, match="no benchmarks configured"):
        contamination_flow(conversations=tmp_path, out_dir=tmp_path / "out", config=CurationConfig())
    assert not (tmp_path / "out").exists()
    config = tmp_path / "c.toml"
    config.write_text('[contamination]\ndevice = "gpu"\npresets = ["gsm8k"]\npresets_dir = "/nowhere"\n')
    assert main(["contamination", str(tmp_path), "--config", str(config)]) == 2
    assert "contamination" in capsys.readouterr().err
