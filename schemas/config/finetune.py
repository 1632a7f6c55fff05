"""Fine-tuning on the shards (train/, `chatsift finetune`): [finetune]."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.config._base import ConfigSection

# Every linear projection of a Llama-style block: attention q/k/v/o and the MLP gate/up/down.
# Platypus (Lee et al. 2023) and QLoRA (Dettmers et al. 2023, section 4: adapters on all linear
# layers are what matches full fine-tuning) put LoRA on all of them.
LLAMA_LINEAR_PROJECTIONS: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)


class FinetuneConfig(ConfigSection):
    """Fine-tuning a causal LM on packed shards (train/, `chatsift finetune`)."""

    # "lora": PEFT LoRA adapters, base weights frozen; "full": every weight trains.
    method: Literal["lora", "full"] = "lora"
    # Platypus's LoRA settings: r 16, alpha 16, dropout 0.05.
    lora_r: int = Field(default=16, gt=0)
    lora_alpha: int = Field(default=16, gt=0)
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    lora_target_modules: tuple[str, ...] = Field(default=LLAMA_LINEAR_PROJECTIONS, min_length=1)
    # None: 2e-4 for LoRA (QLoRA's 7B/13B runs), 2e-5 for full fine-tuning (FastChat's Vicuna recipe).
    learning_rate: float | None = Field(default=None, gt=0.0)
    # Cosine decay after a linear warmup over 3% of the steps, no weight decay, gradients clipped
    # at norm 1.0: FastChat's Vicuna and Stanford Alpaca recipes (and transformers' Trainer defaults).
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(default=0.03, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    max_grad_norm: float = Field(default=1.0, gt=0.0)
    adam_beta1: float = Field(default=0.9, ge=0.0, lt=1.0)
    adam_beta2: float = Field(default=0.999, ge=0.0, lt=1.0)
    # Platypus trains one epoch; max_steps (optimizer steps) stops earlier when set.
    epochs: int = Field(default=1, gt=0)
    max_steps: int | None = Field(default=None, gt=0)
    # Packed rows per forward pass and micro-batches per optimizer step: 1 x 16 is Platypus's
    # batch of 16 on one GPU. The global batch is micro_batch_rows x gradient_accumulation_steps x ranks,
    # and the loss is normalised by the supervised tokens of that whole global batch.
    micro_batch_rows: int = Field(default=1, gt=0)
    gradient_accumulation_steps: int = Field(default=16, gt=0)
    # "auto": bf16 autocast on a CUDA device that supports bf16, fp32 elsewhere (CPU). LoRA keeps
    # the frozen base in bf16 and the adapters in fp32; full fine-tuning keeps fp32 master weights.
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    # "auto": flash_attention_2 when the flash_attn package and a CUDA device are present (packed
    # rows go in as cu_seqlens), else sdpa with the block-diagonal mask.
    attention: Literal["auto", "flash_attention_2", "sdpa", "eager"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Recompute activations in the backward pass: memory for ~30% more compute (Chen et al. 2016).
    gradient_checkpointing: bool = True
    # DataLoader worker processes (spawned, never forked: CUDA cannot be forked).
    loader_workers: int = Field(default=2, ge=0)
    seed: int = 0
    log_every_steps: int = Field(default=1, gt=0)
    # A checkpoint (adapter or weights, optimizer, scheduler, RNG, data position) every N steps;
    # the newest keep_checkpoints stay. 0: only the final model.
    save_every_steps: int = Field(default=200, ge=0)
    keep_checkpoints: int = Field(default=2, gt=0)

    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.method == "lora" else 2e-5
