"""Benchmark fine-tuning on shards curated from the real ShareGPT sample: tokens/second, memory, loss.

Curates the first --conversations real conversations with the Phi-3 tokenizer and template
(contamination off) into packed shards of --seq-len tokens, builds a randomly initialised Llama
of the given size with Phi-3's vocabulary (or loads --model), and runs `run_finetune` for --steps
optimizer steps. On a GPU it runs bf16 with SDPA (or flash-attention when installed).
Usage: python -m bench.finetune [--shared ../shared] [--method lora|full] [--steps N] [--hidden H --layers L]
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from pathlib import Path

import torch

from bench.gpu import random_llama
from flows.cli import main as chatsift
from schemas.config import FinetuneConfig
from schemas.shards import read_manifest
from train.run import run_finetune

REPO = Path(__file__).resolve().parents[1]

SAMPLE = "sharegpt_v3_unfiltered_cleaned_split.first3003.json.gz"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--conversations", type=int, default=600)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--model", help="a model folder (default: a random Llama of --hidden x --layers)")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--method", choices=["lora", "full"], default="lora")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--micro", type=int, default=1)
    ap.add_argument("--accum", type=int, default=4)
    args = ap.parse_args()
    data = args.shared / "data"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        dump = tmp / "sample.json"
        sample = json.loads(gzip.decompress((data / "sharegpt" / SAMPLE).read_bytes()))
        dump.write_text(json.dumps(sample[: args.conversations]))
        config = tmp / "config.json"
        config.write_text(
            json.dumps(
                {
                    "tokenizer": {"spec": str(data / "tokenizers" / "phi-3")},
                    "shards": {"template": "phi3", "max_seq_len": args.seq_len, "rows_per_row_group": 16},
                    "split": {"max_tokens": args.seq_len},
                    "contamination": {"enabled": False},
                }
            )
        )
        assert (
            chatsift(["curate", str(dump), "--out", str(tmp / "runs"), "--config", str(config), "--run-id", "b"]) == 0
        )
        shards = tmp / "runs" / "b" / "shards"
        manifest = read_manifest(shards)
        model = args.model or str(
            random_llama(
                tmp / "model",
                vocab=manifest.tokenizer.vocab_size,
                hidden=args.hidden,
                layers=args.layers,
                seq_len=args.seq_len,
            )
        )
        options = FinetuneConfig(
            method=args.method,
            max_steps=args.steps,
            micro_batch_rows=args.micro,
            gradient_accumulation_steps=args.accum,
            save_every_steps=0,
        )
        started = time.perf_counter()
        summary = run_finetune(shards, model, config=options, run_dir=tmp / "ft")
        elapsed = time.perf_counter() - started
        device = torch.cuda.get_device_name() if summary.device.startswith("cuda") else "CPU"
        efficiency = manifest.packing.efficiency if manifest.packing else 1.0
        print(
            f"shards: {manifest.total_rows} rows, {manifest.total_tokens:,} tokens, packing efficiency {efficiency:.3f}"
        )
        print(json.dumps(summary.model_dump(mode="json"), indent=2))
        shape = (
            f"Llama {args.hidden}x{args.layers} random init, seq {args.seq_len}, {args.micro}x{args.accum} rows a step"
        )
        print(
            f"README: finetune {args.method} on {device} ({summary.precision}, {summary.attention}), {shape}: "
            f"{summary.mean_tokens_per_second:,.0f} tokens/s, peak memory {summary.peak_memory_bytes / 2**30:.2f} GiB, "
            f"loss {summary.first_loss:.3f} -> {summary.last_loss:.3f} in {summary.steps} steps "
            f"({elapsed:.0f} s with loading)"
        )


if __name__ == "__main__":
    main()
