"""The fine-tuning loop over packed shards: global-batch loss, accumulation, checkpoints, resume.

`finetune` takes the model already loaded (train.model) and runs on one process or as one rank
of a torch.distributed group (torchrun): the loss of every micro-batch is divided by the
supervised-token count of the whole global batch (all micro-batches of the step, all ranks), so
a step's gradient is the same whatever the split into micro-batches and ranks.

No Prefect here: progress goes to the `on_step` callback, files to `run_dir`.
"""

from __future__ import annotations

import contextlib
import json
import math
import resource
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from schemas.config import FinetuneConfig
from schemas.files import write_dir_atomic
from schemas.finetune import FinetuneSummary, StepMetrics
from train.collate import collate_packed, packed_loss
from train.data import PackedShardDataset
from train.model import TrainingSetup

__all__ = ["CHECKPOINTS_DIR", "FINAL_DIR", "METRICS_NAME", "finetune", "latest_checkpoint", "lr_multiplier"]

CHECKPOINTS_DIR = "checkpoints"
FINAL_DIR = "final"
METRICS_NAME = "metrics.jsonl"
_STATE_NAME = "state.json"
_TRAINABLE_NAME = "trainable.safetensors"
# Options that decide what trains and which rows make up each step: a resumed run must use the same ones.
_RESUME_OPTIONS = ("method", "micro_batch_rows", "gradient_accumulation_steps", "loader_workers", "seed", "epochs")


def lr_multiplier(step: int, *, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """The learning-rate factor at 0-based `step`: linear warmup, then cosine/linear decay to 0, or constant."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class _Plan:
    steps_per_epoch: list[int]
    total_steps: int


def _plan_steps(dataset: PackedShardDataset, config: FinetuneConfig) -> _Plan:
    rows_per_step = config.micro_batch_rows * config.gradient_accumulation_steps
    # Every rank must take the same number of steps (each step ends in one gradient all-reduce),
    # so the rank with the fewest rows sets it; ranks differ by less than one row group.
    per_epoch = [math.ceil(min(dataset.rows_per_rank(e)) / rows_per_step) for e in range(config.epochs)]
    total = sum(per_epoch)
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    return _Plan(steps_per_epoch=per_epoch, total_steps=total)


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def _all_reduce_sum(values: Sequence[float], device: torch.device) -> list[float]:
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    return [float(v) for v in tensor.tolist()]


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def _trainable(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in _unwrap(model).named_parameters() if p.requires_grad}


def latest_checkpoint(run_dir: Path) -> Path | None:
    root = Path(run_dir) / CHECKPOINTS_DIR
    found = sorted(p for p in root.glob("step-*") if (p / _STATE_NAME).is_file()) if root.is_dir() else []
    return found[-1] if found else None


def _save_checkpoint(
    run_dir: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    state: dict[str, Any],
    keep: int,
) -> Path:
    final = run_dir / CHECKPOINTS_DIR / f"step-{state['step']:07d}"

    def write(tmp: Path) -> None:
        save_file({n: p.detach().contiguous().cpu() for n, p in _trainable(model).items()}, tmp / _TRAINABLE_NAME)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        rng = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()  # type: ignore[assignment]
        torch.save(rng, tmp / "rng.pt")
        (tmp / _STATE_NAME).write_text(json.dumps(state, indent=2), "utf-8")

    final.parent.mkdir(parents=True, exist_ok=True)
    write_dir_atomic(final, write)
    for old in sorted(p for p in final.parent.glob("step-*"))[:-keep]:
        shutil.rmtree(old)
    return final


def _load_checkpoint(
    checkpoint: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: FinetuneConfig,
) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((checkpoint / _STATE_NAME).read_text("utf-8"))
    changed = [k for k in _RESUME_OPTIONS if state["config"].get(k) != getattr(config, k)]
    if changed:
        raise ValueError(
            f"{checkpoint} was written with other {changed}: resume with the run's own "
            "config (its config.json), or start a new run"
        )
    saved = load_file(checkpoint / _TRAINABLE_NAME)
    params = _trainable(model)
    if set(saved) != set(params):
        raise ValueError(f"{checkpoint} holds other trainable parameters than this model: same --model and method?")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(saved[name].to(p.device, p.dtype))
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location="cpu", weights_only=True))
    scheduler.load_state_dict(torch.load(checkpoint / "scheduler.pt", weights_only=True))
    rng = torch.load(checkpoint / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return state


def _read_metrics(path: Path, *, up_to_step: int) -> list[StepMetrics]:
    if not path.is_file():
        return []
    rows = [StepMetrics.model_validate_json(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return [m for m in rows if m.step <= up_to_step]


def _micro_batches(
    dataset: PackedShardDataset, config: FinetuneConfig, *, pad_id: int, mask_dtype: torch.dtype
) -> Iterator[dict[str, torch.Tensor]]:
    workers = config.loader_workers
    loader = DataLoader(
        dataset,
        batch_size=config.micro_batch_rows,
        collate_fn=partial(collate_packed, pad_id=pad_id, mask_dtype=mask_dtype),
        num_workers=workers,
        # A CUDA process must not fork; spawned workers get the dataset (and its epoch) pickled.
        multiprocessing_context="spawn" if workers else None,
        pin_memory=torch.cuda.is_available(),
        # Its own generator: drawing the workers' base seed from the global RNG would shift the
        # dropout masks of a resumed run against an uninterrupted one.
        generator=torch.Generator().manual_seed(config.seed + dataset.epoch),
    )
    yield from loader


def _forward_logits(
    model: torch.nn.Module, batch: dict[str, torch.Tensor], setup: TrainingSetup
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) with the conversation boundaries given to attention."""
    device = setup.device
    if setup.attention == "flash_attention_2":
        # Varlen flash-attention takes the rows flattened to one sequence plus cu_seqlens; no mask.
        cu = batch["cu_seqlens"].to(device)
        longest = int(batch["max_seqlen"])
        logits = model(
            input_ids=batch["input_ids"].reshape(1, -1).to(device),
            position_ids=batch["position_ids"].reshape(1, -1).to(device),
            cu_seq_lens_q=cu,
            cu_seq_lens_k=cu,
            max_length_q=longest,
            max_length_k=longest,
        ).logits
        return logits, batch["labels"].reshape(1, -1)
    logits = model(
        input_ids=batch["input_ids"].to(device),
        position_ids=batch["position_ids"].to(device),
        attention_mask=batch["attention_mask_4d"].to(device),
    ).logits
    return logits, batch["labels"]


def _accumulate_gradients(
    wrapped: torch.nn.Module, group: list[dict[str, torch.Tensor]], *, setup: TrainingSetup, world_size: int
) -> tuple[float, float, float]:
    """Forward and backward over one step's micro-batches; (this rank's loss, global tokens, global loss tokens).

    Each micro-batch's loss is divided by the supervised tokens of the whole global batch, so the
    summed gradients are those of the global mean token loss however the batch is cut.
    """
    local = [sum(int(b["num_tokens"]) for b in group), sum(int(b["num_loss_tokens"]) for b in group)]
    tokens, loss_tokens = _all_reduce_sum(local, setup.device)
    loss_sum = torch.zeros((), device=setup.device)  # on the device: no host sync per micro-batch
    for i, batch in enumerate(group):
        # Gradients are all-reduced once per step, on the last micro-batch's backward.
        sync = i == len(group) - 1 or world_size == 1
        with contextlib.nullcontext() if sync else wrapped.no_sync():  # type: ignore[operator]
            with torch.autocast(setup.device.type, dtype=torch.bfloat16, enabled=setup.precision == "bf16"):
                logits, labels = _forward_logits(wrapped, batch, setup)
            loss = packed_loss(logits, labels, num_loss_tokens_global=max(int(loss_tokens), 1))
            # The loss is already divided by the global token count, so the ranks' gradients must be
            # summed; DDP averages them, hence the factor world_size.
            (loss * world_size if world_size > 1 else loss).backward()
        loss_sum += loss.detach()
    return float(loss_sum), tokens, loss_tokens


def finetune(
    model: torch.nn.Module,
    dataset: PackedShardDataset,
    *,
    config: FinetuneConfig,
    setup: TrainingSetup,
    run_dir: Path,
    pad_id: int,
    resume: bool = False,
    on_step: Callable[[StepMetrics, int], None] | None = None,
    write_lineage: Callable[[Path, FinetuneSummary], None] | None = None,
) -> tuple[FinetuneSummary, list[StepMetrics]]:
    """Train `model` on `dataset` (this rank's share) and save checkpoints and the final weights.

    Writes run_dir/metrics.jsonl (a StepMetrics line per logged step), checkpoints every
    config.save_every_steps under run_dir/checkpoints/, and the final adapter or model under
    run_dir/final/ (rank 0 only), with whatever `write_lineage(folder, summary)` adds to it before
    the folder is renamed into place. `on_step(metrics, total_steps)` is called on every logged step.
    With `resume`, training continues after the newest checkpoint in run_dir, on the same rows.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    world_size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if (dataset.rank, dataset.world_size) != (rank, world_size):
        raise ValueError(
            f"the dataset is for rank {dataset.rank} of {dataset.world_size}, this is {rank} of {world_size}"
        )
    torch.manual_seed(config.seed)
    plan = _plan_steps(dataset, config)
    if plan.total_steps == 0:
        raise ValueError(f"{dataset.shards_dir} holds no rows to train on")
    warmup = math.ceil(config.warmup_ratio * plan.total_steps)
    trainable = list(_trainable(model).values())
    optimizer = torch.optim.AdamW(
        trainable,
        lr=config.resolved_learning_rate(),
        betas=(config.adam_beta1, config.adam_beta2),
        weight_decay=config.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        partial(lr_multiplier, total_steps=plan.total_steps, warmup_steps=warmup, schedule=config.lr_scheduler),
    )
    metrics_path = run_dir / METRICS_NAME
    step, start_epoch, start_in_epoch, history = 0, 0, 0, []
    # Running totals over every step (metrics.jsonl holds only the logged ones), kept in checkpoints.
    totals = {"tokens": 0, "loss_tokens": 0}
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if checkpoint is not None:
        state = _load_checkpoint(checkpoint, model=model, optimizer=optimizer, scheduler=scheduler, config=config)
        step, start_epoch, start_in_epoch = state["step"], state["epoch"], state["step_in_epoch"]
        history = _read_metrics(metrics_path, up_to_step=step)
        totals = dict(state["totals"])
    resumed_from = step
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text("".join(m.model_dump_json() + "\n" for m in history), "utf-8")
    wrapped: torch.nn.Module = model
    if world_size > 1:
        device_ids = [setup.device.index] if setup.device.type == "cuda" else None
        wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    wrapped.train()
    epoch = start_epoch
    for epoch in range(start_epoch, config.epochs):
        if step >= plan.total_steps:
            break
        dataset.set_epoch(epoch)
        batches = _micro_batches(dataset, config, pad_id=pad_id, mask_dtype=setup.compute_dtype)
        first = start_in_epoch if epoch == start_epoch else 0
        for _ in range(first * config.gradient_accumulation_steps):  # rows the checkpoint already trained on
            next(batches, None)
        for step_in_epoch in range(first, plan.steps_per_epoch[epoch]):
            if step >= plan.total_steps:
                break
            step_started = time.perf_counter()
            pulled = (next(batches, None) for _ in range(config.gradient_accumulation_steps))
            group = [b for b in pulled if b is not None]
            loss_sum, tokens, loss_tokens = _accumulate_gradients(wrapped, group, setup=setup, world_size=world_size)
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            learning_rate = optimizer.param_groups[0]["lr"]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            (global_loss,) = _all_reduce_sum([loss_sum], setup.device)
            step += 1
            seconds = time.perf_counter() - step_started
            metrics = StepMetrics(
                step=step,
                epoch=epoch,
                loss=global_loss,
                learning_rate=learning_rate,
                grad_norm=float(grad_norm),
                tokens=int(tokens),
                loss_tokens=int(loss_tokens),
                seconds=seconds,
                tokens_per_second=tokens / seconds if seconds > 0 else 0.0,
                peak_memory_bytes=_peak_memory(setup.device),
            )
            history.append(metrics)
            totals["tokens"] += metrics.tokens
            totals["loss_tokens"] += metrics.loss_tokens
            if rank == 0 and (step % config.log_every_steps == 0 or step == plan.total_steps):
                with metrics_path.open("a", encoding="utf-8") as f:
                    f.write(metrics.model_dump_json() + "\n")
                if on_step is not None:
                    on_step(metrics, plan.total_steps)
            if rank == 0 and config.save_every_steps and step % config.save_every_steps == 0:
                state = {
                    "step": step,
                    "epoch": epoch if step_in_epoch + 1 < plan.steps_per_epoch[epoch] else epoch + 1,
                    "step_in_epoch": (step_in_epoch + 1) % plan.steps_per_epoch[epoch],
                    "config": config.model_dump(mode="json"),
                    "totals": totals,
                }
                _save_checkpoint(
                    run_dir,
                    model=model,
                    optimizer=optimizer,
                    scheduler=scheduler,
                    state=state,
                    keep=config.keep_checkpoints,
                )
        batches.close()  # type: ignore[attr-defined]
    final_dir = run_dir / FINAL_DIR
    elapsed = time.perf_counter() - started
    trained = [m for m in history if m.step > resumed_from]
    summary = FinetuneSummary(
        run_id=run_dir.name,
        run_dir=str(run_dir),
        final_dir=str(final_dir),
        method=config.method,
        device=str(setup.device),
        precision=setup.precision,
        attention=setup.attention,
        world_size=world_size,
        steps=step,
        epochs_started=epoch + 1,
        resumed_from_step=resumed_from,
        tokens=totals["tokens"],
        loss_tokens=totals["loss_tokens"],
        first_loss=history[0].loss if history else None,
        last_loss=history[-1].loss if history else None,
        mean_tokens_per_second=(sum(m.tokens for m in trained) / sum(m.seconds for m in trained) if trained else 0.0),
        peak_memory_bytes=max((m.peak_memory_bytes for m in trained), default=0),
        seconds=elapsed,
    )

    def write_final(tmp: Path) -> None:
        _unwrap(model).save_pretrained(tmp)  # type: ignore[operator]
        if write_lineage is not None:
            write_lineage(tmp, summary)

    if rank == 0:
        write_dir_atomic(final_dir, write_final)
    if world_size > 1:
        dist.barrier()
    return summary, history
