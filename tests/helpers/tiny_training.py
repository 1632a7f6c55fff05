"""Test helpers for train/: a tiny randomly initialised Llama saved as a model folder, and packed shards.

No download: the model is built from a LlamaConfig and saved with save_pretrained, so it loads
through the same from_pretrained path a real model folder does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from curation.shards.pack import pack_conversations
from curation.shards.write import write_shards
from schemas.config import ShardsConfig
from schemas.shards import TokenizedConversation, TokenizerInfo

SYNTHETIC_VOCAB = 512


def save_tiny_llama(folder: Path, *, vocab_size: int, seed: int = 0) -> Path:
    """A 2-layer Llama (hidden 64, GQA 4/2 heads) with every projection LoRA targets, saved to `folder`."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
    )
    model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(folder)
    return folder


def synthetic_conversation(conversation_id: str, rng: np.random.Generator) -> TokenizedConversation:
    """A prompt of random ids, then an answer drawn from 16 ids only: a few LoRA steps learn that."""
    prompt = rng.integers(20, SYNTHETIC_VOCAB, int(rng.integers(20, 50))).tolist()
    answer = rng.integers(3, 19, int(rng.integers(20, 50))).tolist()
    ids = [1, *prompt, *answer, 2]
    mask = [0] * (len(prompt) + 1) + [1] * (len(answer) + 1)
    return TokenizedConversation(conversation_id=conversation_id, input_ids=tuple(ids), loss_mask=tuple(mask))


def build_synthetic_shards(
    out: Path, *, conversations: int, max_seq_len: int = 256, rows_per_row_group: int = 2, seed: int = 0
) -> Path:
    """Packed shards of synthetic conversations (several a row), written by the project's own packer."""
    rng = np.random.default_rng(seed)
    convs = [synthetic_conversation(f"s{i:05d}", rng) for i in range(conversations)]
    config = ShardsConfig(max_seq_len=max_seq_len, rows_per_row_group=rows_per_row_group, target_shard_bytes=20_000)
    rows, dropped, _ = pack_conversations(convs, config=config)
    assert not dropped
    tokenizer = TokenizerInfo(name="synthetic", sha256="0" * 64, vocab_size=SYNTHETIC_VOCAB, special_ids={"</s>": 2})
    write_shards(rows, out, config=config, tokenizer_info=tokenizer, template="llama2", run_id="syn", config_hash="h")
    return out


def finetune_as_rank(rank: int, world_size: int, port: int, arguments: list[str]) -> None:
    """One rank started the way torchrun starts it (rendezvous through the environment), running
    `python -m train.run` (for torch.multiprocessing.spawn)."""
    import os

    from train.run import main

    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world_size),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    if main(arguments) != 0:
        raise SystemExit(f"rank {rank}: train.run failed")
