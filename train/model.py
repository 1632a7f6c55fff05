"""Load a causal LM for fine-tuning: device, precision and attention chosen once, LoRA or full.

Everything that can be checked before a GPU hour is spent is checked here and raises
ModelSetupError with the fix: an unknown model source, a hub name while offline, a tokenizer
larger than the model's embeddings, bf16 or flash-attention asked for where they cannot run,
LoRA target modules the model does not have.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from schemas.config import FinetuneConfig
from schemas.errors import ResourceError
from schemas.finetune import BaseModelInfo

__all__ = [
    "ModelSetupError",
    "TrainingSetup",
    "base_model_info",
    "check_vocabulary",
    "load_base_config",
    "load_model_for_finetuning",
    "model_location",
    "resolve_setup",
]


class ModelSetupError(ResourceError, ValueError):
    """A model, device or option that cannot work; the message says how to fix it."""


@dataclass(frozen=True)
class TrainingSetup:
    device: torch.device
    compute_dtype: torch.dtype  # autocast dtype: bfloat16 or float32
    attention: str  # transformers attn_implementation: flash_attention_2, sdpa or eager

    @property
    def precision(self) -> str:
        return "bf16" if self.compute_dtype == torch.bfloat16 else "fp32"


def resolve_setup(config: FinetuneConfig) -> TrainingSetup:
    """The device, autocast dtype and attention implementation `config` asks for, checked here."""
    cuda = torch.cuda.is_available()
    if config.device == "cuda" and not cuda:
        raise ModelSetupError("finetune.device is 'cuda' but torch sees no CUDA device; use 'auto' or 'cpu'")
    device = torch.device("cuda" if config.device == "cuda" or (config.device == "auto" and cuda) else "cpu")
    bf16_ok = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if config.precision == "bf16" and not bf16_ok:
        raise ModelSetupError(
            f"finetune.precision is 'bf16' but {device} has no bf16 support; use 'auto' (fp32 there) or 'fp32'"
        )
    dtype = torch.bfloat16 if config.precision == "bf16" or (config.precision == "auto" and bf16_ok) else torch.float32
    flash_installed = importlib.util.find_spec("flash_attn") is not None
    if config.attention == "flash_attention_2" and not (flash_installed and device.type == "cuda"):
        raise ModelSetupError(
            "finetune.attention is 'flash_attention_2', which needs a CUDA device and the flash-attn package "
            "(pip install flash-attn); use 'auto' or 'sdpa'"
        )
    if config.attention == "auto":
        attention = "flash_attention_2" if flash_installed and device.type == "cuda" else "sdpa"
    else:
        attention = config.attention
    return TrainingSetup(device=device, compute_dtype=dtype, attention=attention)


def model_location(source: str) -> str:
    """What from_pretrained gets for `--model`: a local folder's path, or the hub name as given."""
    path = Path(source).expanduser()
    looks_local = path.is_absolute() or source.startswith((".", "~")) or path.exists()
    if not looks_local:
        return source
    if not (path / "config.json").is_file():
        raise ModelSetupError(
            f"--model {source!r}: {path} is not a model folder (no config.json); pass a folder saved with "
            "save_pretrained, or a hub name such as 'meta-llama/Llama-3.2-1B'"
        )
    return str(path)


def load_base_config(source: str) -> Any:
    """The transformers config of a local model folder or a hub name (cached, or fetched when online)."""
    from transformers import AutoConfig

    location = model_location(source)
    try:
        return AutoConfig.from_pretrained(location)
    except (OSError, ValueError) as e:
        raise ModelSetupError(
            f"--model {source!r} could not be loaded ({e.__class__.__name__}: {str(e).splitlines()[0]}). A hub name "
            "needs network, or the model in the local Hugging Face cache when HF_HUB_OFFLINE=1: download it "
            "first (huggingface-cli download NAME) or pass a local folder"
        ) from e


def check_vocabulary(model_config: Any, *, tokenizer_vocab_size: int, tokenizer_name: str) -> None:
    """Refuse shards whose token ids the model's embedding table cannot hold."""
    vocab = int(getattr(model_config, "vocab_size", 0) or 0)
    if vocab < tokenizer_vocab_size:
        raise ModelSetupError(
            f"the shards were tokenized with {tokenizer_name!r} ({tokenizer_vocab_size} ids) but the model's "
            f"vocabulary has {vocab}: rebuild the shards with the model's own tokenizer "
            "(chatsift shards build --config with [tokenizer] spec = the model folder)"
        )


def _check_lora_targets(model: torch.nn.Module, targets: tuple[str, ...]) -> None:
    linear_names = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    missing = [t for t in targets if t not in linear_names]
    if missing:
        raise ModelSetupError(
            f"finetune.lora_target_modules {missing} are not linear layers of this model; its linear layers "
            f"are {sorted(linear_names)}"
        )


def lora_config(config: FinetuneConfig) -> Any:
    """PEFT's LoraConfig of the [finetune] options (also what bench.gpu gives TRL, for the same adapters)."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def load_model_for_finetuning(source: str, *, config: FinetuneConfig, setup: TrainingSetup) -> torch.nn.Module:
    """The model on setup.device, ready to train: LoRA-wrapped (base frozen) or fully trainable.

    LoRA keeps the frozen base weights in the compute dtype (bf16 on GPU) and the adapters in fp32;
    full fine-tuning keeps fp32 master weights and relies on autocast for bf16 compute.
    """
    from transformers import AutoModelForCausalLM

    load_dtype = setup.compute_dtype if config.method == "lora" else torch.float32
    model: Any = AutoModelForCausalLM.from_pretrained(
        model_location(source), dtype=load_dtype, attn_implementation=setup.attention
    )
    model.config.use_cache = False  # the KV cache is for generation; training never reads it
    if config.method == "lora":
        from peft import get_peft_model

        _check_lora_targets(model, config.lora_target_modules)
        lora = lora_config(config)
        torch.manual_seed(config.seed)  # the adapters' random init: the same seed, the same run
        model = get_peft_model(model, lora)
    if config.gradient_checkpointing:
        # Non-reentrant checkpointing needs no input that requires grad, so frozen embeddings work.
        # transformers 5 renamed gradient_checkpointing_enable (kept as a deprecated alias).
        enable = getattr(model, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    moved: torch.nn.Module = model.to(setup.device)
    return moved


def base_model_info(source: str, model: Any) -> BaseModelInfo:
    base: Any = model.get_base_model() if hasattr(model, "get_base_model") else model
    config_json = base.config.to_json_string(use_diff=False)
    return BaseModelInfo(
        source=source,
        model_type=str(base.config.model_type),
        vocab_size=int(base.config.vocab_size),
        config_sha256=hashlib.sha256(config_json.encode("utf-8")).hexdigest(),
        parameters=sum(p.numel() for p in model.parameters()),
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
    )
