"""Fine-tuning on the shards (train/, `chatsift finetune`): [finetune]."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.config._base import ConfigSection

# Every linear projection of a Llama-style block: attention q/k/v/o and the MLP gate/up/down.
# Platypus (Lee et al. 2023) and QLoRA (Dettmers et al. 2023, section 4: adapters on all linear
# layers are what matches full fine-tuning) put LoRA on all of them (docs/defaults.md#finetune).
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
    """[finetune]: fine-tuning a causal LM on packed shards (train/, `chatsift finetune`)."""

    method: Literal["lora", "full"] = "lora"
    """ "lora": PEFT LoRA adapters with the base weights frozen, as Platypus and QLoRA; "full": every weight trains
    (docs/defaults.md#finetune).
    """
    lora_r: int = Field(default=16, gt=0)
    """LoRA rank. 16, as Platypus (docs/defaults.md#finetune)."""
    lora_alpha: int = Field(default=16, gt=0)
    """LoRA scaling alpha (the update is scaled by alpha / r). 16, as Platypus (docs/defaults.md#finetune)."""
    lora_dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    """Dropout on the LoRA adapters' input. 0.05, as Platypus (docs/defaults.md#finetune)."""
    lora_target_modules: tuple[str, ...] = Field(default=LLAMA_LINEAR_PROJECTIONS, min_length=1)
    """Module names that get adapters: every linear projection of a Llama-style block, as Platypus and QLoRA, which
    found all linear layers needed to match full fine-tuning (docs/defaults.md#finetune).
    """
    learning_rate: float | None = Field(default=None, gt=0.0)
    """Peak learning rate. None: 2e-4 for LoRA (QLoRA's 7B/13B runs), 2e-5 for full fine-tuning (FastChat's Vicuna
    recipe; docs/defaults.md#finetune).
    """
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    """Decay after the linear warmup. Cosine, as FastChat's Vicuna and Stanford Alpaca recipes
    (docs/defaults.md#finetune).
    """
    warmup_ratio: float = Field(default=0.03, ge=0.0, lt=1.0)
    """Share of the steps spent in linear warmup. 0.03, as FastChat's Vicuna and Stanford Alpaca recipes
    (docs/defaults.md#finetune).
    """
    weight_decay: float = Field(default=0.0, ge=0.0)
    """AdamW weight decay. 0, as FastChat's Vicuna and Stanford Alpaca recipes (docs/defaults.md#finetune)."""
    max_grad_norm: float = Field(default=1.0, gt=0.0)
    """Gradients are clipped at this global norm. 1.0, as FastChat, Alpaca and transformers' Trainer
    (docs/defaults.md#finetune).
    """
    adam_beta1: float = Field(default=0.9, ge=0.0, lt=1.0)
    """AdamW beta1. 0.9, the usual default (PyTorch, transformers; docs/defaults.md#finetune)."""
    adam_beta2: float = Field(default=0.999, ge=0.0, lt=1.0)
    """AdamW beta2. 0.999, the usual default (PyTorch, transformers; docs/defaults.md#finetune)."""
    epochs: int = Field(default=1, gt=0)
    """Passes over the shards. 1, as Platypus (docs/defaults.md#finetune)."""
    max_steps: int | None = Field(default=None, gt=0)
    """Stop after this many optimizer steps, before the epochs end; None: no limit."""
    # The global batch is micro_batch_rows x gradient_accumulation_steps x ranks, and the loss is
    # normalised by the supervised tokens of that whole global batch.
    micro_batch_rows: int = Field(default=1, gt=0)
    """Packed rows per forward pass. 1 x 16 accumulation steps is Platypus's batch of 16 on one GPU
    (docs/defaults.md#finetune).
    """
    gradient_accumulation_steps: int = Field(default=16, gt=0)
    """Micro-batches per optimizer step. 16 x 1 row is Platypus's batch of 16 on one GPU (docs/defaults.md#finetune)."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """ "auto": bf16 autocast on a CUDA device that supports bf16, fp32 elsewhere (CPU). LoRA keeps the frozen base in
    bf16 and the adapters in fp32; full fine-tuning keeps fp32 master weights.
    """
    attention: Literal["auto", "flash_attention_2", "sdpa", "eager"] = "auto"
    """ "auto": flash_attention_2 when the flash_attn package and a CUDA device are present (packed rows go in as
    cu_seqlens), else sdpa with the block-diagonal mask (docs/defaults.md#shards).
    """
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where training runs. "auto": CUDA when a device is present, else the CPU."""
    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass: less activation memory for ~30% more compute (Chen et al. 2016;
    docs/defaults.md#finetune).
    """
    loader_workers: int = Field(default=2, ge=0)
    """DataLoader worker processes, spawned, never forked (CUDA cannot be forked); 0 loads in the training process. 2
    read the next rows while a step runs.
    """
    seed: int = 0
    """Seed of initialisation, dropout and the shuffle of row groups; fixed so runs are reproducible."""
    log_every_steps: int = Field(default=1, gt=0)
    """Log loss and throughput every this many optimizer steps; 1: every step."""
    save_every_steps: int = Field(default=200, ge=0)
    """Write a checkpoint (adapter or weights, optimizer, scheduler, RNG, data position) every this many optimizer
    steps, to resume from; 0: only the final model.
    """
    keep_checkpoints: int = Field(default=2, gt=0)
    """How many of the newest checkpoints are kept; older ones are deleted to bound disk use."""

    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.method == "lora" else 2e-5
