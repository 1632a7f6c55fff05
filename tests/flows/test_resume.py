"""Incremental and resumable re-curation: the stage cache, a killed run resumed, grown inputs.

Every comparison is against a run made with the cache switched off, byte for byte, so a cache
that returned stale or partial work would fail here.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from curation.ingest.groups import group_input_files
from curation.stage import Stage
from flows.cli import main
from flows.curate import curate_flow
from flows.stage_cache import PartResult, StageCache, cached_part, rejected_cache_entries
from schemas import RunReport, StageReport
from schemas.config import CurationConfig, RunConfig, ShapeConfig
from schemas.ledger import RunLineage
from schemas.run_layout import RunPaths
from tests.conftest import REPO_ROOT
from tests.helpers.assertions import assert_nothing_lost
from tests.helpers.runs import assert_same_outputs, write_pages


def _config(*, cache: bool, batch_size: int = 250, **sections: Any) -> CurationConfig:
    return CurationConfig(run=RunConfig(batch_size=batch_size, cache=cache), **sections)


def _stage(report: RunReport, name: str) -> StageReport:
    (stage,) = [s for s in report.stages if s.stage == name]
    return stage


# --- the cache itself -------------------------------------------------------------------------


# A toy stage: the cache only needs its name and the options it is keyed on.
_TOY = Stage("x", lambda convs, config: convs, config="shape")


def _paths(root: Path, cache: Path | None) -> RunPaths:
    return RunPaths(root=root, cache_root=cache)


def test_cache_hit_links_files_and_returns_the_recorded_result(tmp_path: Path) -> None:
    calls = []
    source = tmp_path / "input.parquet"
    source.write_bytes(b"input")

    def compute_in(root: Path) -> Any:
        def compute() -> PartResult:
            calls.append(root)
            out = root / "stages" / "x" / "part-a.parquet"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(b"payload")
            return PartResult(outputs=(str(out),), reports=(StageReport(stage="x", inputs=3, kept=2, dropped=1),))

        return compute

    def run(root: Path, config: CurationConfig = CurationConfig()) -> PartResult:
        paths = _paths(root, tmp_path / "cache")
        return cached_part(_TOY, paths=paths, config=config, inputs=[("a", source)], compute=compute_in(root))

    first = run(tmp_path / "run1")
    second = run(tmp_path / "run2")
    assert calls == [tmp_path / "run1"]
    assert (first.reused, second.reused) == (False, True)
    # the second run gets its own path, with the same bytes, and the recorded counts
    assert second.output == str(tmp_path / "run2" / "stages" / "x" / "part-a.parquet")
    assert Path(second.output).read_bytes() == b"payload"
    assert (second.report.kept, second.report.parts, second.report.parts_reused) == (2, 1, 1)
    # a different key part (input content, config) misses
    run(tmp_path / "run3", CurationConfig(shape=ShapeConfig(min_turns=4)))
    assert calls[-1] == tmp_path / "run3"
    source.write_bytes(b"changed input")
    run(tmp_path / "run4")
    assert calls[-1] == tmp_path / "run4"


def _rewrite_record(entry: Path, edit: Any) -> None:
    record = json.loads((entry / "result.json").read_text(encoding="utf-8"))
    edit(record)
    (entry / "result.json").write_text(json.dumps(record), encoding="utf-8")


def _old_format(record: dict[str, Any]) -> None:
    """The record as chatsift wrote it before entries carried sizes and digests."""
    record["files"] = {name: f["path"] for name, f in record["files"].items()}


# Each way an entry is damaged, and what the rejection says.
_DAMAGE: dict[str, tuple[Any, str]] = {
    "truncated file": (lambda e: os.truncate(e / "file-000.parquet", 3), "file-000.parquet is 3 bytes, the record"),
    "same size, other bytes": (lambda e: (e / "file-000.parquet").write_bytes(b"PAYLOAD"), "blake2b differs"),
    "missing file": (lambda e: (e / "file-001.parquet").unlink(), "file-001.parquet is missing"),
    "truncated record": (lambda e: os.truncate(e / "result.json", 40), "result.json is unreadable"),
    "record without digests": (lambda e: _rewrite_record(e, _old_format), "result.json is unreadable"),
    "record missing": (lambda e: (e / "result.json").unlink(), "result.json is missing"),
    "record pointing outside the run": (
        lambda e: _rewrite_record(e, lambda r: r["files"]["file-000.parquet"].update(path="../elsewhere.parquet")),
        "outside the run directory",
    ),
}


@pytest.mark.parametrize("damage", list(_DAMAGE))
def test_damaged_cache_entry_is_removed_recomputed_and_recorded(tmp_path: Path, damage: str) -> None:
    damage_entry, reason = _DAMAGE[damage]
    source = tmp_path / "input.parquet"
    source.write_bytes(b"input")
    calls = []

    def run(name: str) -> PartResult:
        root = tmp_path / name
        paths = _paths(root, tmp_path / "cache")

        def compute() -> PartResult:
            calls.append(name)
            out, ledger = root / "stages" / "x" / "part-a.parquet", root / "ledger" / "x-a.parquet"
            for path, data in ((out, b"payload"), (ledger, b"drops")):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            return PartResult(outputs=(str(out),), ledger=str(ledger), reports=(StageReport(stage="x", inputs=1),))

        return cached_part(_TOY, paths=paths, config=CurationConfig(), inputs=[("a", source)], compute=compute)

    run("first")
    (entry,) = (tmp_path / "cache" / "x").glob("*/*")
    damage_entry(entry)
    second = run("second")
    assert calls == ["first", "second"] and not second.reused
    assert Path(second.output).read_bytes() == b"payload" and not (tmp_path / "elsewhere.parquet").exists()
    (rejection,) = rejected_cache_entries(_paths(tmp_path / "second", None))
    assert (rejection.stage, rejection.key) == ("x", entry.name) and reason in rejection.reason
    assert rejected_cache_entries(_paths(tmp_path / "first", None)) == []
    # the entry was stored again whole: the next run reuses it, rejecting nothing
    third = run("third")
    assert third.reused and calls == ["first", "second"]
    assert rejected_cache_entries(_paths(tmp_path / "third", None)) == []
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.name.startswith(".tmp-")]


def test_cached_files_are_copies_of_the_run_files(tmp_path: Path) -> None:
    """A file truncated in one run's stages/ is not truncated in the cache, nor in the run that reuses it."""
    source = tmp_path / "input"
    source.write_bytes(b"x")

    def run(root: Path) -> PartResult:
        def compute() -> PartResult:
            out = root / "stages" / "x" / "part-a.parquet"
            out.parent.mkdir(parents=True)
            out.write_bytes(b"payload")
            return PartResult(outputs=(str(out),))

        paths = _paths(root, tmp_path / "cache")
        return cached_part(_TOY, paths=paths, config=CurationConfig(), inputs=[("a", source)], compute=compute)

    first = run(tmp_path / "first")
    second = run(tmp_path / "second")
    assert second.reused
    assert {Path(p).stat().st_nlink for p in (first.output, second.output)} == {1}
    os.truncate(first.output, 0)
    assert Path(second.output).read_bytes() == b"payload" and run(tmp_path / "third").reused


def test_temporaries_left_by_a_killed_store_are_cleared(tmp_path: Path) -> None:
    cache = StageCache(tmp_path / "cache")
    stale = cache.entry("s", cache.key("s", "k")).parent / ".tmp-deadbeef.123"
    stale.mkdir(parents=True)
    assert cache.remove_temporaries() == 1 and not stale.exists()


def test_caching_off_never_stores(tmp_path: Path) -> None:
    n = []
    source = tmp_path / "input"
    source.write_bytes(b"x")
    for _ in range(2):
        cached_part(
            _TOY,
            paths=_paths(tmp_path, None),
            config=CurationConfig(),
            inputs=[("a", source)],
            compute=lambda: n.append(1) or PartResult(outputs=()),
        )
    assert len(n) == 2


def test_config_key_changes_with_any_option_of_the_sections_it_covers() -> None:
    assert _TOY.config_key(CurationConfig()) == _TOY.config_key(CurationConfig())
    assert _TOY.config_key(CurationConfig()) != _TOY.config_key(CurationConfig(shape=ShapeConfig(min_turns=4)))


def test_added_files_change_only_the_groups_they_land_in(tmp_path: Path) -> None:
    names = [f"{i:06x}.html" for i in range(0, 4000, 2)]
    for name in names:
        (tmp_path / name).write_text("x")
    before = group_input_files(sorted(tmp_path.iterdir()), target_files=40, max_bytes=1 << 30)
    for i in range(1, 4000, 97):  # 42 new files spread over the whole range
        (tmp_path / f"{i:06x}.html").write_text("x")
    after = group_input_files(sorted(tmp_path.iterdir()), target_files=40, max_bytes=1 << 30)
    unchanged = {tuple(g) for g in before} & {tuple(g) for g in after}
    assert 30 <= len(before) <= 80
    # a positional split would change every group after the first insertion
    assert len(unchanged) >= len(before) - 42
    assert [f for g in after for f in g] == sorted(tmp_path.iterdir())


# --- the flow on real data ----------------------------------------------------------------------


@pytest.mark.slow
def test_rerun_over_the_same_inputs_reuses_every_part_with_identical_outputs(
    tmp_path: Path, prefect_server: None, sharegpt_sample: list[dict]
) -> None:
    write_pages(tmp_path / "pages", sharegpt_sample[:240])
    inputs = [tmp_path / "pages"]
    fresh = curate_flow(inputs=inputs, out_dir=tmp_path / "fresh", config=_config(cache=False, batch_size=60))
    first = curate_flow(inputs=inputs, out_dir=tmp_path / "out", config=_config(cache=True, batch_size=60))
    again = curate_flow(inputs=inputs, out_dir=tmp_path / "out", config=_config(cache=True, batch_size=60))
    for stage in ("ingest", "markdown", "dedupe_minhash", "split", "tokenize"):
        s_first, s_again = _stage(first, stage), _stage(again, stage)
        assert s_first.parts >= 2 and s_first.parts_reused == 0, stage
        # ingest's parts hold the raw text, so they are not cached (RunConfig.keep_raw_intermediates);
        # parsed again into the same bytes, they let every later stage reuse its parts
        assert s_again.parts_reused == (0 if stage == "ingest" else s_again.parts), stage
        assert s_again.parts == s_first.parts, stage
    assert "| reused |" in (tmp_path / "out" / again.run_id / "report.md").read_text()
    assert_same_outputs(tmp_path / "fresh" / fresh.run_id, tmp_path / "out" / again.run_id)
    assert_nothing_lost(again)
    # lineage: the same input groups (parsed again, not reused), config and output digests
    lineage = [
        RunLineage.model_validate_json((tmp_path / d / r.run_id / "lineage.json").read_text())
        for d, r in (("fresh", fresh), ("out", first), ("out", again))
    ]
    assert [g.group for g in lineage[1].input_groups] == [g.group for g in lineage[2].input_groups]
    assert not any(g.reused for x in lineage for g in x.input_groups)
    assert sum(g.files for g in lineage[2].input_groups) == len(list((tmp_path / "pages").iterdir()))
    assert lineage[0].config_hash == lineage[2].config_hash
    digests = [{o.path: o.blake2b for o in x.outputs if o.path.startswith("conversations/")} for x in lineage]
    assert digests[0] == digests[2] and len(digests[0]) >= 1


@pytest.mark.slow
def test_grown_input_recomputes_only_new_batches_and_dedupes_across_old_and_new(
    tmp_path: Path, prefect_server: None, sharegpt_sample: list[dict]
) -> None:
    """Day 1's pages, then day 2's added beside them, one of them a light edit of a day-1 page."""
    old, new = sharegpt_sample[:200], sharegpt_sample[200:260]
    edited = dict(old[5], id="zz-edited-copy")
    edited["conversations"] = [dict(t) for t in old[5]["conversations"]]
    edited["conversations"][0]["value"] = edited["conversations"][0]["value"] + " Thanks!"
    write_pages(tmp_path / "pages" / "2026-11-20", old)
    config = _config(cache=True, batch_size=50)
    day1 = curate_flow(inputs=[tmp_path / "pages"], out_dir=tmp_path / "out", config=config)
    write_pages(tmp_path / "pages" / "2026-11-21", [*new, edited])
    day2 = curate_flow(inputs=[tmp_path / "pages"], out_dir=tmp_path / "out", config=config)
    fresh = curate_flow(
        inputs=[tmp_path / "pages"], out_dir=tmp_path / "fresh", config=_config(cache=False, batch_size=50)
    )

    ingest1, ingest2 = _stage(day1, "ingest"), _stage(day2, "ingest")
    # ingest is parsed again (its raw parts are not cached), but a day-1 group keeps its files,
    # except at most the last, which day 2's first files may join: the same part bytes, so their
    # cleaning is reused; day 2's parts are new
    assert ingest2.parts_reused == 0 and ingest2.inputs > ingest1.inputs
    markdown = _stage(day2, "markdown")
    assert ingest1.parts - 1 <= markdown.parts_reused < markdown.parts
    assert ingest1.parts >= 3
    # the global stage ran again over old and new: the day-2 copy of a day-1 page is removed
    ledger = pl.read_parquet(tmp_path / "out" / day2.run_id / "ledger" / "*.parquet")
    pair = {"zz-edited-copy", old[5]["id"]}
    removed = ledger.filter(pl.col("conversation_id").is_in(list(pair)))
    assert removed.height == 1 and removed["stage"][0] in ("dedupe_exact", "dedupe_minhash")
    assert {*removed["conversation_id"], *removed["duplicate_of"]} == pair
    assert_same_outputs(tmp_path / "fresh" / fresh.run_id, tmp_path / "out" / day2.run_id)
    assert_nothing_lost(day2)


@pytest.mark.slow
def test_changed_benchmark_list_rechecks_contamination_and_reuses_the_rest(
    tmp_path: Path, prefect_server: None, sharegpt_sample: list[dict]
) -> None:
    write_pages(tmp_path / "pages", sharegpt_sample[:60])
    planted = sharegpt_sample[7]["conversations"][0]["value"]
    bench = tmp_path / "bench.jsonl"
    bench.write_text(json.dumps({"id": "q1", "question": "What is the boiling point of water at sea level?"}) + "\n")
    spec = {"name": "mybench", "path": str(bench), "id_field": "id", "text_fields": ["question"]}

    def config_with(specs: list[dict]) -> CurationConfig:
        data = _config(cache=True, batch_size=20).model_dump(mode="json")
        data["contamination"]["benchmarks"] = specs
        return CurationConfig.model_validate(data)

    first = curate_flow(inputs=[tmp_path / "pages"], out_dir=tmp_path / "out", config=config_with([spec]))
    bench2 = tmp_path / "bench2.jsonl"
    bench2.write_text(json.dumps({"id": "leak", "question": planted}) + "\n")
    spec2 = {"name": "leaked", "path": str(bench2), "id_field": "id", "text_fields": ["question"]}
    second = curate_flow(inputs=[tmp_path / "pages"], out_dir=tmp_path / "out", config=config_with([spec, spec2]))

    assert _stage(second, "markdown").parts_reused == _stage(second, "markdown").parts >= 2
    assert _stage(second, "dedupe_minhash").parts_reused == _stage(second, "dedupe_minhash").parts
    contamination1, contamination2 = _stage(first, "contamination"), _stage(second, "contamination")
    assert contamination2.parts_reused == 0 and contamination2.parts == contamination1.parts
    ledger = pl.read_parquet(tmp_path / "out" / second.run_id / "ledger" / "contamination-*.parquet")
    assert sharegpt_sample[7]["id"] in ledger["conversation_id"].to_list()
    assert "leaked" in " ".join(ledger["detail"].to_list())
    assert_nothing_lost(second)


@pytest.mark.slow
def test_run_killed_mid_way_resumes_to_the_same_outputs(
    tmp_path: Path, prefect_server: None, sharegpt_sample: list[dict]
) -> None:
    """SIGKILL to the whole process group of a running `chatsift curate`, then `--resume`."""
    from prefect.settings import PREFECT_API_URL

    # ~14 parts a stage (batch_size 50), so the kill lands between finished and unfinished parts.
    write_pages(tmp_path / "pages", sharegpt_sample[:100])
    dump = tmp_path / "dump.json.gz"
    with gzip.open(dump, "wt", encoding="utf-8") as f:
        json.dump(sharegpt_sample[:600], f)
    inputs = [dump, tmp_path / "pages"]
    reference = curate_flow(inputs=inputs, out_dir=tmp_path / "reference", config=_config(cache=False, batch_size=50))

    config_file = tmp_path / "config.json"
    config_file.write_text(_config(cache=True, batch_size=50).model_dump_json())
    out = tmp_path / "out"
    command = [sys.executable, "-m", "flows.cli", "curate", *map(str, inputs), "--out", str(out)]
    command += ["--config", str(config_file), "--run-id", "killed"]
    # The child reports to this session's test server instead of starting its own.
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    log = open(tmp_path / "killed.log", "wb")
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )

    def finished_clean_parts() -> int:
        # not the temporary folders an entry is written in before it is renamed into place
        return sum(1 for p in (out / "cache" / "clean").glob("*/*/result.json") if not p.parent.name.startswith("."))

    deadline = time.monotonic() + 300
    # Kill once some clean parts are finished (so there is work to reuse) and before the run ends.
    while time.monotonic() < deadline and process.poll() is None:
        if finished_clean_parts() >= 3:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed: " + (tmp_path / "killed.log").read_text()
    os.killpg(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    run = out / "killed"
    assert not (run / "report.json").exists(), "killed before the end"
    finished_before_kill = finished_clean_parts()

    assert main(["curate", "--resume", str(run)]) == 0
    resumed = RunReport.model_validate_json((run / "report.json").read_text())
    clean = _stage(resumed, "markdown")
    assert clean.parts_reused == finished_before_kill >= 3 and clean.parts_reused < clean.parts
    assert _stage(resumed, "ingest").parts_reused == 0  # raw parts are never cached: parsed again
    assert_same_outputs(tmp_path / "reference" / reference.run_id, run)
    assert (resumed.records_read, resumed.kept, resumed.dropped) == (
        reference.records_read,
        reference.kept,
        reference.dropped,
    )
    assert_nothing_lost(resumed)
    # nothing duplicated: each record once in the output or the ledger, no temporary files left
    # (ids alone repeat: the real sample has a few ids twice, and the pages copy dump records)
    output = pl.read_parquet(run / "conversations" / "*.parquet").unnest("provenance")
    assert output.height == resumed.rows
    assert output.select("input_file", "record_index", "split_index").is_duplicated().sum() == 0
    ledger = pl.read_parquet(run / "ledger" / "*.parquet").filter(pl.col("scope") == "conversation")
    assert ledger.select("input_file", "record_index").is_duplicated().sum() == 0
    assert not [p for p in run.rglob("*") if p.name.startswith(".tmp-")]
    assert StageCache(out / "cache").remove_temporaries() == 0
