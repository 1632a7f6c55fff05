"""The curate flow end to end on a real Prefect server: outputs, ledger, report, artifacts."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from curation.shards.verify import verify_shards
from demo.chatgpt_html import as_captured, sharegpt_page_html
from demo.inputs import DEMO_CONFIG, write_demo_inputs
from flows.cli import main
from flows.cli.curate import print_summary
from flows.curate import curate_flow
from schemas import RunReport
from schemas.config import CurationConfig
from schemas.shards import read_manifest
from tests.helpers.assertions import assert_nothing_lost

pytestmark = pytest.mark.slow


def test_demo_inputs_curate_with_every_record_accounted_for(
    tmp_path: Path, prefect_server: None, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = write_demo_inputs(tmp_path / "in")
    report = curate_flow(inputs=inputs, out_dir=tmp_path / "out", config=DEMO_CONFIG, run_id="demo")
    assert_nothing_lost(report)
    # the printed summary keeps drops and changes apart: a stage's line holds counts, the reasons and the
    # changes follow on lines of their own
    print_summary(report)
    lines = capsys.readouterr().out.splitlines()
    [shape] = [i for i, line in enumerate(lines) if line.startswith("  shape ")]
    assert "=" not in lines[shape] and lines[shape + 1].startswith("      dropped: ")
    assert "too_short=" in lines[shape + 1]
    assert f"explore:       {tmp_path / 'out' / 'demo' / 'explore.html'}" in lines
    changed = [line for line in lines if line.startswith("      changed: ")]
    assert changed and not any("too_short" in line or "blocked_response" in line for line in changed)
    ledger = pl.concat([pl.read_parquet(f) for f in (tmp_path / "out/demo/ledger").glob("*.parquet")])
    reasons = dict(zip(ledger["conversation_id"], ledger["reason"], strict=True))
    # the broken-on-purpose inputs, each with its own reason
    assert reasons["demoS7t8_0"] == "blocked_response"
    assert reasons["demoW1x2_0"] == "too_short"
    assert reasons["demoY3z4_0"] == "roles_not_alternating"
    assert reasons["demoA5b6_0"] == "no_turns"
    assert "unsafe_id" in reasons.values()
    assert "no_next_data" in reasons.values()
    assert "unknown_role" in reasons.values()
    assert "invalid_json" in reasons.values()
    # the duplicates planted in the sample, each found by its own rule, pointing at the kept copy
    duplicate_of = dict(zip(ledger["conversation_id"], ledger["duplicate_of"], strict=True))
    assert (reasons["demoB7c8_0"], duplicate_of["demoB7c8_0"]) == ("exact_duplicate", "demoA1b2_0")
    assert (reasons["demoD9e0_0"], duplicate_of["demoD9e0_0"]) == ("same_prompts", "demoC3d4_0")
    assert (reasons["demoF1g2_0"], duplicate_of["demoF1g2_0"]) == ("prefix_of_longer", "demoA1b2_0")
    assert (reasons["demoH3i4_0"], duplicate_of["demoH3i4_0"]) == ("near_duplicate", "demoA1b2_0")
    kept = pl.read_parquet(tmp_path / "out/demo/conversations/part-00000.parquet")
    by_id = {row["id"]: row for row in kept.iter_rows(named=True)}
    # the demo's small token budget splits the longest conversation into pieces of whole rounds
    pieces = kept.filter(pl.col("parent_id").is_not_null()).sort("split_index")
    assert pieces.height >= 2 and pieces["split_index"].to_list() == list(range(pieces.height))
    assert all(p["turns"][0]["role"] == "user" for p in pieces.iter_rows(named=True))
    by_id |= {row["parent_id"]: row for row in pieces.filter(pl.col("split_index") == 0).iter_rows(named=True)}
    snake = by_id["demoA1b2_0"]["turns"][1]["content"]
    assert "```python\nimport re" in snake and "    s1 = re.sub(" in snake and "\\_" not in snake
    assert by_id["demoJ9k0_0"]["turns"][0]["content"].startswith("1 / 2 cup")
    assert "<API_KEY>" in by_id["demoN3p4_0"]["turns"][0]["content"]
    # the refusal turn stays for context, unsupervised
    assert by_id["demoL1m2_0"]["turns"][1]["weight"] == 0.0
    # training shards: verified, every kept row tokenized once, supervised tokens = assistant turns
    shards_dir = tmp_path / "out/demo/shards"
    assert verify_shards(shards_dir) == []
    manifest = read_manifest(shards_dir)
    assert (
        manifest.total_conversations + sum(s.dropped for s in report.stages if s.stage in ("tokenize", "pack"))
        == report.rows
    )
    assert main(["shards", "verify", str(shards_dir)]) == 0
    assert main(["shards", "inspect", str(shards_dir)]) == 0
    assert "⟦" in capsys.readouterr().out
    # report on disk and as Prefect artifacts
    on_disk = RunReport.model_validate_json((tmp_path / "out/demo/report.json").read_text())
    assert on_disk.kept == report.kept and on_disk.records_read == report.records_read
    assert "| shape |" in (tmp_path / "out/demo/report.md").read_text()
    # the same conversations packed again for a shorter context, without curating again
    shorter = tmp_path / "shorter.json"
    shorter.write_text(json.dumps({"shards": {"max_seq_len": 1024}}))
    assert (
        main(
            [
                "shards",
                "build",
                str(tmp_path / "out/demo/conversations"),
                "--out",
                str(tmp_path / "b"),
                "--config",
                str(shorter),
            ]
        )
        == 0
    )
    [rebuilt] = (tmp_path / "b").glob("*/shards")
    assert verify_shards(rebuilt) == []
    # a summary like curate's: the counts, a line per stage, drops and changes apart, the files
    printed = capsys.readouterr().out
    assert "conversations in, " in printed and "\n  tokenize " in printed and "\n  pack " in printed
    assert f"shards:        {rebuilt / 'manifest.json'}" in printed and "{" not in printed
    again = read_manifest(rebuilt)
    assert again.max_seq_len == 1024 and again.total_rows > manifest.total_rows


def test_real_sample_and_its_html_pages_curate_without_loss(
    tmp_path: Path, prefect_server: None, sharegpt_sample: list[dict]
) -> None:
    """The 3003 real conversations as a dump, and 300 of them as real-markup pages."""
    pages = tmp_path / "pages"
    pages.mkdir()
    for conv in sharegpt_sample[:300]:
        items = as_captured(conv["conversations"])
        (pages / f"{conv['id']}.html").write_text(sharegpt_page_html(page_id=conv["id"], items=items), "utf-8")
    dump = tmp_path / "dump.json.gz"
    with gzip.open(dump, "wt", encoding="utf-8") as f:
        json.dump(sharegpt_sample, f)
    report = curate_flow(inputs=[dump, pages], out_dir=tmp_path / "out", config=CurationConfig(), run_id="real")
    assert_nothing_lost(report)
    # one page per distinct id (the sample repeats a few ids, and a page file is named by its id)
    assert report.records_read == 3003 + len(list(pages.glob("*.html")))
    assert report.kept > 0.8 * report.records_read
