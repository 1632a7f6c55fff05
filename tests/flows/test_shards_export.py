"""`chatsift shards export --format axolotl`: real shards from a curate run, exported unpacked and packed, read
back as axolotl reads a pre-tokenized dataset (Hugging Face `datasets`; axolotl itself pins versions that
conflict with this project's, see docs/defaults.md#export), with the manifest's supervised-token count; a
zero-weighted refusal stays at -100; a wrong mask in the shards or in an export is caught."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.shards.chat_templates import chat_template_for
from curation.shards.export import check_export, export_shards
from curation.shards.tokenization import tokenize_conversations
from flows.cli import main
from flows.resources import tokenizer_for
from schemas import RunReport
from schemas.errors import ConfigError, InputError
from schemas.shards import EXPORT_MANIFEST_NAME, IGNORE_INDEX, LOSS_MASK_COLUMN, read_export_manifest, read_manifest
from tests.helpers.conversations import conversation

REFUSAL = "As an AI language model, I cannot give medical advice about your dosage; please ask your doctor."
ANSWER = "Paris is the capital of France. It has been the seat of government since the tenth century."


def _record(i: int, rounds: list[tuple[str, str]]) -> dict:
    turns = [t for q, a in rounds for t in ({"from": "human", "value": q}, {"from": "gpt", "value": a})]
    return {"id": f"conv{i}", "conversations": turns}


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory, prefect_server: None) -> Path:
    folder = tmp_path_factory.mktemp("export")
    records = [
        # a refusal in the second round: blocked's default mode zero-weights that answer
        _record(0, [("What is the capital of France?", ANSWER), ("How much ibuprofen should I take?", REFUSAL)]),
        *(
            # whitespace at the end of turns, as JSONL answers often have: trimmed by the shape stage, or the
            # answers' end of turn would tokenize apart from the template's and fail `shards verify`
            _record(i, [(f"Question {i}: name a number above {i * 10}. ", f"{i * 10 + 1} is one; " * 6 + "\n")])
            for i in range(1, 12)
        ),
        # two trained answers around a refusal in the middle: it stays as context of the next round
        _record(
            12,
            [
                ("Name a primary colour.", "Red is a primary colour, as painters have long taught."),
                ("How much ibuprofen should I take?", REFUSAL),
                ("Then name another primary colour.", "Blue is another primary colour, with red and yellow."),
            ],
        ),
        # a repeated id with other content: the shards hold it as "conv1~2"
        _record(1, [("What is 2 + 2? Answer in a sentence.", "Two and two make four, as counting on fingers shows.")]),
    ]
    data = folder / "in.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    # [shards] exports: the run writes the axolotl export itself, beside its shards
    config = folder / "config.json"
    config.write_text(json.dumps({"shards": {"exports": ["axolotl", "torchtune", "mds", "messages"]}}))
    argv = ["curate", str(data), "--out", str(folder / "runs"), "--run-id", "r", "--config", str(config)]
    assert main(argv) == 0
    return folder / "runs" / "r" / "shards"


def test_a_run_writes_the_exports_its_config_names(
    shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = shards.parent
    report = RunReport.model_validate_json((run / "report.json").read_text())
    assert report.outputs["export_axolotl"] == str(run / "exports" / "axolotl")
    exported = read_export_manifest(run / "exports" / "axolotl")
    assert exported.supervised_tokens == read_manifest(shards).total_loss_tokens
    assert check_export(run / "exports" / "axolotl") == []
    # and so does the shards deployment's flow (build-shards), from the run's conversations
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"shards": {"exports": ["axolotl", "messages"], "export_layout": "packed"}}))
    argv = ["shards", "build", str(run / "conversations"), "--out", str(tmp_path / "built"), "--config", str(config)]
    argv.append("--json")
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    rebuilt = read_export_manifest(summary["export_axolotl"])
    assert (rebuilt.layout, rebuilt.supervised_tokens) == ("packed", exported.supervised_tokens)
    # the messages export of a shards build reads the conversations it was built from, a conversation a line
    messages = read_export_manifest(summary["export_messages"])
    assert (messages.layout, messages.supervised_tokens) == ("unpacked", exported.supervised_tokens)


def _read_back(folder: Path) -> dict[str, list]:
    """The export as axolotl loads a pre-tokenized dataset: `datasets`' Parquet builder over the data files."""
    from datasets import load_dataset

    files = sorted(str(p) for p in folder.glob("data-*.parquet"))
    return load_dataset("parquet", data_files=files, split="train").to_dict()


def test_unpacked_axolotl_reads_back_with_every_supervised_token(shards: Path, tmp_path: Path) -> None:
    source = read_manifest(shards)
    exported = export_shards(shards, tmp_path / "axolotl", fmt="axolotl")
    rows = _read_back(tmp_path / "axolotl")
    assert set(rows) == {"input_ids", "attention_mask", "labels"}  # axolotl: exactly these, no `type:`
    assert len(rows["input_ids"]) == source.total_conversations == exported.rows
    supervised = sum(sum(label != IGNORE_INDEX for label in row) for row in rows["labels"])
    assert supervised == source.total_loss_tokens == exported.supervised_tokens > 0
    assert sum(map(len, rows["input_ids"])) == source.total_tokens
    assert all(set(mask) == {1} for mask in rows["attention_mask"])
    # labels are the input ids themselves (unshifted) where supervised
    for ids, labels in zip(rows["input_ids"], rows["labels"], strict=True):
        assert all(label in (IGNORE_INDEX, token) for token, label in zip(ids, labels, strict=True))
    assert read_export_manifest(tmp_path / "axolotl").source_run_id == "r"
    assert check_export(tmp_path / "axolotl") == []


def test_packed_axolotl_keeps_the_rows_and_restarts_positions_per_conversation(shards: Path, tmp_path: Path) -> None:
    source = read_manifest(shards)
    assert source.layout == "packed"
    export_shards(shards, tmp_path / "packed", fmt="axolotl", layout="packed")
    rows = _read_back(tmp_path / "packed")
    assert set(rows) == {"input_ids", "attention_mask", "labels", "position_ids"}
    assert len(rows["input_ids"]) == source.total_rows
    assert sum(sum(label != IGNORE_INDEX for label in row) for row in rows["labels"]) == source.total_loss_tokens
    shard_rows = pq.read_table(shards / source.shards[0].file).to_pylist()
    for shard_row, positions, numbers in zip(shard_rows, rows["position_ids"], rows["attention_mask"], strict=False):
        lengths = shard_row["seq_lengths"]
        assert positions == [p for n in lengths for p in range(n)]
        assert numbers == [k + 1 for k, n in enumerate(lengths) for _ in range(n)]


# the token formats, each with the column of its token ids
TOKEN_FORMATS = [("axolotl", "input_ids"), ("torchtune", "tokens")]


@pytest.mark.parametrize(("fmt", "ids_column"), TOKEN_FORMATS)
def test_a_zero_weighted_refusal_stays_unsupervised(shards: Path, tmp_path: Path, fmt: str, ids_column: str) -> None:
    tokenizer = tokenizer_for(read_manifest(shards).tokenizer.name)
    for layout in ("unpacked", "packed"):
        export_shards(shards, tmp_path / layout, fmt=fmt, layout=layout)
        rows = _read_back(tmp_path / layout)
        whole = [tokenizer.decode(ids) for ids in rows[ids_column]]
        trained = [
            tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX])
            for ids, labels in zip(rows[ids_column], rows["labels"], strict=True)
        ]
        assert any("As an AI language model" in text for text in whole), layout
        assert not any("AI language model" in text for text in trained), layout
        assert any("Paris is the capital" in text for text in trained), layout  # its other answer is trained


def test_a_wrong_mask_in_the_shards_is_refused_and_nothing_is_left(shards: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in shards.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    info = read_manifest(broken).shards[0]
    table = pq.read_table(broken / info.file)
    masks = table[LOSS_MASK_COLUMN].to_pylist()
    masks[0] = [1, *masks[0][1:]]  # the first token of a conversation (its header) made trained
    field = table.schema.field(LOSS_MASK_COLUMN)
    table = table.set_column(table.schema.get_field_index(LOSS_MASK_COLUMN), field, pa.array(masks, field.type))
    pq.write_table(table, broken / info.file)
    with pytest.raises(InputError, match="fails `chatsift shards verify`"):
        export_shards(broken, tmp_path / "out", fmt="axolotl")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def _rewrite_column(folder: Path, column: str, change: object, ids_column: str = "input_ids") -> None:
    """Change a column of the first data file, row by row from (ids, value), then the file's sha256 in the
    manifest, as a faulty exporter would."""
    path = folder / "data-00000.parquet"
    table = pq.read_table(path)
    rows = zip(table[ids_column].to_pylist(), table[column].to_pylist(), strict=True)
    values = [change(ids, row) for ids, row in rows]  # type: ignore[operator]
    field = table.schema.field(column)
    pq.write_table(table.set_column(table.schema.get_field_index(column), field, pa.array(values, field.type)), path)
    manifest = json.loads((folder / EXPORT_MANIFEST_NAME).read_text())
    manifest["files"][0]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / EXPORT_MANIFEST_NAME).write_text(json.dumps(manifest))


@pytest.mark.parametrize(("fmt", "ids_column"), TOKEN_FORMATS)
def test_the_exports_own_check_finds_shifted_labels_and_a_trained_prompt(
    shards: Path, tmp_path: Path, fmt: str, ids_column: str
) -> None:
    for name in ("shifted", "prompt"):
        export_shards(shards, tmp_path / name, fmt=fmt)
    # off by one: each label is the next token (a shift the model already makes)
    _rewrite_column(
        tmp_path / "shifted",
        "labels",
        lambda ids, labels: [
            ids[i + 1] if label != IGNORE_INDEX and i + 1 < len(ids) else label for i, label in enumerate(labels)
        ],
        ids_column,
    )
    assert any("neither -100 nor the input id" in p for p in check_export(tmp_path / "shifted"))

    # the prompt trained on: labels are the input ids, but on the user's turn too
    def prompt_too(ids: list[int], labels: list[int]) -> list[int]:
        first = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
        return [*ids[:first], *labels[first:]]

    _rewrite_column(tmp_path / "prompt", "labels", prompt_too, ids_column)
    problems = check_export(tmp_path / "prompt")
    assert any("follow no answer header" in p for p in problems) and any("supervised tokens" in p for p in problems)


def _readme_axolotl_dataset(heading: str, run: Path) -> dict:
    """The one dataset entry of the README's axolotl config under `heading`, pointed at `run`."""
    import yaml

    config = yaml.safe_load(_readme_yaml(heading).replace("runs/<run-id>", str(run)))
    (dataset,) = config["datasets"]
    return dataset


def test_the_readme_axolotl_config_loads_the_export_as_axolotl_does(shards: Path, tmp_path: Path) -> None:
    """The README's pre-tokenized config, on an export at its paths: `datasets` loads `ds_type` from
    `data_files` (axolotl's loader for a dataset without `type:`) into exactly axolotl's columns."""
    from datasets import load_dataset

    source = read_manifest(shards)
    export_shards(shards, tmp_path / "axolotl", fmt="axolotl")
    dataset = _readme_axolotl_dataset("### With axolotl", tmp_path)
    assert "type" not in dataset
    rows = load_dataset(dataset["ds_type"], data_files=dataset["data_files"], split="train").to_dict()
    assert set(rows) == {"input_ids", "attention_mask", "labels"}
    assert sum(sum(label != IGNORE_INDEX for label in row) for row in rows["labels"]) == source.total_loss_tokens


def test_the_cli_exports_and_refuses_a_folder_that_holds_files(
    shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    assert main(["shards", "export", str(shards), "--format", "axolotl", "--out", str(out)]) == 0
    manifest = read_export_manifest(out)
    assert f"{manifest.supervised_tokens} supervised" in capsys.readouterr().out
    assert main(["shards", "export", str(shards), "--format", "axolotl", "--out", str(out)]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert np.array_equal(
        sorted(p.name for p in out.iterdir()), sorted([EXPORT_MANIFEST_NAME, *(f.file for f in manifest.files)])
    )


# --- messages --------------------------------------------------------------------------------------------


def _supervised_tokens_of(records: list[dict], tokenizer_name: str) -> int:
    """The messages tokenized as chatsift tokenizes (the shards' tokenizer and template), each turn trained
    where its `training` flag says: the supervised tokens a chat-template loader reading the flag trains."""
    convs = [
        conversation(*((m["role"], m["content"], None if m["training"] else 0.0) for m in r["messages"]), id=r["id"])
        for r in records
    ]
    template = chat_template_for("llama2")
    kept, _ = tokenize_conversations(convs, tokenizer=tokenizer_for(tokenizer_name), template=template)
    return sum(sum(t.loss_mask) for t in kept)


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_messages_read_back_with_the_shards_supervised_tokens(shards: Path, tmp_path: Path, file_format: str) -> None:
    from datasets import load_dataset

    source = read_manifest(shards)
    exported = export_shards(shards, tmp_path / "m", fmt="messages", file_format=file_format)
    path = tmp_path / "m" / f"data-00000.{file_format}"
    records = load_dataset(
        "json" if file_format == "jsonl" else "parquet", data_files=str(path), split="train"
    ).to_list()
    assert len(records) == exported.conversations == source.total_conversations
    assert {m_key for r in records for m in r["messages"] for m_key in m} == {"role", "content", "training"}
    assert "conv1~2" in {r["id"] for r in records}  # a repeated id, named as the shards name it
    # the refusal is in the text, untrained; its conversation's first answer is trained
    refusal = next(m for r in records for m in r["messages"] if m["content"] == REFUSAL)
    assert refusal["training"] is False
    assert next(m for r in records for m in r["messages"] if m["content"] == ANSWER)["training"] is True
    assert (
        _supervised_tokens_of(records, source.tokenizer.name) == exported.supervised_tokens == source.total_loss_tokens
    )
    assert check_export(tmp_path / "m") == []


def test_the_readme_messages_config_trains_what_the_shards_do(shards: Path, tmp_path: Path) -> None:
    """The README's chat_template config, on a messages export at its path: its field names read the
    messages, roles, contents and training flags, and the flags train the shards' supervised tokens."""
    from datasets import load_dataset

    source = read_manifest(shards)
    export_shards(shards, tmp_path / "messages", fmt="messages")
    dataset = _readme_axolotl_dataset("### As text for chat-template loaders", tmp_path)
    assert dataset["type"] == "chat_template"
    loaded = load_dataset(dataset["ds_type"], data_files=dataset["path"], split="train").to_list()
    names, flag = dataset["message_property_mappings"], dataset["message_field_training"]
    records = [
        {
            "id": r["id"],
            "messages": [
                {"role": m[names["role"]], "content": m[names["content"]], "training": m[flag]}
                for m in r[dataset["field_messages"]]
            ],
        }
        for r in loaded
    ]
    assert _supervised_tokens_of(records, source.tokenizer.name) == source.total_loss_tokens


def test_a_run_writes_the_messages_export_from_its_conversations(shards: Path) -> None:
    folder = shards.parent / "exports" / "messages"
    manifest = read_export_manifest(folder)
    assert (manifest.format, manifest.conversations) == ("messages", read_manifest(shards).total_conversations)
    assert check_export(folder) == []


def test_text_that_disagrees_with_the_shards_mask_is_refused(shards: Path, tmp_path: Path) -> None:
    """A conversations folder where the refusal is trained again (its weight cleared): the export's own
    check holds the training flags against the shards' supervised spans, refuses, and leaves nothing."""
    from curation.parquet import read_conversations_parquet, write_conversations

    planted = tmp_path / "conversations"
    planted.mkdir()
    for part in sorted((shards.parent / "conversations").glob("part-*.parquet")):
        convs = [
            c.model_copy(update={"turns": tuple(t.model_copy(update={"weight": None}) for t in c.turns)})
            for c in read_conversations_parquet(part)
        ]
        write_conversations(planted / part.name, convs)
    with pytest.raises(InputError, match="other training flags than the shards' mask"):
        export_shards(shards, tmp_path / "out", fmt="messages", conversations_dir=planted)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_the_cli_exports_messages_and_asks_for_the_conversations_it_cannot_find(
    shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli-messages"
    argv = ["shards", "export", str(shards), "--format", "messages", "--out", str(out), "--file-format", "parquet"]
    assert main(argv) == 0
    assert (out / "data-00000.parquet").is_file()
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    for f in shards.iterdir():
        (lonely / f.name).write_bytes(f.read_bytes())
    assert main(["shards", "export", str(lonely), "--format", "messages", "--out", str(tmp_path / "x")]) == 2
    assert "--conversations" in capsys.readouterr().err


# --- torchtune ----------------------------------------------------------------------------------------------


def _torchtune_batches(dataset: object, packed: bool, pad_id: int) -> list[dict]:
    """The batches a torchtune recipe makes of a dataset: its DataLoader with the collate the recipe picks."""
    from functools import partial

    from torch.utils.data import DataLoader
    from torchtune.data import padded_collate_packed, padded_collate_sft

    collate = padded_collate_packed if packed else partial(padded_collate_sft, padding_idx=pad_id)
    return list(DataLoader(dataset, batch_size=4, collate_fn=collate))  # type: ignore[arg-type]


def _tiny_llama_loss(batch: dict, vocab_size: int) -> float:
    """A torchtune decoder's loss on a batch, masked as the batch says: the batch feeds a torchtune model."""
    import torch
    from torchtune.models.llama2 import llama2

    torch.manual_seed(0)
    length = batch["tokens"].shape[1]
    model = llama2(vocab_size=vocab_size, num_layers=1, num_heads=2, num_kv_heads=2, embed_dim=16, max_seq_len=length)
    with torch.no_grad():
        logits = model(batch["tokens"], mask=batch.get("mask"), input_pos=batch.get("input_pos"))
    # the recipes' shift: each position predicts the next token's label
    labels = torch.cat([batch["labels"][:, 1:], torch.full_like(batch["labels"][:, :1], IGNORE_INDEX)], dim=1)
    return float(torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX))


@pytest.mark.parametrize(("layout", "packed"), [("unpacked", False), ("unpacked", True), ("packed", True)])
def test_torchtune_reads_the_export_with_every_supervised_token(
    shards: Path, tmp_path: Path, layout: str, packed: bool
) -> None:
    """Each way a recipe reads the export: a conversation a sample (padded_collate_sft), torchtune's own
    PackedDataset over the unpacked rows, and chatsift's packed rows; then a torchtune model's loss."""
    import torch

    from train.torchtune_dataset import chatsift_dataset

    source = read_manifest(shards)
    exported = export_shards(shards, tmp_path / "tt", fmt="torchtune", layout=layout)
    assert check_export(tmp_path / "tt") == []
    dataset = chatsift_dataset(None, data_dir=str(tmp_path / "tt"), packed=packed, max_seq_len=source.max_seq_len)
    batches = _torchtune_batches(dataset, packed, pad_id=0)
    supervised = sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in batches)
    assert supervised == exported.supervised_tokens == source.total_loss_tokens > 0
    if packed:
        assert all(b["tokens"].shape[1] == source.max_seq_len for b in batches)
        # no token attends across conversations: each row's mask is block-diagonal within its packed row
        row = dataset[0]  # type: ignore[index]
        lengths = row["seq_lens"].tolist()
        assert row["input_pos"].tolist()[: lengths[0]] == list(range(lengths[0]))
        mask = batches[0]["mask"][0]
        assert not bool(mask[lengths[0], : lengths[0]].any())
    else:
        assert len(dataset) == source.total_conversations  # type: ignore[arg-type]
    loss = _tiny_llama_loss(batches[0], source.tokenizer.vocab_size)
    assert torch.isfinite(torch.tensor(loss)) and loss > 0


def _readme_yaml(heading: str) -> str:
    """The YAML block of the README's section that starts with `heading`: the config users copy."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index(heading) :]
    start = section.index("```yaml") + len("```yaml")
    return section[start : section.index("```\n", start)]


def test_the_readme_torchtune_config_loads_the_run_export(shards: Path) -> None:
    """The README's config, instantiated as a recipe does (tokenizer, then the dataset given it), on the
    export the run wrote, with the Mistral tokenizer the shards were made with."""
    from importlib.resources import files

    from omegaconf import OmegaConf
    from torchtune import config as torchtune_config

    source = read_manifest(shards)
    text = _readme_yaml("### With torchtune")
    tokenizer_model = str(files("mistral_common") / "data" / "tokenizer.model.v1")
    text = text.replace("/path/to/Mistral-7B-v0.1/tokenizer.model", tokenizer_model)
    text = text.replace("runs/<run-id>/exports/torchtune", str(shards.parent / "exports" / "torchtune"))
    cfg = OmegaConf.create(text)
    cfg.tokenizer.max_seq_len = source.max_seq_len
    tokenizer = torchtune_config.instantiate(cfg.tokenizer)
    dataset = torchtune_config.instantiate(cfg.dataset, tokenizer)
    batches = _torchtune_batches(dataset, cfg.dataset.get("packed", False), pad_id=tokenizer.pad_id)
    assert sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in batches) == source.total_loss_tokens


def test_seq_lens_that_join_two_conversations_are_caught(shards: Path, tmp_path: Path) -> None:
    export_shards(shards, tmp_path / "tt", fmt="torchtune", layout="packed")

    def joined(ids: list[int], lengths: list[int]) -> list[int]:
        return [lengths[0] + lengths[1], *lengths[2:]] if len(lengths) > 1 else lengths

    _rewrite_column(tmp_path / "tt", "seq_lens", joined, "tokens")
    assert any("seq_lens that disagree with input_pos" in p for p in check_export(tmp_path / "tt"))


def test_the_torchtune_builder_refuses_what_would_train_wrongly(shards: Path, tmp_path: Path) -> None:
    from importlib.resources import files

    from torchtune.models.mistral import mistral_tokenizer

    from train.torchtune_dataset import chatsift_dataset

    export_shards(shards, tmp_path / "tt", fmt="torchtune", layout="packed")
    with pytest.raises(ValueError, match="set `packed: True`"):
        chatsift_dataset(None, data_dir=str(tmp_path / "tt"))
    with pytest.raises(ValueError, match="holds a axolotl export"):
        chatsift_dataset(None, data_dir=str(shards.parent / "exports" / "axolotl"))

    # a recipe configured with another model's tokenizer (Mistral v0.3's, 32,768 tokens, against v0.1's 32,000)
    other = mistral_tokenizer(str(files("mistral_common") / "data" / "mistral_instruct_tokenizer_240323.model.v3"))
    with pytest.raises(ValueError, match="configure the model's own tokenizer"):
        chatsift_dataset(other, data_dir=str(tmp_path / "tt"), packed=True)


# --- MDS (LLM Foundry) ------------------------------------------------------------------------------------------


def _read_mds(folder: Path) -> list[dict]:
    """Every sample of an MDS dataset, read as streaming's format documents it: index.json lists the shards
    and their columns; a shard is its sample count, the samples' offsets, its config, then the samples, each
    the sizes of its variable-size columns followed by the columns' bytes."""
    index = json.loads((folder / "index.json").read_text())
    assert index["version"] == 2
    samples = []
    for shard in index["shards"]:
        assert (shard["format"], shard["compression"], shard["zip_data"]) == ("mds", None, None)
        data = (folder / shard["raw_data"]["basename"]).read_bytes()
        assert len(data) == shard["raw_data"]["bytes"]
        count = int(np.frombuffer(data, np.uint32, 1)[0])
        assert count == shard["samples"]
        offsets = np.frombuffer(data, np.uint32, count + 1, offset=4)
        config = json.loads(data[4 * (count + 2) : offsets[0]])
        assert {k: config[k] for k in ("column_names", "column_encodings")} == {
            k: shard[k] for k in ("column_names", "column_encodings")
        }
        for begin, end in zip(offsets[:-1], offsets[1:], strict=True):
            variable = [size is None for size in shard["column_sizes"]]
            head = np.frombuffer(data, np.uint32, sum(variable), offset=int(begin))
            sizes = iter(head.tolist())
            sample, at = {}, int(begin) + 4 * len(head)
            columns = zip(shard["column_names"], shard["column_encodings"], shard["column_sizes"], strict=True)
            for name, encoding, size in columns:
                size = size if size is not None else next(sizes)
                assert encoding == "json"
                sample[name] = json.loads(data[at : at + size])
                at += size
            assert at == end
            samples.append(sample)
    return samples


def _readme_foundry_dataset() -> dict:
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(OmegaConf.create(_readme_yaml("### With LLM Foundry")))
    assert isinstance(config, dict)
    return dict(config["train_loader"]["dataset"])


def _foundry_layout(turns: list[dict], dataset: dict, eos_id: int) -> tuple[list[int], list[int]]:
    """A sample's tokens and labels as LLM Foundry's decoder-only collator lays them out under the config's
    target policies ("none"/"all" prompts, "all"/"last" responses; an EOS appended to a last answer that
    lacks one)."""
    ids: list[int] = []
    labels: list[int] = []
    for k, turn in enumerate(turns):
        last = k == len(turns) - 1
        context, target = turn["input_ids"], turn["labels"]
        if last and target[-1] != eos_id:
            target = [*target, eos_id]
        ids += context + target
        labels += context if dataset["target_prompts"] == "all" else [IGNORE_INDEX] * len(context)
        trained = dataset["target_responses"] == "all" or (dataset["target_responses"] == "last" and last)
        labels += target if trained else [IGNORE_INDEX] * len(target)
    return ids, labels


def test_llm_foundry_reads_the_mds_export_with_every_supervised_token(shards: Path) -> None:
    """The run's MDS export, read by the documented layout and laid out as the README's config tells LLM
    Foundry: exactly the shards' supervised tokens (and each EOS its notes say the trainer appends)."""
    source = read_manifest(shards)
    folder = shards.parent / "exports" / "mds"
    manifest = read_export_manifest(folder)
    assert check_export(folder) == []
    samples = _read_mds(folder)
    assert len(samples) == manifest.conversations == source.total_conversations
    dataset = _readme_foundry_dataset()
    assert dataset["local"] == "runs/<run-id>/exports/mds" and dataset["decoder_only_format"] is True
    eos = source.tokenizer.eos_id
    assert eos is not None
    laid_out = [_foundry_layout(s["turns"], dataset, eos) for s in samples]
    appended = sum(n.tokens for n in manifest.notes if n.reason == "trainer_appends_eos")
    supervised = sum(sum(label != IGNORE_INDEX for label in labels) for _, labels in laid_out)
    assert supervised == source.total_loss_tokens + appended == manifest.supervised_tokens + appended
    # with LLM Foundry's default (the last answer only), the earlier answers would go untrained
    last_only = [_foundry_layout(s["turns"], {**dataset, "target_responses": "last"}, eos)[1] for s in samples]
    assert sum(sum(label != IGNORE_INDEX for label in labels) for labels in last_only) < supervised


def test_the_mds_export_keeps_a_refusal_untrained_and_notes_what_it_leaves_out(shards: Path) -> None:
    source = read_manifest(shards)
    tokenizer = tokenizer_for(source.tokenizer.name)
    folder = shards.parent / "exports" / "mds"
    manifest = read_export_manifest(folder)
    samples = _read_mds(folder)
    trained = [tokenizer.decode([t for turn in s["turns"] for t in turn["labels"]]) for s in samples]
    context = [tokenizer.decode([t for turn in s["turns"] for t in turn["input_ids"]]) for s in samples]
    assert not any("AI language model" in text for text in trained)
    assert any("Paris is the capital" in text for text in trained)
    # conv12's refusal, between two trained answers, is context of its last turn
    assert sum("AI language model" in text for text in context) == 1
    # conv0's refusal is its last answer: an untrained tail LLM Foundry's turns cannot end in, noted
    notes = {(n.conversation_id, n.reason) for n in manifest.notes}
    assert ("conv0", "untrained_tail_dropped") in notes and ("conv12", "untrained_tail_dropped") not in notes
    left_out = sum(n.tokens for n in manifest.notes if n.reason == "untrained_tail_dropped")
    assert manifest.tokens == source.total_tokens - left_out


def test_the_mds_exports_own_check_finds_a_header_trained(shards: Path, tmp_path: Path) -> None:
    """A faulty MDS writer that moves each turn's last context token (the answer header's end) into its
    labels: the export's check finds spans that follow no answer header and counts that disagree."""
    from curation.shards.export_mds import _ShardWriter, read_mds_samples

    folder = tmp_path / "mds"
    export_shards(shards, folder, fmt="mds")
    manifest = read_export_manifest(folder)
    samples = read_mds_samples(folder, manifest.files[0].file)
    writer = _ShardWriter(tmp_path)
    for sample in samples:
        writer.add(
            [
                {"input_ids": t["input_ids"][:-1], "attention_mask": t["attention_mask"][:-1], "labels": t["labels"]}
                | {"labels": [t["input_ids"][-1], *t["labels"]]}
                for t in sample["turns"]
            ]
        )
    writer.flush()
    (folder / manifest.files[0].file).write_bytes((tmp_path / manifest.files[0].file).read_bytes())
    data = json.loads((folder / EXPORT_MANIFEST_NAME).read_text())
    data["files"][0]["sha256"] = hashlib.sha256((folder / manifest.files[0].file).read_bytes()).hexdigest()
    (folder / EXPORT_MANIFEST_NAME).write_text(json.dumps(data))
    problems = check_export(folder)
    assert any("follow no answer header" in p for p in problems) and any("supervised tokens" in p for p in problems)


def test_mds_and_messages_refuse_a_packed_layout(shards: Path, tmp_path: Path) -> None:
    for fmt in ("mds", "messages"):
        with pytest.raises(ConfigError, match="layout unpacked"):
            export_shards(shards, tmp_path / fmt, fmt=fmt, layout="packed")
