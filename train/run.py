"""One fine-tuning run, from a shards folder and a model to a saved adapter or model with its lineage.

`check_finetune_inputs` does every check that needs no training (manifest, layout, device,
precision, attention, the model's config and vocabulary) so a flow can fail before any work.
`run_finetune` then loads the model, trains (train.loop) and writes, in the run folder:
config.json, metrics.jsonl, summary.json, loss_curve.svg, checkpoints/ and final/ (the adapter
or model, chatsift_training.json with the shards manifest's lineage, and shards_manifest.json).

Several GPUs: `torchrun --nproc-per-node N -m train.run --shards DIR --model M --run-dir D`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from schemas.config import FinetuneConfig
from schemas.files import atomic_write_text
from schemas.finetune import FinetuneSummary, StepMetrics, TrainingLineage
from schemas.shards import MANIFEST_NAME, ShardsManifest, read_manifest
from train.data import PackedShardDataset
from train.loop import FINAL_DIR, finetune, latest_checkpoint
from train.loss_curve import loss_curve_svg
from train.model import (
    ModelSetupError,
    TrainingSetup,
    base_model_info,
    check_vocabulary,
    load_base_config,
    load_model_for_finetuning,
    resolve_setup,
)

__all__ = ["FinetuneInputs", "LINEAGE_NAME", "check_finetune_inputs", "check_run_folder", "run_finetune"]

LINEAGE_NAME = "chatsift_training.json"
# Padding positions attend only to themselves and carry label -100, so their id never reaches a
# real token's logits or the loss: any id in the vocabulary works.
PAD_ID = 0


@dataclass(frozen=True)
class FinetuneInputs:
    manifest: ShardsManifest
    model_config: Any
    setup: TrainingSetup


def check_finetune_inputs(shards_dir: str | Path, model_source: str, *, config: FinetuneConfig) -> FinetuneInputs:
    """Everything about the inputs that can be wrong, checked without training; ModelSetupError says the fix."""
    shards = Path(shards_dir)
    if not (shards / MANIFEST_NAME).is_file():
        raise ModelSetupError(f"--shards {shards}: no {MANIFEST_NAME} there; pass a curate run's shards/ folder")
    try:
        manifest = read_manifest(shards)
    except ValueError as e:
        raise ModelSetupError(f"--shards {shards}: {e}") from e
    if manifest.layout != "packed":
        raise ModelSetupError(
            f"--shards {shards} holds {manifest.layout!r} shards; fine-tuning reads packed ones "
            '(chatsift shards build with [shards] layout = "packed")'
        )
    if manifest.total_rows == 0:
        raise ModelSetupError(f"--shards {shards} holds no rows")
    setup = resolve_setup(config)
    model_config = load_base_config(model_source)
    check_vocabulary(
        model_config, tokenizer_vocab_size=manifest.tokenizer.vocab_size, tokenizer_name=manifest.tokenizer.name
    )
    return FinetuneInputs(manifest=manifest, model_config=model_config, setup=setup)


def check_run_folder(run_dir: str | Path, *, resume: bool) -> None:
    """A new run must not overwrite a finished or checkpointed one; a resumed one needs a checkpoint."""
    run = Path(run_dir)
    if resume and latest_checkpoint(run) is None:
        raise ModelSetupError(f"{run} holds no checkpoint to resume from; start it without resume")
    if not resume and (latest_checkpoint(run) is not None or (run / FINAL_DIR).exists()):
        raise ModelSetupError(f"{run} already holds a fine-tuning run: resume it, or pass another run id")


def _versions() -> dict[str, str]:
    found = {}
    for package in ("chatsift", "torch", "transformers", "peft"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def run_finetune(
    shards_dir: str | Path,
    model_source: str,
    *,
    config: FinetuneConfig,
    run_dir: str | Path,
    resume: bool = False,
    on_step: Callable[[StepMetrics, int], None] | None = None,
) -> FinetuneSummary:
    """Fine-tune `model_source` on the packed shards in `shards_dir`; see the module docstring for the files."""
    shards = Path(shards_dir).resolve()
    run = Path(run_dir)
    inputs = check_finetune_inputs(shards, model_source, config=config)
    check_run_folder(run, resume=resume)
    distributed = dist.is_available() and dist.is_initialized()
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    setup = inputs.setup
    if setup.device.type == "cuda" and distributed:
        setup = TrainingSetup(torch.device("cuda", torch.cuda.current_device()), setup.compute_dtype, setup.attention)
    model = load_model_for_finetuning(model_source, config=config, setup=setup)
    base = base_model_info(model_source, model)
    dataset = PackedShardDataset(shards, rank=rank, world_size=world_size, seed=config.seed)
    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run / "config.json", config.model_dump_json(indent=2))
    manifest_bytes = (shards / MANIFEST_NAME).read_bytes()

    def write_lineage(final_dir: Path, summary: FinetuneSummary) -> None:
        lineage = TrainingLineage(
            shards_dir=str(shards),
            shards_manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
            shards_manifest=inputs.manifest,
            base_model=base,
            config=config,
            summary=summary,
            versions=_versions(),
        )
        (final_dir / LINEAGE_NAME).write_text(lineage.model_dump_json(indent=2), "utf-8")
        (final_dir / "shards_manifest.json").write_bytes(manifest_bytes)

    summary, history = finetune(
        model,
        dataset,
        config=config,
        setup=setup,
        run_dir=run,
        pad_id=PAD_ID,
        resume=resume,
        on_step=on_step,
        write_lineage=write_lineage,
    )
    if rank == 0:
        atomic_write_text(run / "summary.json", summary.model_dump_json(indent=2))
        atomic_write_text(run / "loss_curve.svg", loss_curve_svg(history, title=f"training loss, {run.name}"))
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point for torchrun (several processes) or a plain process, without Prefect."""
    parser = argparse.ArgumentParser(prog="python -m train.run", description=__doc__)
    parser.add_argument("--shards", required=True, type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--config-json", type=Path, help="a FinetuneConfig as JSON (defaults otherwise)")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    config = (
        FinetuneConfig.model_validate_json(args.config_json.read_text("utf-8"))
        if args.config_json
        else FinetuneConfig()
    )
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # started by torchrun
        if torch.cuda.is_available() and config.device != "cpu":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl")
        else:
            dist.init_process_group("gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    try:
        summary = run_finetune(args.shards, args.model, config=config, run_dir=args.run_dir, resume=args.resume)
    except ModelSetupError as e:
        print(f"train.run: error: {e}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if rank == 0:
        print(json.dumps(summary.model_dump(mode="json"), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
