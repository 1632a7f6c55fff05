"""The contamination flows on a real Prefect server: curate's stage, the standalone flow, reviewer
decisions made in the report page (headless Chromium) and honoured by the next run, the embedding cache
reused, and bad config refused early. Screenshots of the report are kept in test-artifacts/report/."""

from __future__ import annotations

import csv
import io
import time
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
from tests.helpers.browser import Browser, kept_artifacts_dir


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
    assert report.turns_checked == sum(report.score_counts) > len(report.pairs) == sum(report.score_counts_flagged)
    # each pair with its conversation (the cut one with its cut point) and its item's reference answer
    by_id = {p.conversation_id: p for p in report.pairs}
    cut, removed = by_id["demoM4n5_0"], by_id["demoK2l3_0"]
    assert (len(cut.conversation), cut.cut_at, removed.cut_at) == (4, 2, None)
    assert "17" in removed.item_answer and removed.embedding_unit
    assert "demoM4n5_0" in Path(first.outputs["contamination_html"]).read_text()
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["contamination-summary"]))
        )
    assert any("flagged turns" in str(a.data) for a in artifacts)

    # A reviewer opens the report offline, filters, clears the verbatim pair and exports the decisions.
    decisions = _decide_in_the_report(Path(first.outputs["contamination_html"]), report, tmp_path)
    rows = list(csv.DictReader(io.StringIO(decisions.read_text())))
    assert [(r["conversation_id"], r["item_id"], r["decision"], r["reviewer"]) for r in rows] == [
        ("demoK2l3_0", "demo-1", "keep", "ana")
    ]
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


def _decide_in_the_report(page: Path, report: ContaminationReport, tmp_path: Path) -> Path:
    """In headless Chromium with no network: read the report, filter it to its stronger pair and open the
    conversations, keep the verbatim pair and export the decisions CSV; the downloaded file."""
    stronger = max(report.pairs, key=lambda p: p.score)
    assert len({p.score for p in report.pairs}) == len(report.pairs) == 2  # a score filter can tell them apart
    shots, downloads = kept_artifacts_dir("report"), tmp_path / "downloads"
    downloads.mkdir()
    with Browser(tmp_path / "profile", width=1300, height=1600) as b:
        b.call("Browser.setDownloadBehavior", behavior="allow", downloadPath=str(downloads))
        # offline: the page must need nothing but its own file
        b.call("Network.enable")
        b.call("Network.emulateNetworkConditions", offline=True, latency=0, downloadThroughput=-1, uploadThroughput=-1)
        b.goto(page.as_uri())
        b.wait_for_text("Showing 1-2 of 2 pairs")
        text = b.text()
        assert "demoK2l3_0" in text and "demoM4n5_0" in text and "Calibration" in text and "This run" in text
        b.screenshot(shots / "1-report.png")
        # the stronger pair alone, by the score filter, with the conversations open (the cut one shows its cut)
        b.fill("document.getElementById('f-min')", str(stronger.score))
        b.wait_for_text("Showing 1-1 of 1 pairs (2 flagged)")
        shown = b.text()
        weaker = next(p for p in report.pairs if p is not stronger)
        assert stronger.conversation_id in shown and weaker.conversation_id not in shown
        b.fill("document.getElementById('f-min')", "0")
        b.wait_for_text("Showing 1-2 of 2 pairs")
        b.evaluate("document.querySelectorAll('details.conversation').forEach(d => d.open = true)")
        assert "cut here: turns 2 to" in b.text()
        b.evaluate("document.getElementById('pairs').scrollIntoView()")
        b.screenshot(shots / "2-conversations.png")
        # keep the verbatim pair (a false positive, says the reviewer), then export
        keep = (
            "(() => { const card = [...document.querySelectorAll('.pair')]"
            ".find(c => c.innerText.includes('demoK2l3_0')); card.querySelector('button.keep').click();"
            " return card.innerText.includes('your decision: keep'); })()"
        )
        assert b.evaluate(keep)
        b.fill("document.getElementById('reviewer')", "ana")
        b.click_text("button", "Export decisions CSV")
        b.wait_for_text("Exported 1 decisions as decisions.csv")
        b.screenshot(shots / "3-decided.png")
        deadline = time.monotonic() + 30
        while not (downloads / "decisions.csv").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    return downloads / "decisions.csv"


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
