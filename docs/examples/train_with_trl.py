"""Fine-tune a model on chatsift shards with TRL's SFTTrainer, reading the shards as they are.

    python docs/examples/train_with_trl.py SHARDS_DIR MODEL_DIR OUTPUT_DIR [MAX_STEPS]

MODEL_DIR is a model folder (or hub id) with its tokenizer, of the vocabulary the shards were made with.
"""

import json
import sys
from pathlib import Path
from typing import Any

import torch
from datasets import load_dataset
from trl import SFTConfig, SFTTrainer


def trainer_for(shards: Path, model: str, output_dir: str, peft_config: Any = None, **options: Any) -> SFTTrainer:
    """The trainer for the shards in `shards`; `peft_config` (e.g. peft's LoraConfig) trains adapters,
    and `options` are any other SFTConfig fields (max_steps, learning_rate, ...)."""
    manifest = json.loads((shards / "manifest.json").read_text())
    files = [str(shards / shard["file"]) for shard in manifest["shards"]]
    # input_ids and assistant_masks: TRL takes the rows as tokenized and masks the labels where
    # assistant_masks is 0 (user text, template headers), so it trains on the supervised tokens only.
    dataset = load_dataset("parquet", data_files=files, split="train")
    args = SFTConfig(
        output_dir=output_dir,
        # Packed rows: each batch becomes one flat sequence whose positions restart at every
        # conversation (the seq_lengths column), so no conversation attends to another.
        padding_free=manifest["layout"] == "packed",
        # The rows already fit manifest["max_seq_len"]; TRL refuses padding_free with a max_length.
        max_length=None,
        per_device_train_batch_size=2,
        bf16=torch.cuda.is_available(),  # TRL's default; fp32 on the CPU
        report_to="none",
        **options,
    )
    return SFTTrainer(model=model, args=args, train_dataset=dataset, peft_config=peft_config)


if __name__ == "__main__":
    shards_dir, model_dir, out_dir = sys.argv[1:4]
    steps = int(sys.argv[4]) if len(sys.argv) > 4 else -1
    trainer_for(Path(shards_dir), model_dir, out_dir, max_steps=steps).train()
