"""TRL's SFTTrainer on chatsift shards as they are: the README's example (docs/examples/train_with_trl.py).

The shards hold real ShareGPT conversations tokenized with the real Phi-3 tokenizer and template,
packed and unpacked; the model is a tiny random Llama of Phi-3's vocabulary saved with that
tokenizer, as a user's model folder is. TRL must supervise exactly the manifest's loss tokens,
restart positions at every packed conversation, and compute the same loss as train/ on the same rows.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("trl")

import torch  # noqa: E402

from curation.shards.chat_templates import chat_template_for  # noqa: E402
from curation.shards.pack import pack_conversations  # noqa: E402
from curation.shards.tokenization import tokenize_conversations  # noqa: E402
from curation.shards.tokenizer_load import load_tokenizer  # noqa: E402
from curation.shards.write import chat_template_info, tokenizer_info, write_shards  # noqa: E402
from schemas.config import ShardsConfig  # noqa: E402
from schemas.shards import read_manifest  # noqa: E402
from tests.helpers.planting import real_conversation  # noqa: E402
from tests.helpers.tiny_training import save_tiny_llama  # noqa: E402
from train.collate import collate_packed, packed_loss  # noqa: E402
from train.data import PackedShardDataset  # noqa: E402

pytestmark = [pytest.mark.shared_data]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "train_with_trl.py"
MAX_SEQ_LEN = 512
CONVERSATIONS = 40


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_with_trl", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def phi3(shared_data: Path) -> Path:
    return shared_data / "tokenizers" / "phi-3"


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory, sharegpt_sample: list[dict], phi3: Path) -> dict[str, Path]:
    """Packed and unpacked shards of the first real conversations that fit MAX_SEQ_LEN."""
    tokenizer = load_tokenizer(str(phi3), cache_dir=tmp_path_factory.mktemp("tokenizer-cache"))
    template = chat_template_for("tokenizer", tokenizer_config=phi3 / "tokenizer_config.json")
    convs = [c for i, raw in enumerate(sharegpt_sample[:400]) if (c := real_conversation(raw, i)) is not None]
    tokenized, _ = tokenize_conversations(convs, tokenizer=tokenizer, template=template)
    fitting = [t for t in tokenized if len(t.input_ids) <= MAX_SEQ_LEN][:CONVERSATIONS]
    assert len(fitting) == CONVERSATIONS
    out: dict[str, Path] = {}
    for layout in ("packed", "unpacked"):
        config = ShardsConfig(max_seq_len=MAX_SEQ_LEN, layout=layout, rows_per_row_group=4, template="tokenizer")
        rows, dropped, packing = pack_conversations(fitting, config=config)
        assert not dropped
        out[layout] = tmp_path_factory.mktemp(f"shards-{layout}")
        write_shards(
            rows,
            out[layout],
            config=config,
            tokenizer_info=tokenizer_info(
                tokenizer, str(phi3), template=template, tokenizer_config=phi3 / "tokenizer_config.json"
            ),
            template="tokenizer",
            chat_template=chat_template_info(tokenizer, template),
            run_id="trl",
            config_hash="h",
            truncated=packing.truncated,
        )
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, phi3: Path) -> Path:
    """A tiny random Llama with Phi-3's vocabulary, saved with the Phi-3 tokenizer beside it."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("tiny-llama-phi3")
    tokenizer = AutoTokenizer.from_pretrained(phi3)
    save_tiny_llama(folder, vocab_size=len(tokenizer))
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("layout", ["packed", "unpacked"])
def test_trl_supervises_exactly_the_manifests_loss_tokens(
    layout: str, shards: dict[str, Path], model_dir: Path, tmp_path: Path
) -> None:
    trainer = _example().trainer_for(shards[layout], str(model_dir), str(tmp_path / "out"), max_steps=1)
    manifest = read_manifest(shards[layout])
    labels = trainer.train_dataset["labels"]
    supervised = sum(sum(1 for label in row if label != -100) for row in labels)
    assert supervised == manifest.total_loss_tokens, (supervised, manifest.total_loss_tokens, manifest.total_tokens)
    assert sum(len(row) for row in labels) == manifest.total_tokens  # nothing truncated
    # one real optimizer step through the documented trainer
    result = trainer.train()
    assert result.global_step == 1 and torch.isfinite(torch.tensor(result.training_loss))


def _collated_by_trl(trainer: Any, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """TRL's collator on the dataset rows TRL prepared from the shard rows `rows` (train.data's)."""
    by_ids = {tuple(r["input_ids"]): r for r in trainer.train_dataset}
    return trainer.data_collator([by_ids[tuple(r["input_ids"].tolist())] for r in rows])


@pytest.fixture(scope="module")
def packed_rows(shards: dict[str, Path]) -> list[dict[str, Any]]:
    """Two packed rows holding three conversations or more."""
    rows = sorted(PackedShardDataset(shards["packed"]), key=lambda r: -len(r["seq_lengths"]))[:2]
    assert sum(len(r["seq_lengths"]) for r in rows) >= 3
    return rows


def test_packed_rows_restart_positions_at_every_conversation(
    shards: dict[str, Path], model_dir: Path, packed_rows: list[dict[str, Any]]
) -> None:
    trainer = _example().trainer_for(shards["packed"], str(model_dir), "unused", max_steps=1)
    batch = _collated_by_trl(trainer, packed_rows)
    # one flat sequence with no attention mask: attention follows the positions
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch
    lengths = [int(n) for r in packed_rows for n in r["seq_lengths"]]
    assert torch.equal(batch["position_ids"][0], torch.cat([torch.arange(n) for n in lengths]))
    starts = torch.tensor([0, *lengths[:-1]]).cumsum(0)
    assert bool((batch["labels"][0][starts] == -100).all())  # no conversation's first token is a target
    # the batches TRL trains on: one flat sequence each, positions restarting
    first = next(iter(trainer.get_train_dataloader()))
    assert first["input_ids"].shape[0] == 1 and int((first["position_ids"][0] == 0).sum()) >= 2


def test_trl_loss_equals_train_packed_loss_on_the_same_rows(
    shards: dict[str, Path], model_dir: Path, packed_rows: list[dict[str, Any]]
) -> None:
    trainer = _example().trainer_for(shards["packed"], str(model_dir), "unused", max_steps=1)
    model = trainer.model.train()  # as in training: no KV cache, so attention follows the positions
    trl_batch = _collated_by_trl(trainer, packed_rows)
    ours = collate_packed(packed_rows, pad_id=0)
    with torch.no_grad():
        trl_loss = trainer.compute_loss(model, trl_batch)
        logits = model(
            input_ids=ours["input_ids"], position_ids=ours["position_ids"], attention_mask=ours["attention_mask_4d"]
        ).logits
        train_loss = packed_loss(logits, ours["labels"], num_loss_tokens_global=ours["num_loss_tokens"])
    assert int((trl_batch["labels"] != -100).sum()) == int(ours["num_loss_tokens"])
    assert torch.allclose(trl_loss, train_loss, rtol=1e-5, atol=1e-6), (float(trl_loss), float(train_loss))


def test_the_readme_shows_the_tested_example() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert EXAMPLE.read_text(encoding="utf-8") in blocks
