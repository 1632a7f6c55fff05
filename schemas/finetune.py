"""What a fine-tuning run records: per-step metrics, its summary, and the lineage saved with the model."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.config import FinetuneConfig
from schemas.shards import ShardsManifest

# Bumped when the files below change shape; readers refuse versions they do not know.
FINETUNE_RECORD_VERSION = "1"


class StepMetrics(BaseModel):
    """One optimizer step, as logged (a line of metrics.jsonl)."""

    step: int  # 1-based optimizer step
    epoch: int
    loss: float  # mean cross-entropy over the supervised tokens of the whole global batch
    learning_rate: float
    grad_norm: float  # before clipping
    tokens: int  # non-padding input tokens of the global batch (all ranks)
    loss_tokens: int  # supervised tokens of the global batch (all ranks)
    seconds: float  # wall time of the step
    tokens_per_second: float
    peak_memory_bytes: int  # CUDA max_memory_allocated on GPU, process max RSS on CPU


class BaseModelInfo(BaseModel):
    """The model the run started from."""

    source: str  # the local path or hub name given
    model_type: str
    vocab_size: int
    config_sha256: str  # of its config.json as transformers serialises it
    parameters: int
    trainable_parameters: int


class FinetuneSummary(BaseModel):
    """summary.json of a fine-tuning run (also the flow's return value)."""

    record_version: str = FINETUNE_RECORD_VERSION
    run_id: str
    run_dir: str
    final_dir: str
    method: str
    device: str
    precision: str
    attention: str
    world_size: int = 1
    steps: int
    epochs_started: int
    resumed_from_step: int = 0
    tokens: int
    loss_tokens: int
    first_loss: float | None
    last_loss: float | None
    mean_tokens_per_second: float
    peak_memory_bytes: int
    seconds: float


class TrainingLineage(BaseModel):
    """chatsift_training.json beside the saved adapter or model: where its weights came from."""

    record_version: str = FINETUNE_RECORD_VERSION
    shards_dir: str
    shards_manifest_sha256: str
    shards_manifest: ShardsManifest
    base_model: BaseModelInfo
    config: FinetuneConfig
    summary: FinetuneSummary
    versions: dict[str, str] = Field(default_factory=dict)  # chatsift, torch, transformers, peft
