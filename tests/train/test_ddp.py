"""Two ranks (`python -m train.run` as torchrun starts it, a real gloo group on 127.0.0.1, CPU) train exactly
as one rank with twice the accumulation.

With one row per row group, rank r's k-th step reads rows 2k + r of the shuffled plan, and one rank
accumulating two micro-batches reads rows 2k and 2k + 1: the same global batch. The loss of each
micro-batch is divided by the supervised tokens of the whole global batch (all-reduced), and DDP
averages gradients over ranks, so losses, token counts and the final adapter must agree.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

import torch.multiprocessing as mp  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from schemas.config import FinetuneConfig  # noqa: E402
from tests.helpers.tiny_training import SYNTHETIC_VOCAB, build_synthetic_shards, finetune_as_rank, save_tiny_llama  # noqa: E402
from train.run import run_finetune  # noqa: E402

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_ranks_match_one_rank_with_twice_the_accumulation(tmp_path: Path) -> None:
    model = save_tiny_llama(tmp_path / "model", vocab_size=SYNTHETIC_VOCAB)
    shards = build_synthetic_shards(tmp_path / "shards", conversations=40, rows_per_row_group=1)
    common = {
        "lora_dropout": 0.0,
        "learning_rate": 5e-3,
        "warmup_ratio": 0.0,
        "max_steps": 3,
        "loader_workers": 0,
        "save_every_steps": 0,
        "gradient_checkpointing": False,
    }
    one = FinetuneConfig(**common, micro_batch_rows=1, gradient_accumulation_steps=2)
    two = FinetuneConfig(**common, micro_batch_rows=1, gradient_accumulation_steps=1)

    single = run_finetune(shards, str(model), config=one, run_dir=tmp_path / "one-rank")
    config_json = tmp_path / "two-ranks.json"
    config_json.write_text(two.model_dump_json())
    arguments = ["--shards", str(shards), "--model", str(model), "--run-dir", str(tmp_path / "two-ranks")]
    # the torchrun entry point, on a gloo group since there is no GPU
    mp.spawn(finetune_as_rank, args=(2, _free_port(), [*arguments, "--config-json", str(config_json)]), nprocs=2)

    summary = json.loads((tmp_path / "two-ranks" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == single.steps == 3
    for a, b in zip(_metrics(tmp_path / "one-rank"), _metrics(tmp_path / "two-ranks"), strict=True):
        assert (a["tokens"], a["loss_tokens"]) == (b["tokens"], b["loss_tokens"])
        assert abs(a["loss"] - b["loss"]) < 1e-5
    expected = load_file(tmp_path / "one-rank" / "final" / "adapter_model.safetensors")
    got = load_file(tmp_path / "two-ranks" / "final" / "adapter_model.safetensors")
    assert expected.keys() == got.keys() and expected
    worst = max(float((expected[k] - got[k]).abs().max()) for k in expected)
    assert worst < 1e-5, worst
