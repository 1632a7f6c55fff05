"""Collate packed training rows into model inputs: boundary-aware positions, labels and masks.

A packed row (schemas.shards.PACKED_SHARD_SCHEMA) holds several whole conversations back to back.
Each conversation must see only itself: positions restart at 0 at every conversation start,
attention is causal inside a conversation and blocked across conversations, and no label lets
the last token of one conversation predict the first token of the next.

Labels convention: **labels are already shifted**. ``labels[b, t]`` is the target of
``logits[b, t]`` (the next token ``input_ids[b, t + 1]`` when that token is supervised and in the
same conversation, else -100). Do NOT pass them as ``labels=`` to a Hugging Face causal LM (its
ForCausalLMLoss shifts labels left by one again); compute the loss with :func:`packed_loss` from the
logits, or hand them to transformers as ``shift_labels=``, which it does not shift.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def _as_long(values: Any, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(values, dtype=torch.long)
    if tensor.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(tensor.shape)}")
    return tensor


def collate_packed(
    rows: Sequence[dict[str, Any]], *, pad_id: int, mask_dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Batch packed rows (each with input_ids, loss_mask, seq_lengths), right-padded to the longest.

    Returns input_ids, position_ids, labels (already shifted, see the module docstring) [B, T];
    attention_mask_4d [B, 1, T, T] additive (0 allowed, dtype-min blocked; each padding token
    attends to itself only so no row is fully masked); cu_seqlens (int32) and max_seqlen over the
    flattened [B * T] batch, where each row's padding tail is one extra segment so that
    cu_seqlens[-1] == B * T; num_loss_tokens (labels != -100); num_tokens (non-padding tokens).
    """
    if not rows:
        raise ValueError("collate_packed needs at least one row")
    ids_list = [_as_long(r["input_ids"], "input_ids") for r in rows]
    mask_list = [_as_long(r["loss_mask"], "loss_mask") for r in rows]
    len_list = [_as_long(r["seq_lengths"], "seq_lengths") for r in rows]
    batch = len(rows)
    width = max(int(ids.numel()) for ids in ids_list)

    input_ids = torch.full((batch, width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((batch, width), dtype=torch.long)
    labels = torch.full((batch, width), IGNORE_INDEX, dtype=torch.long)
    # Segment id per token: conversation index, or a unique id per padding token (self-only).
    segments = torch.empty((batch, width), dtype=torch.long)
    cu_seqlens = [0]
    max_seqlen = 0

    for b, (ids, loss_mask, lengths) in enumerate(zip(ids_list, mask_list, len_list, strict=True)):
        n = int(ids.numel())
        if loss_mask.numel() != n:
            raise ValueError(f"row {b}: loss_mask has {loss_mask.numel()} entries for {n} tokens")
        if lengths.numel() == 0 or bool((lengths <= 0).any()) or int(lengths.sum()) != n:
            raise ValueError(f"row {b}: seq_lengths {lengths.tolist()} do not tile its {n} tokens")
        input_ids[b, :n] = ids
        start = 0
        for c, length in enumerate(lengths.tolist()):
            end = start + length
            position_ids[b, start:end] = torch.arange(length)
            segments[b, start:end] = c
            # Token t predicts t + 1 only inside the conversation; the last token predicts nothing.
            targets = ids[start + 1 : end]
            supervised = loss_mask[start + 1 : end].bool()
            labels[b, start : end - 1] = torch.where(supervised, targets, IGNORE_INDEX)
            cu_seqlens.append(cu_seqlens[-1] + length)
            max_seqlen = max(max_seqlen, length)
            start = end
        if n < width:
            segments[b, n:] = -1 - torch.arange(width - n)
            cu_seqlens.append(cu_seqlens[-1] + width - n)
            max_seqlen = max(max_seqlen, width - n)

    causal = torch.ones((width, width), dtype=torch.bool).tril()
    allowed = (segments[:, :, None] == segments[:, None, :]) & causal  # [B, Tq, Tk]
    attention_mask_4d = torch.zeros((batch, 1, width, width), dtype=mask_dtype)
    attention_mask_4d.masked_fill_(~allowed[:, None], torch.finfo(mask_dtype).min)

    return {
        "input_ids": input_ids,
        "position_ids": position_ids,
        "labels": labels,
        "attention_mask_4d": attention_mask_4d,
        "cu_seqlens": torch.tensor(cu_seqlens, dtype=torch.int32),
        "max_seqlen": torch.tensor(max_seqlen, dtype=torch.int32),
        "num_loss_tokens": (labels != IGNORE_INDEX).sum(),
        "num_tokens": torch.tensor(sum(int(ids.numel()) for ids in ids_list)),
    }


def packed_loss(
    logits: torch.Tensor, labels: torch.Tensor, *, num_loss_tokens_global: int | torch.Tensor
) -> torch.Tensor:
    """Summed cross-entropy over labels != -100, divided by the supervised-token count of the global batch.

    ``labels`` are already shifted (aligned with ``logits``, as built by :func:`collate_packed`).
    ``num_loss_tokens_global`` counts supervised tokens over the whole global batch (all
    gradient-accumulation micro-batches and ranks), so summing the returned micro-batch losses
    gives the mean token loss of the global batch.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} do not match labels {tuple(labels.shape)}")
    if isinstance(num_loss_tokens_global, int) and num_loss_tokens_global <= 0:
        raise ValueError("num_loss_tokens_global must be positive")
    summed = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        labels.reshape(-1).to(logits.device),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    if isinstance(num_loss_tokens_global, torch.Tensor):
        return summed / num_loss_tokens_global.to(summed.device).clamp_min(1)
    return summed / num_loss_tokens_global
