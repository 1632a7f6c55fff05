"""Checks on a finished run that several test modules make."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from curation.runs.stage_reports import ledger_balance_errors
from curation.shards.split import PIECE_ID_SUFFIX
from schemas import DROP_REASONS, RunReport


def assert_nothing_lost(report: RunReport) -> None:
    """Every record read is in the output or in the ledger: recounted here from the files, with
    plain Python sets, independently of the flow's own polars count."""
    assert ledger_balance_errors(report) == []
    conv_files = sorted(Path(report.outputs["conversations"]).glob("*.parquet"))
    ledger_files = sorted(Path(report.outputs["ledger"]).glob("*.parquet"))
    output = pl.concat([pl.read_parquet(f) for f in conv_files])
    ledger = pl.concat([pl.read_parquet(f) for f in ledger_files])
    kept = {(p["input_file"], p["record_index"]) for p in output["provenance"].to_list()}
    in_ledger = set(zip(ledger["input_file"], ledger["record_index"], strict=True))
    assert None not in {k[1] for k in kept | in_ledger}, "every record keeps its position in its input"
    assert len(kept) == report.kept
    assert len(in_ledger - kept) == report.dropped
    assert report.records_read == report.kept + report.dropped
    assert output.height == report.rows
    assert set(ledger["reason"].unique()) <= set(DROP_REASONS)
    assert ledger["stage"].null_count() == 0
    # every conversation-scope drop is a record that is not in the output, but for a split piece
    # ("<id>--pN"), which leaves alone while the record's other pieces go on
    is_piece = pl.col("conversation_id").str.contains(PIECE_ID_SUFFIX)
    whole = ledger.filter((pl.col("scope") == "conversation") & ~is_piece)
    assert not set(zip(whole["input_file"], whole["record_index"], strict=True)) & kept
