"""One check of every GPU path, in one go: fine-tuning, TRL on the same shards, and the contamination check.

    python -m bench.gpu prepare INPUTS [--conversations 600] [--seq-len 2048]   # here, with ../shared
    python -m bench.gpu run INPUTS [--parts finetune,trl,contamination] [--cpu]  # on the GPU machine

`prepare` curates the first --conversations real ShareGPT conversations (`chatsift curate`, Phi-3
tokenizer and template, contamination off) and writes into INPUTS what `run` needs, so that `run`
needs neither ../shared nor Prefect nor a network: shards/ (packed), conversations/ (the curated
parts, for the contamination check), benchmark_items.parquet (a fixed sample of the nine local
benchmarks), tokenizer/ (Phi-3's) and, with --embedder, minilm/ (all-MiniLM-L6-v2 stored in fp16,
half the size, so that it travels; both the CPU and the GPU path of `run` load that same copy).

`run` on a CUDA machine, each part timed on its own and every figure printed:
1. finetune: `train.run.run_finetune` (LoRA, bf16, flash-attention varlen where flash_attn imports,
   else SDPA with the block-diagonal mask) on a randomly initialised Llama of Llama-3.2-1B's shape
   with Phi-3's vocabulary: tokens/s, peak memory, the loss curve;
2. trl: TRL's SFTTrainer through docs/examples/train_with_trl.py's `trainer_for` (padding-free)
   with the same LoRA on the same shards and model: tokens/s, peak memory, loss, and the ratio of
   (1) to (2); the supervised tokens must equal the manifest's;
3. contamination: `check_contamination` with the embedder on CUDA and FAISS on the GPU (where FAISS
   sees one), then on the CPU: units/s for each, and the flagged (conversation, turn, item) sets must
   be identical.
It exits 1 when a comparison fails. Without CUDA it checks that INPUTS builds (the manifest, every
shard verified, the conversations and items read) and says in one line that nothing ran, exit 0;
`--cpu` runs every part on the CPU instead, with a tiny model (the test suite does, on small inputs).

Carrying it to the GPU machine (python 3.12 with torch, transformers, peft, sentence-transformers and
pyarrow; 64 MiB a call, the repository ~1.6 MB of it): the parts' extra wheels are trl, datasets and
their pure-Python needs (dill, multiprocess, xxhash, fsspec) for trl; polars and faiss-gpu for
contamination, which with minilm/ (~45 MB) is more than one call carries beside faiss-gpu, so
contamination goes in a call of its own.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SAMPLE = Path("sharegpt") / "sharegpt_v3_unfiltered_cleaned_split.first3003.json.gz"
PARTS = ("finetune", "trl", "contamination")
# Llama-3.2-1B's shape (its vocabulary aside: the shards' tokenizer decides that).
ONE_B: dict[str, Any] = {
    "hidden": 2048,
    "intermediate": 8192,
    "layers": 16,
    "heads": 32,
    "kv_heads": 8,
    "tie_word_embeddings": True,
}
TINY: dict[str, Any] = {"hidden": 64, "intermediate": 128, "layers": 2, "heads": 4, "kv_heads": 2}


def _say(line: str) -> None:
    print(line, flush=True)


# --- prepare (here) ----------------------------------------------------------------------------------


def prepare(
    out: Path, *, shared: Path, conversations: int, seq_len: int, items_per_benchmark: int, embedder: bool
) -> None:
    from bench.contamination import shared_preset_specs
    from curation.contamination.benchmarks import read_benchmarks, write_benchmark_items
    from flows.cli import main as chatsift

    data = shared / "data"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        dump = tmp / "sample.json"
        dump.write_text(json.dumps(json.loads(gzip.decompress((data / SAMPLE).read_bytes()))[:conversations]))
        config = tmp / "config.json"
        config.write_text(
            json.dumps(
                {
                    "tokenizer": {"spec": str(data / "tokenizers" / "phi-3")},
                    "shards": {"template": "phi3", "max_seq_len": seq_len, "rows_per_row_group": 16},
                    "split": {"max_tokens": seq_len},
                    "contamination": {"enabled": False},
                }
            )
        )
        if chatsift(["curate", str(dump), "--out", str(tmp / "runs"), "--config", str(config), "--run-id", "g"]):
            raise SystemExit("bench.gpu prepare: curating the sample failed (see above)")
        for folder in ("shards", "conversations"):
            shutil.rmtree(out / folder, ignore_errors=True)
            shutil.copytree(tmp / "runs" / "g" / folder, out / folder)
    shutil.rmtree(out / "tokenizer", ignore_errors=True)
    shutil.copytree(data / "tokenizers" / "phi-3", out / "tokenizer")
    specs = shared_preset_specs(data / "benchmarks")
    by_benchmark: dict[str, list[Any]] = {}
    for item in read_benchmarks(specs, index_answers=False):
        by_benchmark.setdefault(item.benchmark, []).append(item)
    rng = random.Random(0)
    items = [
        item
        for name in sorted(by_benchmark)
        for item in rng.sample(by_benchmark[name], min(items_per_benchmark, len(by_benchmark[name])))
    ]
    write_benchmark_items(out / "benchmark_items.parquet", items)
    if embedder:
        from flows.resources import embedder_for

        shutil.rmtree(out / "minilm", ignore_errors=True)
        embedder_for("all-MiniLM-L6-v2", "cpu").half().save(str(out / "minilm"))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    _say(f"bench.gpu prepare: {out} ({size / 2**20:.1f} MiB), {len(items)} benchmark items")


# --- run (there) -------------------------------------------------------------------------------------


def _check_inputs(inputs: Path) -> str:
    """What INPUTS holds, after checking that it reads and that the shards verify."""
    from curation.contamination.benchmarks import read_benchmark_items_parquet
    from curation.parquet import read_conversations_parquet
    from curation.shards.verify import verify_shards
    from schemas.run_layout import conversation_parts
    from schemas.shards import read_manifest

    problems = verify_shards(inputs / "shards")
    if problems:
        raise SystemExit(f"bench.gpu: {inputs / 'shards'} does not verify: {problems[:3]}")
    manifest = read_manifest(inputs / "shards")
    convs = sum(len(read_conversations_parquet(p)) for p in map(Path, conversation_parts(inputs / "conversations")))
    items = len(read_benchmark_items_parquet(inputs / "benchmark_items.parquet"))
    embedder = "minilm/ present" if (inputs / "minilm").is_dir() else "no minilm/"
    return (
        f"{manifest.total_rows} packed rows ({manifest.total_tokens:,} tokens), {convs} conversations, "
        f"{items} benchmark items, {embedder}"
    )


def random_llama(
    folder: Path,
    *,
    vocab: int,
    seq_len: int,
    hidden: int,
    layers: int,
    intermediate: int | None = None,
    heads: int | None = None,
    kv_heads: int | None = None,
    tie_word_embeddings: bool = False,
) -> Path:
    """A Llama of the given shape with random weights (seed 0), saved to `folder`; by default heads of 64
    dimensions, a quarter as many key-value heads, and an MLP 8/3 as wide (multiple of 64)."""
    import torch
    import transformers

    torch.manual_seed(0)
    heads = heads or max(1, hidden // 64)
    config = transformers.LlamaConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate or int(hidden * 8 / 3) // 64 * 64,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or max(1, heads // 4),
        max_position_embeddings=seq_len,
        tie_word_embeddings=tie_word_embeddings,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def _peak_memory_reset() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_memory_gib() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else 0.0


def _finetune(inputs: Path, model: Path, work: Path, *, steps: int, cpu: bool) -> dict[str, Any]:
    from schemas.config import FinetuneConfig
    from train.run import run_finetune

    options = FinetuneConfig(
        method="lora",
        max_steps=steps,
        micro_batch_rows=2,
        gradient_accumulation_steps=1,
        save_every_steps=0,
        loader_workers=0,
        precision="fp32" if cpu else "auto",
        device="cpu" if cpu else "auto",
    )
    _peak_memory_reset()
    summary = run_finetune(inputs / "shards", str(model), config=options, run_dir=work / "finetune")
    curve = [json.loads(line)["loss"] for line in (work / "finetune" / "metrics.jsonl").read_text().splitlines()]
    return {
        "tokens_per_s": summary.mean_tokens_per_second,
        "peak_gib": summary.peak_memory_bytes / 2**30,
        "loss_curve": curve,
        "precision": summary.precision,
        "attention": summary.attention,
        "options": options,
    }


def _trl(inputs: Path, model: Path, work: Path, *, steps: int, options: Any, cpu: bool) -> dict[str, Any]:
    from schemas.shards import read_manifest
    from train.model import lora_config

    spec = importlib.util.spec_from_file_location("train_with_trl", REPO / "docs" / "examples" / "train_with_trl.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    # the same LoRA as chatsift finetune's, the same rows a step
    trainer = example.trainer_for(
        inputs / "shards",
        str(model),
        str(work / "trl"),
        peft_config=lora_config(options),
        max_steps=steps,
        use_cpu=cpu,
        include_num_input_tokens_seen=True,
        logging_steps=1,
    )
    supervised = sum(sum(1 for label in row if label != -100) for row in trainer.train_dataset["labels"])
    _peak_memory_reset()
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    tokens = int(trainer.state.num_input_tokens_seen)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {
        "tokens_per_s": tokens / seconds,
        "peak_gib": _peak_memory_gib(),
        "loss": result.training_loss,
        "losses": losses,
        "supervised_ok": supervised == read_manifest(inputs / "shards").total_loss_tokens,
        "supervised": supervised,
    }


def _planted(items: list[Any]) -> list[Any]:
    """A conversation asking each item, so that both paths have flagged turns to compare."""
    from schemas import Conversation
    from schemas.conversation import Provenance, Turn

    return [
        Conversation(
            id=f"planted-{k}",
            source="bench.gpu",
            turns=(
                Turn(role="user", content=item.text, source_role="user"),
                Turn(role="assistant", content="Here is my answer.", source_role="assistant"),
            ),
            provenance=Provenance(input_file="bench.gpu", content_hash=f"planted-{k}"),
        )
        for k, item in enumerate(items)
    ]


def _flagged(inputs: Path, *, device: str, gpu_faiss: bool) -> tuple[set[tuple[str, int, str | None]], float, int]:
    """The check's flagged (conversation, turn, item), units/s and units, embedder on `device`."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from curation.contamination.benchmarks import read_benchmark_items_parquet
    from curation.contamination.check import build_benchmark_index, check_contamination
    from curation.contamination.embedding_cache import CachedEmbeddings
    from curation.parquet import read_conversations_parquet
    from flows.resources import embed_normalized
    from schemas.config import ContaminationConfig
    from schemas.run_layout import conversation_parts

    model = SentenceTransformer(str(inputs / "minilm"), device=device).float()
    embed = embed_normalized(model, ContaminationConfig())
    items = read_benchmark_items_parquet(inputs / "benchmark_items.parquet")
    convs = [c for p in conversation_parts(inputs / "conversations") for c in read_conversations_parquet(Path(p))]
    convs += _planted(items[:: max(1, len(items) // 20)])
    config = ContaminationConfig()
    index = build_benchmark_index(items, embed([i.text for i in items]), config=config, gpu=gpu_faiss)
    timing = {"units": 0, "seconds": 0.0}

    def embed_units(texts: list[str]) -> CachedEmbeddings:
        started = time.perf_counter()
        vectors = embed(texts) if texts else np.zeros((0, index.vectors.shape[1]), dtype=np.float32)
        timing["seconds"] += time.perf_counter() - started
        timing["units"] += len(texts)
        return CachedEmbeddings(vectors=vectors, embedded=len(texts), reused=0)

    result = check_contamination(convs, index=index, embed=embed_units, config=config, decisions={})
    flagged = {(f.conversation_id, f.turn_index, f.matched_item_id) for f in result.findings if f.flagged}
    return flagged, timing["units"] / max(timing["seconds"], 1e-9), int(timing["units"])


def run(inputs: Path, *, parts: list[str], cpu: bool, steps: int) -> int:
    import torch

    checked = _check_inputs(inputs)
    if not torch.cuda.is_available() and not cpu:
        _say(f"bench.gpu: no CUDA device; inputs checked ({checked}); nothing ran")
        return 0
    if "contamination" in parts and not (inputs / "minilm").is_dir():
        _say(f"bench.gpu: part contamination needs {inputs / 'minilm'}: run prepare with --embedder")
        return 2
    device = "cpu" if cpu else "cuda"
    name = "CPU" if cpu else torch.cuda.get_device_name()
    _say(f"bench.gpu on {name}: {checked}")
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        work = Path(tmp_name)
        figures: dict[str, dict[str, Any]] = {}
        if {"finetune", "trl"} & set(parts):
            from schemas.shards import read_manifest

            manifest = read_manifest(inputs / "shards")
            shape = TINY if cpu else ONE_B
            model = random_llama(
                work / "model", vocab=manifest.tokenizer.vocab_size, seq_len=manifest.max_seq_len, **shape
            )
            # TRL loads the tokenizer from the model's folder, as from a real model's
            from transformers import AutoTokenizer

            AutoTokenizer.from_pretrained(inputs / "tokenizer").save_pretrained(model)
            described = "tiny Llama" if cpu else "Llama-3.2-1B-shaped Llama, random weights"
            ours = _finetune(inputs, model, work, steps=steps, cpu=cpu)
            figures["finetune"] = ours
            _say(
                f"finetune ({described}, LoRA, {ours['precision']}, {ours['attention']}): {ours['tokens_per_s']:,.0f} "
                f"tokens/s, peak {ours['peak_gib']:.2f} GiB, loss curve {[round(x, 3) for x in ours['loss_curve']]}"
            )
            if not all(x == x and x < float("inf") for x in ours["loss_curve"]):
                failures.append("finetune: a loss is not finite")
            if "trl" in parts:
                theirs = _trl(inputs, model, work, steps=steps, options=ours["options"], cpu=cpu)
                _say(
                    f"trl SFTTrainer (padding-free, same LoRA): {theirs['tokens_per_s']:,.0f} tokens/s, peak "
                    f"{theirs['peak_gib']:.2f} GiB, loss {theirs['loss']:.3f}, losses "
                    f"{[round(x, 3) for x in theirs['losses']]}; supervised tokens {theirs['supervised']} "
                    f"(manifest: {'equal' if theirs['supervised_ok'] else 'DIFFERENT'})"
                )
                _say(f"chatsift finetune / TRL tokens/s: {ours['tokens_per_s'] / theirs['tokens_per_s']:.2f}x")
                if not theirs["supervised_ok"]:
                    failures.append("trl: supervised tokens differ from the manifest's")
        if "contamination" in parts:
            from curation.contamination.vector_search import faiss_gpu_count

            gpu_faiss = not cpu and faiss_gpu_count() > 0
            on_device, device_rate, units = _flagged(inputs, device=device, gpu_faiss=gpu_faiss)
            on_cpu, cpu_rate, _ = _flagged(inputs, device="cpu", gpu_faiss=False)
            _say(
                f"contamination: {units} units; embeddings {device} + FAISS {'GPU' if gpu_faiss else 'CPU'} "
                f"{device_rate:,.0f} units/s, CPU {cpu_rate:,.0f} units/s ({device_rate / cpu_rate:.1f}x); "
                f"flagged {len(on_device)} vs {len(on_cpu)}: {'identical' if on_device == on_cpu else 'DIFFERENT'}"
            )
            if on_device != on_cpu:
                failures.append(f"contamination: flagged sets differ: {sorted(on_device ^ on_cpu)[:5]}")
    for failure in failures:
        _say(f"FAILED {failure}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="build INPUTS here, from ../shared")
    p.add_argument("inputs", type=Path)
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--conversations", type=int, default=600)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--items-per-benchmark", type=int, default=300)
    p.add_argument("--embedder", action="store_true", help="save all-MiniLM-L6-v2 in fp16 to INPUTS/minilm")
    r = sub.add_parser("run", help="every GPU path on INPUTS")
    r.add_argument("inputs", type=Path)
    r.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    r.add_argument("--steps", type=int, default=20, help="optimizer steps of finetune and of TRL")
    r.add_argument("--cpu", action="store_true", help="run every part on the CPU with a tiny model")
    args = ap.parse_args(argv)
    if args.command == "prepare":
        prepare(
            args.inputs,
            shared=args.shared,
            conversations=args.conversations,
            seq_len=args.seq_len,
            items_per_benchmark=args.items_per_benchmark,
            embedder=args.embedder,
        )
        return 0
    parts = [part for part in args.parts.split(",") if part]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        ap.error(f"unknown parts {unknown}: choose from {', '.join(PARTS)}")
    return run(args.inputs, parts=parts, cpu=args.cpu, steps=args.steps)


if __name__ == "__main__":
    sys.exit(main())
