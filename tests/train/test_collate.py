"""Packed-row collation: per-conversation equivalence on a tiny Llama, labels and loss at boundaries."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from train.collate import IGNORE_INDEX, collate_packed, packed_loss  # noqa: E402

TOL = 1e-4
PAD = 0

# Row 0: three conversations (5, 7, 4 tokens), no padding. Row 1: two conversations, padded.
SEQ_LENGTHS = [[5, 7, 4], [6, 3]]


def _make_rows() -> list[dict]:
    gen = torch.Generator().manual_seed(1)
    rows = []
    for lengths in SEQ_LENGTHS:
        ids, mask = [], []
        for length in lengths:
            ids.append(torch.randint(1, 64, (length,), generator=gen))
            # prompt (unsupervised) then answer (supervised), so both kinds meet boundaries
            prompt = length // 2
            mask.append(torch.tensor([0] * prompt + [1] * (length - prompt)))
        rows.append({"input_ids": torch.cat(ids), "loss_mask": torch.cat(mask), "seq_lengths": lengths})
    return rows


def _conversations(row: dict) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    out, start = [], 0
    for length in row["seq_lengths"]:
        out.append((start, row["input_ids"][start : start + length], row["loss_mask"][start : start + length]))
        start += length
    return out


def _model(attn: str):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    model = transformers.LlamaForCausalLM._from_config(config, attn_implementation=attn, torch_dtype=torch.float32)
    return model.eval()


def _max_diff_to_separate_runs(model, rows: list[dict], packed_logits: torch.Tensor) -> float:
    worst = 0.0
    with torch.no_grad():
        for b, row in enumerate(rows):
            for start, ids, _ in _conversations(row):
                alone = model(input_ids=ids[None]).logits[0]
                diff = (packed_logits[b, start : start + len(ids)] - alone).abs().max().item()
                worst = max(worst, diff)
    return worst


def _matches_separate_runs(model, rows: list[dict], packed_logits: torch.Tensor) -> bool:
    return _max_diff_to_separate_runs(model, rows, packed_logits) < TOL


def _packed_logits(model, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(
            input_ids=batch["input_ids"],
            position_ids=batch["position_ids"],
            attention_mask=batch["attention_mask_4d"],
        ).logits


@pytest.fixture(params=["eager", "sdpa"])
def model(request):
    return _model(request.param)


def test_packed_forward_equals_each_conversation_alone(model) -> None:
    rows = _make_rows()
    batch = collate_packed(rows, pad_id=PAD)
    logits = _packed_logits(model, batch)
    assert logits.shape == (2, 16, 64)
    assert torch.isfinite(logits).all(), "padding rows of the mask must not produce NaN"
    assert _max_diff_to_separate_runs(model, rows, logits) < TOL
    assert _matches_separate_runs(model, rows, logits)


def test_packing_without_boundaries_is_detected(model) -> None:
    rows = _make_rows()
    batch = collate_packed(rows, pad_id=PAD)
    # Planted bug: plain causal attention over the whole row and positions 0..T-1.
    with torch.no_grad():
        buggy = model(input_ids=batch["input_ids"], attention_mask=(batch["input_ids"] != PAD).long()).logits
    assert _max_diff_to_separate_runs(model, rows, buggy) > 100 * TOL
    assert not _matches_separate_runs(model, rows, buggy)


def test_packed_loss_equals_per_conversation_losses(model) -> None:
    rows = _make_rows()
    batch = collate_packed(rows, pad_id=PAD)
    logits = _packed_logits(model, batch)

    # Reference built independently of the collator's labels: each conversation alone.
    total, count = torch.tensor(0.0), 0
    with torch.no_grad():
        for row in rows:
            for _, ids, mask in _conversations(row):
                alone = model(input_ids=ids[None]).logits[0]
                keep = mask[1:].bool()
                total = total + torch.nn.functional.cross_entropy(alone[:-1][keep], ids[1:][keep], reduction="sum")
                count += int(keep.sum())
    assert int(batch["num_loss_tokens"]) == count
    got = packed_loss(logits, batch["labels"], num_loss_tokens_global=count)
    assert abs(got.item() - (total / count).item()) < 1e-5
    # Same with the count as a tensor.
    got_t = packed_loss(logits, batch["labels"], num_loss_tokens_global=batch["num_loss_tokens"])
    assert abs(got_t.item() - got.item()) < 1e-7


def test_labels_convention_matches_transformers_for_one_conversation() -> None:
    # Our labels are already shifted; transformers' own loss (which shifts unshifted labels) must agree.
    model = _model("eager")
    row = _make_rows()[0]
    _, ids, mask = _conversations(row)[1]
    batch = collate_packed([{"input_ids": ids, "loss_mask": mask, "seq_lengths": [len(ids)]}], pad_id=PAD)
    unshifted = torch.where(mask.bool(), ids, IGNORE_INDEX)
    with torch.no_grad():
        out = model(input_ids=ids[None], labels=unshifted[None])
    ours = packed_loss(out.logits, batch["labels"], num_loss_tokens_global=batch["num_loss_tokens"])
    assert abs(ours.item() - out.loss.item()) < 1e-5


def test_labels_positions_and_cu_seqlens_respect_boundaries() -> None:
    rows = [
        {"input_ids": [11, 12, 13, 21, 22, 31, 32, 33], "loss_mask": [1] * 8, "seq_lengths": [3, 2, 3]},
        {"input_ids": [41, 42, 43, 44], "loss_mask": [0, 1, 0, 1], "seq_lengths": [4]},
    ]
    batch = collate_packed(rows, pad_id=PAD)
    x = IGNORE_INDEX
    assert batch["input_ids"].tolist() == [[11, 12, 13, 21, 22, 31, 32, 33], [41, 42, 43, 44, 0, 0, 0, 0]]
    # Last token of each conversation predicts nothing: 13 never predicts 21, 22 never predicts 31.
    assert batch["labels"].tolist() == [[12, 13, x, 22, x, 32, 33, x], [42, x, 44, x, x, x, x, x]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2], [0, 1, 2, 3, 0, 0, 0, 0]]
    assert batch["cu_seqlens"].dtype == torch.int32
    assert batch["cu_seqlens"].tolist() == [0, 3, 5, 8, 12, 16]
    assert int(batch["max_seqlen"]) == 4
    assert int(batch["num_loss_tokens"]) == 7

    # General check on the random rows: every label is the next token of the same conversation.
    rand_rows = _make_rows()
    rand = collate_packed(rand_rows, pad_id=PAD)
    for b, row in enumerate(rand_rows):
        for start, ids, mask in _conversations(row):
            end = start + len(ids)
            assert rand["labels"][b, end - 1] == IGNORE_INDEX
            expected = torch.where(mask[1:].bool(), ids[1:], IGNORE_INDEX)
            assert torch.equal(rand["labels"][b, start : end - 1], expected)
            assert rand["position_ids"][b, start:end].tolist() == list(range(len(ids)))
    assert (rand["labels"][1, 9:] == IGNORE_INDEX).all()


def test_mask_is_block_diagonal_causal_and_padding_attends_itself() -> None:
    rows = [
        {"input_ids": [1, 2, 3, 4, 5], "loss_mask": [1] * 5, "seq_lengths": [2, 3]},
        {"input_ids": [6, 7], "loss_mask": [1, 1], "seq_lengths": [2]},
    ]
    mask = collate_packed(rows, pad_id=PAD)["attention_mask_4d"]
    assert mask.shape == (2, 1, 5, 5) and mask.dtype == torch.float32
    allowed = (mask == 0).int()[:, 0].tolist()
    assert allowed[0] == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 1, 1, 1],
    ]
    assert allowed[1] == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 0, 1],
    ]
    assert (mask[mask != 0] == torch.finfo(torch.float32).min).all()


def test_rejects_rows_whose_lengths_do_not_tile() -> None:
    with pytest.raises(ValueError, match="seq_lengths"):
        collate_packed([{"input_ids": [1, 2, 3], "loss_mask": [1, 1, 1], "seq_lengths": [2]}], pad_id=PAD)
    with pytest.raises(ValueError, match="loss_mask"):
        collate_packed([{"input_ids": [1, 2, 3], "loss_mask": [1, 1], "seq_lengths": [3]}], pad_id=PAD)
