"""curate tokenizes in its split stage, with the encodings split counted with; its shards are those that
`shards build` makes from the run's conversations by tokenizing them afresh."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from demo.inputs import DEMO_CONFIG, write_demo_inputs
from flows.curate import curate_flow
from flows.shards import build_shards_flow
from schemas import RunReport
from schemas.config import CurationConfig
from schemas.shards import read_manifest
from tests.helpers.runs import write_pages

pytestmark = pytest.mark.slow


def _shard_rows(shards: Path) -> list[dict]:
    manifest = read_manifest(shards)
    return [row for shard in manifest.shards for row in pq.read_table(shards / shard.file).to_pylist()]


def test_curate_shards_equal_a_fresh_tokenization_of_its_conversations(
    tmp_path: Path, prefect_server: None, sharegpt_sample: list[dict]
) -> None:
    inputs = write_demo_inputs(tmp_path / "in")
    write_pages(tmp_path / "in" / "real-pages", sharegpt_sample[:60])
    data = DEMO_CONFIG.model_dump(mode="json")
    data["run"] |= {"batch_size": 25, "cache": False}
    config = CurationConfig.model_validate(data)
    report: RunReport = curate_flow(inputs=[*inputs, tmp_path / "in" / "real-pages"], out_dir=tmp_path, config=config)
    split = next(s for s in report.stages if s.stage == "split")
    assert split.changed["conversations_split"] > 0 and split.parts > 1  # pieces start at new places
    run = tmp_path / report.run_id
    rebuilt = build_shards_flow(conversations=run / "conversations", out_dir=tmp_path / "rebuilt", config=config)
    curated_rows, rebuilt_rows = _shard_rows(run / "shards"), _shard_rows(Path(rebuilt["manifest"]).parent)
    assert len(curated_rows) == len(rebuilt_rows) > 0
    assert curated_rows == rebuilt_rows
