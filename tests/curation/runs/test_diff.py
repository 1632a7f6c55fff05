"""`chatsift runs diff/list`: which conversations entered or left between two runs, and the ledger's why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from curation.parquet import write_conversations, write_ledger
from curation.runs.diff import (
    NEW_INPUT_WHY,
    NOT_IN_B_WHY,
    RunDirError,
    diff_runs,
    list_runs,
    load_run,
    run_diff_json,
    run_diff_text,
)
from flows.cli import main
from schemas import Conversation, Dropped, RunReport
from schemas.config import CurationConfig
from schemas.files import atomic_write_text
from tests.helpers.conversations import conversation


def _cli(argv: list[str]) -> int:
    """`chatsift runs ...` as the command runs it."""
    return main(argv)


# --- hand-made runs --------------------------------------------------------------------------


def _conv(cid: str, *, at: tuple[str, int], parent: str | None = None, index: int | None = None) -> Conversation:
    """One question and its answer, read from record `at` = (input file, record index)."""
    return conversation(
        ("user", "q"),
        ("assistant", "a"),
        id=cid,
        source="test",
        input_file=at[0],
        record_index=at[1],
        content_hash="0" * 32,
        parent_id=parent,
        split_index=index,
    )


def _drop(
    cid: str, stage: Any, reason: Any, detail: str = "", *, at: tuple[str, int], scope: Any = "conversation"
) -> Dropped:
    return Dropped(
        conversation_id=cid,
        stage=stage,
        reason=reason,
        detail=detail,
        input_file=at[0],
        record_index=at[1],
        scope=scope,
    )


def _write_run(
    root: Path,
    run_id: str,
    *,
    kept: list[Conversation],
    drops: list[Dropped],
    config: dict[str, Any],
    inputs: list[str],
    code: str,
) -> Path:
    run = root / run_id
    # Two parts each, as a batched run writes them: the diff must read every part.
    half = len(kept) // 2
    write_conversations(run / "conversations" / "part-00000.parquet", kept[:half])
    write_conversations(run / "conversations" / "part-00001.parquet", kept[half:])
    write_ledger(run / "ledger" / "clean-00000.parquet", drops[: len(drops) // 2])
    write_ledger(run / "ledger" / "split-00000.parquet", drops[len(drops) // 2 :])
    atomic_write_text(run / "config.json", json.dumps(config))
    report = RunReport(
        run_id=run_id, started_at="2025-01-01T00:00:00+00:00", inputs=inputs, config_hash=run_id * 4, code_version=code
    )
    atomic_write_text(run / "report.json", report.model_dump_json())
    return run


@pytest.fixture
def small_runs(tmp_path: Path) -> tuple[Path, Path]:
    f1, f2 = "in/one.jsonl", "in/two.jsonl"
    cut_a = "cut at turn 2 of 4: benchmark=b item=1"
    same_cut = "round 1 of 3 (900 tokens) max=256"
    a = _write_run(
        tmp_path,
        "runA",
        kept=[
            # split in A, whole in B: kept in both, counted once
            _conv("long--p0", at=(f1, 0), parent="long", index=0),
            _conv("long--p1", at=(f1, 0), parent="long", index=1),
            _conv("stay", at=(f1, 1)),
            _conv("cutme", at=(f1, 2)),
            _conv("gone-dropped", at=(f1, 3)),
            _conv("gone-absent", at=(f2, 0)),
            _conv("unreadable-in-b", at=(f1, 5)),
        ],
        drops=[
            _drop("cutme", "contamination", "contaminated_rounds_cut", cut_a, at=(f1, 2), scope="round"),
            _drop("stay", "split", "round_too_long", same_cut, at=(f1, 1), scope="round"),
            _drop("back", "shape", "too_short", at=(f1, 6)),
            # an id dropped twice (it repeats in the input): the earliest stage is the why
            _drop("dup", "dedupe_exact", "exact_duplicate", "same as stay", at=(f1, 7)),
            _drop("dup", "shape", "no_turns", "0 turns", at=(f1, 8)),
        ],
        config={"shape": {"min_chars": 16, "keep": [1, 2]}, "blocked": {"mode": "zero_weight"}},
        inputs=["in/one.jsonl", "in/two.jsonl"],
        code="v1",
    )
    b = _write_run(
        tmp_path,
        "runB",
        kept=[
            _conv("long", at=(f1, 0)),
            _conv("stay", at=(f1, 1)),
            _conv("cutme", at=(f1, 2)),
            _conv("back", at=(f1, 6)),
            _conv("dup", at=(f1, 7)),
            _conv("fresh", at=("in/three.jsonl", 0)),
            # a new conversation split into pieces: one entered id, its parent's
            _conv("long2--p0", at=("in/three.jsonl", 1), parent="long2", index=0),
            _conv("long2--p1", at=("in/three.jsonl", 1), parent="long2", index=1),
        ],
        drops=[
            _drop("stay", "split", "round_too_long", same_cut, at=(f1, 1), scope="round"),
            _drop("gone-dropped", "blocked", "blocked_word", "phrase='x' turn=1", at=(f1, 3)),
            # ingest could not read it, so the ledger has its position, not its id
            _drop("one.jsonl#5", "ingest", "record_too_large", "record of 9 bytes", at=(f1, 5)),
            # a later-stage drop of a row that stays in conversations/ changes nothing here
            _drop("long", "tokenize", "no_supervised_tokens", at=(f1, 0)),
        ],
        config={"shape": {"min_chars": 32, "keep": [1, 2]}, "blocked": {"mode": "zero_weight"}, "extra": {"on": True}},
        inputs=["in/one.jsonl", "in/three.jsonl"],
        code="v2",
    )
    return a, b


def test_diff_of_hand_made_runs_names_every_move_and_its_why(small_runs: tuple[Path, Path]) -> None:
    a, b = small_runs
    diff = diff_runs(load_run(a), load_run(b))
    assert dict(diff.entered.select("conversation_id", "why").iter_rows()) == {
        "back": "A dropped it at shape: too_short",
        "dup": "A dropped it at shape: no_turns (0 turns)",
        "fresh": NEW_INPUT_WHY,
        "long2": NEW_INPUT_WHY,
    }
    assert dict(diff.left.select("conversation_id", "why").iter_rows()) == {
        "gone-absent": NOT_IN_B_WHY,
        "gone-dropped": "B dropped it at blocked: blocked_word (phrase='x' turn=1)",
        "unreadable-in-b": (
            "B dropped it at ingest: record_too_large (record of 9 bytes) [ledgered by input position as one.jsonl#5]"
        ),
    }
    assert diff.left.filter(pl.col("conversation_id") == "unreadable-in-b").row(0, named=True)["stage"] == "ingest"
    assert diff.unchanged == 3  # long (split in A only), stay, cutme
    assert (diff.kept_a, diff.kept_b) == (6, 7)
    assert diff.cut_changed.to_dicts() == [
        {
            "conversation_id": "cutme",
            "cuts_a": ["contamination: contaminated_rounds_cut (cut at turn 2 of 4: benchmark=b item=1)"],
            "cuts_b": [],
        }
    ]
    assert diff.entered_by_reason.select("label", "count").rows() == [
        (NEW_INPUT_WHY, 2),
        ("shape: no_turns", 1),
        ("shape: too_short", 1),
    ]
    assert [(c.key, c.a, c.b, c.only_in) for c in diff.config_changes] == [
        ("extra.on", None, True, "B"),
        ("shape.min_chars", 16, 32, None),
    ]
    assert (diff.inputs_only_a, diff.inputs_only_b) == (("in/two.jsonl",), ("in/three.jsonl",))

    text = run_diff_text(diff, limit=2)
    assert "entered 4, left 3, unchanged 3; round cuts changed 1" in text
    assert "code version: v1 -> v2" in text
    assert "entered (first 2 of 4):\n  back  A dropped it at shape: too_short\n  dup  " in text
    assert "fresh" not in text.split("entered (first 2 of 4):")[1].split("\n\n")[0]
    assert "  cutme\n    A: contamination: contaminated_rounds_cut" in text and "    B: no cut" in text
    assert "shape.min_chars: 16 -> 32" in text and "extra.on: (absent) -> true" in text
    assert text.index("by reason") < text.index("entered (first") < text.index("config differences")

    as_json = json.loads(json.dumps(run_diff_json(diff)))
    assert {e["conversation_id"] for e in as_json["entered"]} == {"back", "dup", "fresh", "long2"}
    assert as_json["counts"] == {
        "kept_a": 6,
        "kept_b": 7,
        "entered": 4,
        "left": 3,
        "unchanged": 3,
        "cut_changed": 1,
    }
    assert (as_json["a"]["code_version"], as_json["b"]["code_version"]) == ("v1", "v2")
    assert len(run_diff_json(diff, limit=1)["entered"]) == 1


def test_a_run_against_itself_is_all_unchanged(small_runs: tuple[Path, Path]) -> None:
    a, _ = small_runs
    diff = diff_runs(load_run(a), load_run(a))
    assert (diff.entered.height, diff.left.height, diff.cut_changed.height, diff.unchanged) == (0, 0, 0, 6)
    assert diff.config_changes == () and "config: same" in run_diff_text(diff)


def test_paths_that_are_not_runs_fail_with_what_to_pass(
    small_runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = small_runs
    with pytest.raises(RunDirError, match="no report.json.*pass a run directory.*runA, runB"):
        load_run(tmp_path)  # the --out folder, not a run in it
    with pytest.raises(RunDirError, match="is not a directory"):
        load_run(tmp_path / "nope")
    assert _cli(["runs", "diff", str(a), str(tmp_path)]) == 2
    assert "chatsift: error:" in (err := capsys.readouterr().err) and "no report.json" in err
    assert _cli(["runs", "list", str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    # a Parquet file in ledger/ that chatsift did not write
    pl.DataFrame({"x": [1]}).write_parquet(a / "ledger" / "foreign.parquet")
    with pytest.raises(RunDirError, match="expected a chatsift ledger file"):
        load_run(a)


def test_runs_list_prints_one_line_per_run(small_runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = small_runs
    (a.parent / "not-a-run").mkdir()
    assert _cli(["runs", "list", str(a.parent)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["runA", "runB"]
    assert "config runArunA  code v1" in lines[0] and "read 0  kept 0  dropped 0" in lines[0]
    assert [p.name for p, _ in list_runs(a)] == ["runA"]  # a run directory itself lists itself


# --- two real runs of the curate flow --------------------------------------------------------

DEMO_NEW = {
    "id": "diff-new-1",
    "messages": [
        {"role": "user", "content": "What colour is the sky on a clear day, and why?"},
        {
            "role": "assistant",
            "content": "Blue: air scatters the short wavelengths of sunlight more than the long ones.",
        },
    ],
}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory, prefect_server: None) -> tuple[Path, Path]:
    """A: the demo as shipped. B: contamination off (the planted contaminated conversation enters),
    blocked phrases drop instead of zero-weighting (the refusal leaves), the JSONL input swapped
    for a new one (its conversations leave, the new one enters)."""
    from demo.inputs import DEMO_CONFIG, write_demo_inputs
    from flows.curate import curate_flow

    root = tmp_path_factory.mktemp("runs-diff")
    pages, dump, jsonl = write_demo_inputs(root / "in")
    new = root / "in" / "new.jsonl"
    new.write_text(json.dumps(DEMO_NEW) + "\n", encoding="utf-8")
    data = DEMO_CONFIG.model_dump(mode="json")
    data["contamination"]["enabled"] = False
    data["blocked"]["mode"] = "drop"
    config_b = CurationConfig.model_validate(data)
    out = root / "out"
    curate_flow(inputs=[pages, dump, jsonl], out_dir=out, config=DEMO_CONFIG, run_id="A")
    curate_flow(inputs=[pages, dump, new], out_dir=out, config=config_b, run_id="B")
    return out / "A", out / "B"


def _kept_ids(run: Path) -> dict[str, str]:
    """Source id -> input file, read back with plain Python (no joins), to check the diff against."""
    rows = pl.read_parquet(run / "conversations" / "*.parquet").to_dicts()
    return {r["parent_id"] or r["id"]: r["provenance"]["input_file"] for r in rows}


def _ledger_rows(run: Path, scope: str) -> dict[str, list[dict[str, Any]]]:
    rows: dict[str, list[dict[str, Any]]] = {}
    for r in pl.read_parquet(run / "ledger" / "*.parquet").to_dicts():
        if r["scope"] == scope:
            rows.setdefault(r["conversation_id"], []).append(r)
    return rows


@pytest.mark.slow
def test_diff_of_two_real_runs_matches_their_ledgers(two_runs: tuple[Path, Path]) -> None:
    a, b = two_runs
    kept_a, kept_b = _kept_ids(a), _kept_ids(b)
    drops_a, drops_b = _ledger_rows(a, "conversation"), _ledger_rows(b, "conversation")
    diff = diff_runs(load_run(a), load_run(b))
    entered = dict(diff.entered.select("conversation_id", "why").iter_rows())
    left = dict(diff.left.select("conversation_id", "why").iter_rows())

    # the planted conversations: what each config change and input change must do
    from_jsonl = {cid for cid, f in kept_a.items() if f.endswith("instructions.jsonl")}
    assert len(from_jsonl) == 3  # two Alpaca records and msgs-1
    assert set(entered) == {"demoK2l3_0", "diff-new-1"}
    assert set(left) == {"demoL1m2_0"} | from_jsonl
    assert diff.unchanged == len(kept_a.keys() & kept_b.keys()) == len(kept_a) - len(left)

    # each why is what the other run's ledger says, recomputed here from its rows
    def why(rows: list[dict[str, Any]], run: str) -> str:
        (r,) = rows
        return f"{run} dropped it at {r['stage']}: {r['reason']} ({r['detail']})"

    assert entered["demoK2l3_0"] == why(drops_a["demoK2l3_0"], "A")
    assert entered["demoK2l3_0"].startswith(
        "A dropped it at contamination: benchmark_contamination (benchmark=demo_bench"
    )
    assert entered["diff-new-1"] == NEW_INPUT_WHY and "diff-new-1" not in drops_a
    assert left["demoL1m2_0"] == why(drops_b["demoL1m2_0"], "B")
    assert left["demoL1m2_0"].startswith("B dropped it at blocked: blocked_word (")
    assert all(left[cid] == NOT_IN_B_WHY and cid not in drops_b for cid in from_jsonl)

    # the contaminated rounds A cut from demoM4n5_0 are not cut in B
    cuts_a = _ledger_rows(a, "round")
    assert set(cuts_a) == {"demoM4n5_0"} and not _ledger_rows(b, "round")
    (changed,) = diff.cut_changed.to_dicts()
    assert changed["conversation_id"] == "demoM4n5_0" and changed["cuts_b"] == []
    assert changed["cuts_a"] == [f"contamination: contaminated_rounds_cut ({cuts_a['demoM4n5_0'][0]['detail']})"]

    assert [(c.key, c.a, c.b) for c in diff.config_changes] == [
        ("blocked.mode", "zero_weight", "drop"),
        ("contamination.enabled", True, False),
    ]
    assert [Path(p).name for p in diff.inputs_only_a] == ["instructions.jsonl"]
    assert [Path(p).name for p in diff.inputs_only_b] == ["new.jsonl"]
    report_a = RunReport.model_validate_json((a / "report.json").read_text())
    assert diff.kept_a == report_a.kept == len(kept_a)


@pytest.mark.slow
def test_inputs_are_the_same_by_content_wherever_they_lie(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    """A's inputs copied elsewhere, a file renamed on the way: the same inputs, so none is only in either run."""
    import shutil

    from demo.inputs import DEMO_CONFIG
    from flows.curate import curate_flow

    a, _ = two_runs
    copies = []
    for k, given in enumerate(map(Path, RunReport.model_validate_json((a / "report.json").read_text()).inputs)):
        copy = tmp_path / "elsewhere" / f"renamed-{k}{given.suffix}"
        copy.parent.mkdir(exist_ok=True)
        shutil.copytree(given, copy) if given.is_dir() else shutil.copyfile(given, copy)
        copies.append(copy)
    curate_flow(inputs=copies, out_dir=tmp_path / "out", config=DEMO_CONFIG, run_id="C")
    diff = diff_runs(load_run(a), load_run(tmp_path / "out" / "C"))
    assert (diff.inputs_only_a, diff.inputs_only_b) == ((), ())
    assert diff.unchanged == diff.kept_a > 0 and diff.entered.height == diff.left.height == 0


@pytest.mark.slow
def test_runs_cli_prints_the_diff_and_its_json(two_runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    a, b = two_runs
    assert _cli(["runs", "diff", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    assert "entered 2, left 4" in text
    assert "  demoK2l3_0  A dropped it at contamination: benchmark_contamination (" in text
    assert f"  diff-new-1  {NEW_INPUT_WHY}" in text
    assert "  demoL1m2_0  B dropped it at blocked: blocked_word (" in text
    assert f"       3  {NOT_IN_B_WHY}" in text
    assert 'blocked.mode: "zero_weight" -> "drop"' in text and "contamination.enabled: true -> false" in text

    assert _cli(["runs", "diff", str(a), str(b), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {e["conversation_id"] for e in data["entered"]} == {"demoK2l3_0", "diff-new-1"}
    assert len(data["left"]) == 4 and data["counts"]["cut_changed"] == 1
    assert {"key": "blocked.mode", "a": "zero_weight", "b": "drop"} in data["config_changes"]

    assert _cli(["runs", "diff", str(a), str(b), "--limit", "1"]) == 0
    assert "left (first 1 of 4):" in capsys.readouterr().out

    assert _cli(["runs", "list", str(a.parent)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["A", "B"]
    report_b = RunReport.model_validate_json((b / "report.json").read_text())
    assert f"read {report_b.records_read}  kept {report_b.kept}  dropped {report_b.dropped}" in lines[1]
    assert f"config {report_b.config_hash[:8]}  code {report_b.code_version}" in lines[1]
