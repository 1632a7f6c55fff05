"""What the manifest says of the template and tokenizer, and the verifier's check of every supervised span.

Shards of real ShareGPT conversations, tokenized with real tokenizers and templates: the manifest's
jinja template renders what the shards hold (through transformers' own apply_chat_template), its
bos, eos and pad ids are the ones a trainer needs, and a mask that supervises anything but answers
(a user turn, an answer run on into the next header) is reported by `shards verify`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.shards.chat_templates import BUILTIN_TEMPLATES, ChatTemplate, chat_template_for, render_chat
from curation.shards.pack import pack_conversations
from curation.shards.tokenization import tokenize_conversations
from curation.shards.tokenizer_load import load_tokenizer
from curation.shards.verify import verify_shards
from curation.shards.write import chat_template_info, tokenizer_info, write_shards
from schemas import Conversation
from schemas.config import ShardsConfig
from schemas.shards import LOSS_MASK_COLUMN, MANIFEST_NAME, ShardsManifest, read_manifest
from tests.helpers.planting import real_conversation

pytestmark = [pytest.mark.shared_data]

MAX_SEQ_LEN = 1024
# (tokenizer, template): Phi-3 with its own jinja template and with Llama 2's; Mistral with ChatML,
# whose tokens it spells as text.
CASES = {
    "phi-3-tokenizer": ("phi-3", "tokenizer"),
    "phi-3-llama2": ("phi-3", "llama2"),
    "mistral-chatml": ("mistral-7b-v0.1", "chatml"),
}


@pytest.fixture(scope="module")
def real_convs(sharegpt_sample: list[dict]) -> list[Conversation]:
    """The first real conversations in the shape the shape stage lets through (user and assistant taking turns)."""
    convs = [c for i, raw in enumerate(sharegpt_sample[:150]) if (c := real_conversation(raw, i)) is not None]
    return [c for c in convs if [t.role for t in c.turns] == ["user", "assistant"] * (len(c.turns) // 2)]


def _tokenizer_and_template(shared_data: Path, cache: Path, case: str) -> tuple[object, ChatTemplate, Path | None]:
    tokenizer_name, template_name = CASES[case]
    folder = shared_data / "tokenizers" / tokenizer_name
    spec = str(folder) if folder.is_dir() else tokenizer_name
    config = folder / "tokenizer_config.json" if folder.is_dir() else None
    return load_tokenizer(spec, cache_dir=cache), chat_template_for(template_name, tokenizer_config=config), config


@pytest.fixture(scope="module", params=sorted(CASES))
def written(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    shared_data: Path,
    real_convs: list[Conversation],
) -> dict:
    case = request.param
    tokenizer, template, config = _tokenizer_and_template(shared_data, tmp_path_factory.mktemp("tok"), case)
    tokenized, _ = tokenize_conversations(real_convs, tokenizer=tokenizer, template=template)
    shards_config = ShardsConfig(max_seq_len=MAX_SEQ_LEN, rows_per_row_group=4, overlong="drop")
    rows, _, packing = pack_conversations(tokenized, config=shards_config)
    out = tmp_path_factory.mktemp(f"shards-{case}")
    write_shards(
        rows,
        out,
        config=shards_config,
        tokenizer_info=tokenizer_info(tokenizer, case, template=template, tokenizer_config=config),
        template=template.name,
        chat_template=chat_template_info(tokenizer, template),
        run_id="r",
        config_hash="h",
        truncated=packing.truncated,
    )
    return {"case": case, "out": out, "tokenizer": tokenizer, "template": template, "convs": real_convs}


def test_real_shards_verify_clean_with_every_span_checked(written: dict) -> None:
    manifest = read_manifest(written["out"])
    assert manifest.chat_template is not None
    assert manifest.chat_template.supervised_opening_ids and manifest.chat_template.supervised_closing_ids
    assert manifest.total_conversations >= 30
    assert verify_shards(written["out"]) == []


def test_the_manifest_names_the_ids_a_trainer_sets(written: dict) -> None:
    info = read_manifest(written["out"]).tokenizer
    tokenizer = written["tokenizer"]
    expected = {
        # Phi-3's own template opens with <s> and ends answers with <|end|>; its config pads with <|endoftext|>
        "phi-3-tokenizer": ("<s>", "<|end|>", "<|endoftext|>"),
        # Llama 2 opens every round with <s> and ends answers with </s>
        "phi-3-llama2": ("<s>", "</s>", "<|endoftext|>"),
        # ChatML spelled as text opens with no special token; EOS and padding fall back to </s>
        "mistral-chatml": (None, "</s>", "</s>"),
    }[written["case"]]
    names = tuple(None if i is None else tokenizer.id_to_token(i) for i in (info.bos_id, info.eos_id, info.pad_id))
    assert names == expected


def test_the_manifests_jinja_template_renders_what_the_shards_hold(written: dict) -> None:
    from transformers import PreTrainedTokenizerFast

    manifest = read_manifest(written["out"])
    assert manifest.chat_template is not None
    hf = PreTrainedTokenizerFast(tokenizer_object=written["tokenizer"])
    for conv in written["convs"][:20]:
        messages = [{"role": t.role, "content": t.content} for t in conv.turns]
        rendered = hf.apply_chat_template(messages, chat_template=manifest.chat_template.jinja, tokenize=False)
        assert rendered == render_chat(written["template"], conv.turns)
    prompt = hf.apply_chat_template(
        messages[:1], chat_template=manifest.chat_template.jinja, tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith(written["template"].assistant.prefix)


def _plant(out: Path, change) -> None:
    """Rewrite shard 0 with `change(ids, mask) -> mask` applied to its rows, num_loss_tokens kept
    right and its sha256 recorded, so that only the planted mask is wrong."""
    path = out / "shard-00000.parquet"
    table = pq.read_table(path)
    masks = [
        change(ids, mask)
        for ids, mask in zip(table["input_ids"].to_pylist(), table[LOSS_MASK_COLUMN].to_pylist(), strict=True)
    ]
    loss = [sum(m) for m in masks]
    for name, values in ((LOSS_MASK_COLUMN, masks), ("num_loss_tokens", loss)):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, table.schema.field(name), pa.array(values, type=table.schema.field(name).type))
    pq.write_table(table, path, compression="zstd", row_group_size=4)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    for info in manifest["shards"]:
        if info["file"] == path.name:
            info["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            info["loss_tokens"] = int(sum(loss))
    manifest["total_loss_tokens"] = sum(info["loss_tokens"] for info in manifest["shards"])
    (out / MANIFEST_NAME).write_text(ShardsManifest.model_validate(manifest).model_dump_json())


def _copy(written: dict, tmp_path: Path) -> Path:
    out = tmp_path / "shards"
    out.mkdir()
    for path in written["out"].iterdir():
        (out / path.name).write_bytes(path.read_bytes())
    return out


def test_a_supervised_user_turn_is_reported(written: dict, tmp_path: Path) -> None:
    out = _copy(written, tmp_path)
    opening = read_manifest(out).chat_template.supervised_opening_ids  # type: ignore[union-attr]

    def supervise_the_first_user_text(ids: list[int], mask: list[int]) -> list[int]:
        # a stretch of the first user turn: after the row's first few tokens, before its first answer header
        first_answer = next(i for i in range(len(ids)) if ids[i - len(opening) : i] == opening)
        stretch = range(3, max(4, first_answer - len(opening) - 2))
        return [1 if i in stretch else m for i, m in enumerate(mask)]

    _plant(out, supervise_the_first_user_text)
    problems = verify_shards(out)
    assert any("follow no answer header" in p for p in problems), problems


def test_an_answer_run_on_into_the_next_header_is_reported(written: dict, tmp_path: Path) -> None:
    out = _copy(written, tmp_path)

    def run_on(ids: list[int], mask: list[int]) -> list[int]:
        # the first answer's span, one token longer (into the separator or the next user header)
        end = next((i for i in range(1, len(mask)) if mask[i - 1] == 1 and mask[i] == 0), None)
        return [1 if i == end else m for i, m in enumerate(mask)]  # a row of one answer at its end: unchanged

    _plant(out, run_on)
    problems = verify_shards(out)
    assert any("lack the end of turn" in p for p in problems), problems


def test_each_builtin_templates_jinja_renders_as_the_template_does() -> None:
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"x": 0}, unk_token="x")))
    from curation.shards.chat_templates import jinja_chat_template
    from schemas.conversation import Turn

    turns = [
        Turn(role="system", content="Be terse.", source_role="system"),
        Turn(role="user", content=" Hi\n", source_role="user"),
        Turn(role="assistant", content="Hello!\n\n", source_role="assistant"),
        Turn(role="user", content="Bye", source_role="user"),
        Turn(role="assistant", content=" ok", source_role="assistant"),
    ]
    for template in BUILTIN_TEMPLATES.values():
        for conversation in (turns, turns[1:]):
            messages = [{"role": t.role, "content": t.content} for t in conversation]
            rendered = hf.apply_chat_template(messages, chat_template=jinja_chat_template(template), tokenize=False)
            assert rendered == render_chat(template, conversation), template.name
