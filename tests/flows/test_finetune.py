"""`chatsift finetune` and the finetune flow on a real Prefect server, on shards curated from real conversations.

The shards come from the project's own curate run over 200 real ShareGPT conversations with the
real Phi-3 tokenizer and template; the model is a tiny randomly initialised Llama with Phi-3's
vocabulary size, loaded from a folder as a real model is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("peft")

from flows.cli import main  # noqa: E402
from flows.finetune import finetune_flow  # noqa: E402
from schemas.config import FinetuneConfig  # noqa: E402
from schemas.finetune import StepMetrics, TrainingLineage  # noqa: E402
from schemas.shards import read_manifest  # noqa: E402
from tests.helpers.terminal import terminal_text  # noqa: E402
from tests.helpers.tiny_training import save_tiny_llama  # noqa: E402
from train.run import LINEAGE_NAME  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


@pytest.fixture(scope="module")
def real_shards(
    tmp_path_factory: pytest.TempPathFactory, prefect_server: None, sharegpt_sample: list[dict], shared_data: Path
) -> Path:
    folder = tmp_path_factory.mktemp("real-shards")
    dump = folder / "sample.json"
    dump.write_text(json.dumps(sharegpt_sample[:200]))
    config = folder / "config.json"
    config.write_text(
        json.dumps(
            {
                "tokenizer": {"spec": str(shared_data / "tokenizers" / "phi-3")},
                "shards": {"template": "phi3", "max_seq_len": 1024, "rows_per_row_group": 8},
                "split": {"max_tokens": 1024},
                "contamination": {"enabled": False},
            }
        )
    )
    assert main(["curate", str(dump), "--out", str(folder / "runs"), "--config", str(config), "--run-id", "c"]) == 0
    return folder / "runs" / "c" / "shards"


@pytest.fixture(scope="module")
def phi3_sized_model(tmp_path_factory: pytest.TempPathFactory, real_shards: Path) -> Path:
    vocab = read_manifest(real_shards).tokenizer.vocab_size
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-phi3-vocab"), vocab_size=vocab)


def _artifacts(flow_run_id: Any) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key: a for a in found}


def test_cli_fine_tunes_on_real_shards_with_lineage_and_loss_curve(
    real_shards: Path, phi3_sized_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "finetune.toml"
    # two spawned loader workers, as a GPU run uses
    config.write_text("[finetune]\ngradient_accumulation_steps = 2\nloader_workers = 2\nlearning_rate = 5e-3\n")
    args = ["finetune", "--shards", str(real_shards), "--model", str(phi3_sized_model), "--out", str(tmp_path)]
    assert main([*args, "--config", str(config), "--run-id", "ft", "--max-steps", "4", "--progress", "on"]) == 0
    printed, terminal = capsys.readouterr()
    assert "4/4 steps" in terminal_text(terminal) and "tokens/s" in terminal_text(terminal)
    summary = json.loads((tmp_path / "ft" / "summary.json").read_text())
    assert f'"run_dir": "{tmp_path / "ft"}"' in printed
    assert summary["steps"] == 4 and summary["method"] == "lora" and summary["tokens"] > 0
    manifest = read_manifest(real_shards)
    lineage = TrainingLineage.model_validate_json((tmp_path / "ft/final" / LINEAGE_NAME).read_text())
    assert (lineage.shards_manifest.run_id, lineage.shards_manifest.config_hash) == ("c", manifest.config_hash)
    assert lineage.shards_manifest.tokenizer.name.endswith("phi-3")
    assert lineage.config.loader_workers == 2 and lineage.config.max_steps == 4
    metrics = [StepMetrics.model_validate_json(x) for x in (tmp_path / "ft/metrics.jsonl").read_text().splitlines()]
    assert [m.step for m in metrics] == [1, 2, 3, 4]
    # a global batch is 2 packed rows of at most 1024 tokens
    assert all(0 < m.loss_tokens < m.tokens <= 2 * 1024 for m in metrics)

    # the same run id again is refused before any work, with the way out in the message
    assert main([*args, "--run-id", "ft", "--max-steps", "4"]) == 2
    assert "resume it, or pass another run id" in capsys.readouterr().err
    # a model whose vocabulary cannot hold the shards' ids: refused before any work
    small = save_tiny_llama(tmp_path / "small", vocab_size=1000)
    before = sorted(tmp_path.iterdir())
    assert main(["finetune", "--shards", str(real_shards), "--model", str(small), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "rebuild the shards with the model's own tokenizer" in err
    assert sorted(tmp_path.iterdir()) == before  # no run folder was started


def test_flow_reports_progress_and_the_loss_curve_as_artifacts(
    real_shards: Path, phi3_sized_model: Path, tmp_path: Path
) -> None:
    config = FinetuneConfig(max_steps=3, gradient_accumulation_steps=2, loader_workers=0, log_every_steps=1)
    state = finetune_flow(
        shards_dir=str(real_shards),
        model=str(phi3_sized_model),
        out_dir=str(tmp_path),
        config=config,
        run_id="flow",
        return_state=True,
    )
    assert state.is_completed(), state
    artifacts = _artifacts(state.state_details.flow_run_id)
    assert {"finetune-loss-curve", "finetune-summary", "finetune-loss-curve-svg", "finetune-progress"} <= set(artifacts)
    logged = [StepMetrics.model_validate_json(x) for x in (tmp_path / "flow/metrics.jsonl").read_text().splitlines()]
    table = artifacts["finetune-loss-curve"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert [r["loss"] for r in rows] == [round(m.loss, 5) for m in logged]
    assert "Fine-tuning run flow" in str(artifacts["finetune-summary"].data)
    assert float(artifacts["finetune-progress"].data) == pytest.approx(100.0)
    assert str(artifacts["finetune-loss-curve-svg"].data).endswith("loss_curve.svg)")

    # a missing model fails the flow run before any task, with the fix in the message the UI shows
    bad = finetune_flow(
        shards_dir=str(real_shards),
        model=str(tmp_path / "nope"),
        out_dir=str(tmp_path),
        config=config,
        return_state=True,
    )
    assert bad.is_failed() and "not a model folder" in str(bad.message)
