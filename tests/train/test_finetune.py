"""train.loop and train.model on a tiny randomly initialised Llama (CPU, no download).

LoRA lowers the loss with the base frozen; a crashed run resumes to the same weights; a step's
update does not depend on how the global batch is cut into micro-batches; the model checks refuse
what cannot work, with the fix in the message.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from safetensors.torch import load_file  # noqa: E402

from schemas.config import LLAMA_LINEAR_PROJECTIONS, FinetuneConfig  # noqa: E402
from schemas.finetune import StepMetrics, TrainingLineage  # noqa: E402
from tests.helpers.tiny_training import SYNTHETIC_VOCAB, build_synthetic_shards, save_tiny_llama  # noqa: E402
from train.collate import collate_packed, packed_loss  # noqa: E402
from train.data import PackedShardDataset  # noqa: E402
from train.loop import finetune, latest_checkpoint, lr_multiplier  # noqa: E402
from train.loss_curve import loss_curve_svg, loss_curve_text  # noqa: E402
from train.model import (  # noqa: E402
    ModelSetupError,
    TrainingSetup,
    load_base_config,
    load_model_for_finetuning,
    resolve_setup,
)
from train.run import LINEAGE_NAME, check_finetune_inputs, run_finetune  # noqa: E402

CPU = TrainingSetup(device=torch.device("cpu"), compute_dtype=torch.float32, attention="sdpa")
BASE = FinetuneConfig(loader_workers=0, warmup_ratio=0.0, save_every_steps=0, gradient_checkpointing=True)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), vocab_size=SYNTHETIC_VOCAB)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_synthetic_shards(tmp_path_factory.mktemp("shards"), conversations=48)


def _all_rows_loss(model: torch.nn.Module, shards_dir: Path) -> float:
    rows = list(PackedShardDataset(shards_dir))
    batch = collate_packed(rows, pad_id=0)
    model.eval()
    with torch.no_grad():
        logits = model(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], attention_mask=batch["attention_mask_4d"]
        ).logits
    model.train()
    return float(packed_loss(logits, batch["labels"], num_loss_tokens_global=batch["num_loss_tokens"]))


def _train(model_dir: Path, shards_dir: Path, run_dir: Path, config: FinetuneConfig, **kwargs):
    model = load_model_for_finetuning(str(model_dir), config=config, setup=CPU)
    dataset = PackedShardDataset(shards_dir, seed=config.seed)
    return model, finetune(model, dataset, config=config, setup=CPU, run_dir=run_dir, pad_id=0, **kwargs)


def _trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def test_a_few_lora_steps_lower_the_loss_with_the_base_frozen(tiny_model: Path, shards: Path, tmp_path: Path) -> None:
    config = BASE.model_copy(
        update={"learning_rate": 1e-2, "lr_scheduler": "constant", "gradient_accumulation_steps": 2, "epochs": 2}
    )
    model = load_model_for_finetuning(str(tiny_model), config=config, setup=CPU)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    # adapters on all seven projections of both layers, nothing else trains
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    for layer in (0, 1):
        for projection in LLAMA_LINEAR_PROJECTIONS:
            assert any(f"layers.{layer}." in n and f".{projection}.lora_B." in n for n in trainable), projection
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    loss_before = _all_rows_loss(model, shards)

    dataset = PackedShardDataset(shards)
    summary, history = finetune(model, dataset, config=config, setup=CPU, run_dir=tmp_path / "run", pad_id=0)

    loss_after = _all_rows_loss(model, shards)
    assert summary.steps == len(history) >= 10
    assert loss_after < loss_before - 0.15, (loss_before, loss_after)
    assert history[-1].loss < history[0].loss
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen_before[name]), f"frozen base weight {name} changed"
    assert all(float(p.detach().abs().max()) > 0 for n, p in model.named_parameters() if ".lora_B." in n)
    # the final adapter is saved, and loads back onto the base to the same loss
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), summary.final_dir)
    assert abs(_all_rows_loss(reloaded, shards) - loss_after) < 1e-4
    logged = [StepMetrics.model_validate_json(x) for x in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [m.step for m in logged] == list(range(1, summary.steps + 1))
    assert sum(m.tokens for m in logged) == summary.tokens > 0 and all(m.tokens_per_second > 0 for m in logged)


def test_a_crashed_run_resumes_from_its_checkpoint_to_the_same_weights(
    tiny_model: Path, shards: Path, tmp_path: Path
) -> None:
    # dropout stays on: the checkpoint's RNG state must bring back the same dropout masks
    config = BASE.model_copy(
        update={"learning_rate": 5e-3, "gradient_accumulation_steps": 2, "save_every_steps": 2, "epochs": 2}
    )
    reference, (ref_summary, ref_history) = _train(tiny_model, shards, tmp_path / "ref", config)
    assert ref_summary.steps >= 8

    class Crash(Exception):
        pass

    def crash_at_step_7(m: StepMetrics, total: int) -> None:
        if m.step == 7:
            raise Crash

    with pytest.raises(Crash):
        _train(tiny_model, shards, tmp_path / "crashed", config, on_step=crash_at_step_7)
    checkpoint = latest_checkpoint(tmp_path / "crashed")
    assert checkpoint is not None and checkpoint.name == "step-0000006"
    assert not list((tmp_path / "crashed/checkpoints").glob(".tmp-*"))
    resumed, (summary, history) = _train(tiny_model, shards, tmp_path / "crashed", config, resume=True)

    assert summary.resumed_from_step == 6 and summary.steps == ref_summary.steps
    assert (summary.tokens, summary.loss_tokens) == (ref_summary.tokens, ref_summary.loss_tokens)
    expected, got = _trainable(reference), _trainable(resumed)
    assert expected.keys() == got.keys()
    worst = max(float((expected[n] - got[n]).abs().max()) for n in expected)
    assert worst < 1e-6, worst
    logged = [json.loads(x) for x in (tmp_path / "crashed/metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in logged] == list(range(1, ref_summary.steps + 1))
    for mine, theirs in zip(logged, ref_history, strict=True):
        assert abs(mine["loss"] - theirs.loss) < 1e-5
    # only the newest keep_checkpoints (2) stay
    assert len(list((tmp_path / "crashed/checkpoints").glob("step-*"))) == 2


def test_a_step_does_not_depend_on_how_the_global_batch_is_cut(tiny_model: Path, shards: Path, tmp_path: Path) -> None:
    """Full fine-tuning, 4 rows a step as 1x4, 2x2 and 4x1 micro-batches: the loss of every micro-batch
    is divided by the global batch's supervised tokens, so the updates are the same."""
    weights = []
    for micro, accumulation in ((1, 4), (2, 2), (4, 1)):
        config = BASE.model_copy(
            update={
                "method": "full",
                "learning_rate": 1e-3,
                "micro_batch_rows": micro,
                "gradient_accumulation_steps": accumulation,
                "max_steps": 3,
            }
        )
        model, (summary, history) = _train(tiny_model, shards, tmp_path / f"run-{micro}x{accumulation}", config)
        assert all(p.requires_grad for p in model.parameters())
        assert summary.steps == 3 and all(m.tokens > 0 for m in history)
        weights.append((_trainable(model), [m.loss for m in history]))
        assert (tmp_path / f"run-{micro}x{accumulation}/final/model.safetensors").is_file()
    (first, first_losses), *others = weights
    for other, losses in others:
        worst = max(float((first[n] - other[n]).abs().max()) for n in first)
        assert worst < 2e-5, worst
        assert max(abs(a - b) for a, b in zip(first_losses, losses, strict=True)) < 1e-4


def test_learning_rate_schedule() -> None:
    cosine = [lr_multiplier(s, total_steps=100, warmup_steps=10, schedule="cosine") for s in range(100)]
    assert cosine[0] == pytest.approx(0.1) and cosine[9] == pytest.approx(1.0)
    assert cosine[10] == pytest.approx(1.0) and cosine[55] == pytest.approx(0.5, abs=0.02)
    assert all(a >= b for a, b in zip(cosine[10:], cosine[11:], strict=False)) and cosine[-1] < 0.01
    assert lr_multiplier(50, total_steps=100, warmup_steps=0, schedule="linear") == pytest.approx(0.5)
    assert lr_multiplier(99, total_steps=100, warmup_steps=0, schedule="constant") == 1.0


def test_run_finetune_writes_the_adapter_with_the_shards_lineage(
    tiny_model: Path, shards: Path, tmp_path: Path
) -> None:
    config = BASE.model_copy(update={"max_steps": 2, "gradient_accumulation_steps": 2})
    summary = run_finetune(shards, str(tiny_model), config=config, run_dir=tmp_path / "run")
    final = Path(summary.final_dir)
    lineage = TrainingLineage.model_validate_json((final / LINEAGE_NAME).read_text())
    manifest = json.loads((shards / "manifest.json").read_text())
    assert lineage.shards_manifest.model_dump(mode="json") == manifest
    assert (final / "shards_manifest.json").read_bytes() == (shards / "manifest.json").read_bytes()
    assert lineage.base_model.vocab_size == SYNTHETIC_VOCAB and lineage.base_model.source == str(tiny_model)
    assert 0 < lineage.base_model.trainable_parameters < lineage.base_model.parameters
    assert lineage.summary.steps == 2 and lineage.config == config
    assert set(load_file(final / "adapter_model.safetensors")) and (final / "adapter_config.json").is_file()
    assert "<polyline" in (tmp_path / "run/loss_curve.svg").read_text()
    # the same run folder again without resume is refused, not overwritten
    with pytest.raises(ModelSetupError, match="resume it"):
        run_finetune(shards, str(tiny_model), config=config, run_dir=tmp_path / "run")


def test_inputs_that_cannot_work_are_refused_with_the_fix(
    tiny_model: Path, shards: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    # as HF_HUB_OFFLINE=1 does (read once at import): no request is made for a hub name
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelSetupError, match="no manifest.json"):
        check_finetune_inputs(tmp_path, str(tiny_model), config=BASE)
    with pytest.raises(ModelSetupError, match="not a model folder"):
        check_finetune_inputs(shards, str(tmp_path / "missing"), config=BASE)
    with pytest.raises(ModelSetupError, match="HF_HUB_OFFLINE"):
        load_base_config("chatsift-tests/no-such-model-anywhere")
    small = save_tiny_llama(tmp_path / "small-vocab", vocab_size=64)
    with pytest.raises(ModelSetupError, match="rebuild the shards with the model's own tokenizer"):
        check_finetune_inputs(shards, str(small), config=BASE)
    if not torch.cuda.is_available():
        with pytest.raises(ModelSetupError, match="no CUDA device; use 'auto' or 'cpu'"):
            resolve_setup(BASE.model_copy(update={"device": "cuda"}))
        with pytest.raises(ModelSetupError, match="no bf16 support"):
            resolve_setup(BASE.model_copy(update={"precision": "bf16"}))
        with pytest.raises(ModelSetupError, match="pip install flash-attn"):
            resolve_setup(BASE.model_copy(update={"attention": "flash_attention_2"}))
    with pytest.raises(ModelSetupError, match="not linear layers of this model"):
        load_model_for_finetuning(
            str(tiny_model), config=BASE.model_copy(update={"lora_target_modules": ("q_proj", "c_attn")}), setup=CPU
        )


def test_loss_curve_renders_every_step() -> None:
    history = [
        StepMetrics(
            step=i + 1,
            epoch=0,
            loss=5.0 - i * 0.1,
            learning_rate=1e-4,
            grad_norm=1.0,
            tokens=10,
            loss_tokens=5,
            seconds=0.1,
            tokens_per_second=100.0,
            peak_memory_bytes=1,
        )
        for i in range(30)
    ]
    import xml.etree.ElementTree as ET

    svg = ET.fromstring(loss_curve_svg(history))
    [line] = [e for e in svg.iter() if e.tag.endswith("polyline")]
    points = [tuple(map(float, p.split(","))) for p in line.attrib["points"].split()]
    assert len(points) == 30 and [y for _, y in points] == sorted(y for _, y in points)  # falling loss: y grows
    text = loss_curve_text(history, columns=10)
    chart, summary = text.splitlines()
    assert len(chart) == 10 and chart[0] == "█" and chart[-1] == "▁"
    assert "5.0000 at step 1" in summary and "2.1000 at step 30" in summary


def test_the_bf16_path_a_gpu_takes_also_runs_on_the_cpu(tiny_model: Path, shards: Path, tmp_path: Path) -> None:
    """bf16 autocast, a bf16 frozen base, fp32 adapters and a bf16 additive mask: what resolve_setup picks on
    a bf16 GPU, forced here on the CPU (torch autocasts to bf16 on the CPU too)."""
    bf16 = TrainingSetup(device=torch.device("cpu"), compute_dtype=torch.bfloat16, attention="sdpa")
    assert bf16.precision == "bf16"
    config = BASE.model_copy(
        update={"learning_rate": 1e-2, "lr_scheduler": "constant", "gradient_accumulation_steps": 2, "max_steps": 6}
    )
    model = load_model_for_finetuning(str(tiny_model), config=config, setup=bf16)
    dtypes = {p.dtype for n, p in model.named_parameters() if not p.requires_grad}
    assert dtypes == {torch.bfloat16}
    assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    summary, history = finetune(
        model, PackedShardDataset(shards), config=config, setup=bf16, run_dir=tmp_path / "run", pad_id=0
    )
    assert summary.precision == "bf16" and summary.steps == 6
    assert all(math.isfinite(m.loss) and math.isfinite(m.grad_norm) for m in history)
    assert min(m.loss for m in history[3:]) < history[0].loss
