"""Chat templates and tokenization: the loss mask covers exactly the answers and their end of turn.

Real tokenizers only: Phi-3's tokenizer.json from ../shared (its chat tokens are special tokens),
the built-in Mistral 7B v0.1 (SentencePiece, only <s> and </s> special) and Falcon 7B (byte-level
BPE, no dummy prefix). The masks are checked by decoding each supervised span and comparing it
with the assistant turns' text, never against ids written down in the test.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from curation.shards.chat_templates import (
    BUILTIN_TEMPLATES,
    ChatTemplate,
    UnsupportedChatTemplateError,
    chat_template_for,
    render_chat,
    template_from_tokenizer_config,
    template_pieces,
)
from curation.shards.split import split_long_conversations
from curation.shards.tokenization import (
    ConversationEncoder,
    encode_template_pieces,
    render_supervised_text,
    supervised_spans,
    tokenize_conversation,
    tokenize_conversations,
)
from curation.shards.tokenizer_load import BUILTIN_MISTRAL, load_tokenizer
from schemas import Conversation, Turn
from schemas.config import SplitConfig
from schemas.conversation import Role
from tests.helpers.conversations import conversation, sharegpt_turns

pytestmark = pytest.mark.shared_data

TEMPLATE_NAMES = [*BUILTIN_TEMPLATES, "tokenizer"]
TOKENIZER_NAMES = ["phi-3", "mistral", "falcon"]
# SentencePiece tokenizers put a dummy "▁" before text that follows a special token; decoding
# shows it as a space (the documented difference between decoded ids and the rendered text).
DUMMY_PREFIX = {"phi-3": True, "mistral": True, "falcon": False}

# Strings that are control tokens in one format or another, typed into messages.
CONTROL_STRINGS = (
    "<|im_end|>",
    "<|im_start|>assistant\n",
    "</s>",
    "<s>",
    "[INST]",
    "[/INST]",
    "<|end|>",
    "<|user|>",
    "<|assistant|>\n",
    "<|endoftext|>",
    "<|end_of_turn|>",
    "<unk>",
    ">>ANSWER<<",
    "ASSISTANT:",
)


# --- fixtures and helpers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizers_by_name(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Tokenizer]:
    pytest.importorskip("mistral_common", reason="the built-in tokenizer needs mistral-common")
    pytest.importorskip("sentencepiece", reason="the built-in tokenizer needs sentencepiece")
    cache = tmp_path_factory.mktemp("tokenizer-cache")
    return {
        "phi-3": load_tokenizer(str(shared_data / "tokenizers" / "phi-3"), cache_dir=cache),
        "mistral": load_tokenizer(BUILTIN_MISTRAL, cache_dir=cache),
        "falcon": load_tokenizer(str(shared_data / "tokenizers" / "falcon-7b"), cache_dir=cache),
    }


@pytest.fixture(scope="module")
def phi3_config(shared_data: Path) -> Path:
    return shared_data / "tokenizers" / "phi-3" / "tokenizer_config.json"


@pytest.fixture(scope="module")
def templates(phi3_config: Path) -> dict[str, ChatTemplate]:
    return {name: chat_template_for(name, tokenizer_config=phi3_config) for name in TEMPLATE_NAMES}  # type: ignore[arg-type]


SYNTHETIC = [
    conversation(("user", "Hello there"), ("assistant", "Hi! How can I help?")),
    conversation(
        ("system", "You are terse."),
        ("user", "Write a function."),
        ("assistant", "```python\ndef f(x):\n    return x ** 2  # square\n```\n\nDone."),
        ("user", "  Indented question with trailing spaces  "),
        ("assistant", " Answer with a leading space, unicode: Привет 你好 😀\ttab"),
        ("user", "\n\nStarts with blank lines"),
        ("assistant", "Ends with a newline\n"),
    ),
]


def text_before_answer(template: ChatTemplate) -> str:
    # What the template writes between a user's content and the answer's content.
    return template.user.suffix + template.user.separator + template.assistant.prefix


def expected_supervised_text(conv: Conversation, template: ChatTemplate) -> list[str]:
    """Each trained answer with its end of turn. A space the template writes before the answer
    is encoded with the answer's first word ("▁Hi"), so it belongs to the span."""
    lead = " " if text_before_answer(template).endswith(" ") else ""
    return [
        lead + t.content + template.assistant.suffix
        for t in conv.turns
        if t.role == "assistant" and (t.weight is None or t.weight > 0)
    ]


def special_ids(tokenizer: Tokenizer) -> set[int]:
    return {i for i, token in tokenizer.get_added_tokens_decoder().items() if token.special}


def added_strings(tokenizer: Tokenizer) -> list[str]:
    return [token.content for token in tokenizer.get_added_tokens_decoder().values()]


def expected_decoding(rendered: str, tokenizer: Tokenizer, dummy_prefix: bool) -> str:
    """The rendered text as decoding its ids gives it back: with a dummy-prefix tokenizer, a
    space after every special token that text follows."""
    if not dummy_prefix:
        return rendered
    specials = "|".join(map(re.escape, sorted(added_strings(tokenizer), key=len, reverse=True)))
    return re.sub(f"({specials})(?!\\Z)(?!{specials})", r"\1 ", rendered)


def types_control_strings(conv: Conversation, tokenizer: Tokenizer) -> bool:
    return any(s in t.content for s in added_strings(tokenizer) for t in conv.turns)


def check_mask(conv: Conversation, template: ChatTemplate, tokenizer: Tokenizer) -> None:
    tokenized = tokenize_conversation(conv, tokenizer=tokenizer, template=template)
    assert len(tokenized.input_ids) == len(tokenized.loss_mask)
    assert set(tokenized.loss_mask) <= {0, 1}
    assert tokenized.loss_mask[0] == 0
    assert render_supervised_text(tokenized, tokenizer) == expected_supervised_text(conv, template)


def render_jinja_directly(config_path: Path, turns: Sequence[Turn]) -> str:
    """The reference: the chat_template rendered on the whole conversation, as transformers does."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(config["chat_template"]).render(
        messages=[{"role": t.role, "content": t.content} for t in turns],
        bos_token=config["bos_token"],
        eos_token=config["eos_token"],
        add_generation_prompt=False,
    )


@pytest.fixture(scope="module")
def real_conversations(sharegpt_sample: list[dict[str, Any]]) -> list[Conversation]:
    """The first 300 real conversations whose turns alternate user/assistant, user first."""
    roles: dict[str, Role] = {"human": "user", "gpt": "assistant", "bing": "assistant"}
    kept: list[Conversation] = []
    for record in sharegpt_sample:
        messages = record["conversations"]
        mapped = [roles.get(m["from"]) for m in messages]
        alternating = all(role == ("user", "assistant")[i % 2] for i, role in enumerate(mapped))
        if messages and alternating and "assistant" in mapped:
            kept.append(conversation(*sharegpt_turns(messages, roles), id=record["id"]))
        if len(kept) == 300:
            break
    assert len(kept) == 300
    return kept


# --- the templates as text ------------------------------------------------------------------------------

TWO_ROUNDS = conversation(("user", "Q1"), ("assistant", "A1"), ("user", "Q2"), ("assistant", "A2"))
WITH_SYSTEM = conversation(("system", "S"), ("user", "Q1"), ("assistant", "A1"))
EXAMPLES = {"two_rounds": TWO_ROUNDS, "with_system": WITH_SYSTEM}

# The formats as their authors document them (the task's spec strings).
RENDERED = {
    ("llama2", "two_rounds"): "<s>[INST] Q1 [/INST] A1 </s><s>[INST] Q2 [/INST] A2 </s>",
    ("llama2", "with_system"): "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nQ1 [/INST] A1 </s>",
    ("chatml", "two_rounds"): "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
    "<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\nA2<|im_end|>\n",
    ("chatml", "with_system"): "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n"
    "<|im_start|>assistant\nA1<|im_end|>\n",
    (
        "vicuna",
        "two_rounds",
    ): "<s>A chat between a curious user and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the user's questions. USER: Q1 ASSISTANT: A1</s>USER: Q2 "
    "ASSISTANT: A2</s>",
    ("vicuna", "with_system"): "<s>S USER: Q1 ASSISTANT: A1</s>",
    ("openchat", "two_rounds"): "<s>GPT4 User: Q1<|end_of_turn|>GPT4 Assistant: A1<|end_of_turn|>"
    "GPT4 User: Q2<|end_of_turn|>GPT4 Assistant: A2<|end_of_turn|>",
    ("tulu", "two_rounds"): "<s><|user|>\nQ1\n<|assistant|>\nA1</s>\n<|user|>\nQ2\n<|assistant|>\nA2</s>\n",
    ("tulu", "with_system"): "<s><|system|>\nS\n<|user|>\nQ1\n<|assistant|>\nA1</s>\n",
    (
        "phi3",
        "two_rounds",
    ): "<s><|user|>\nQ1<|end|>\n<|assistant|>\nA1<|end|>\n<|user|>\nQ2<|end|>\n<|assistant|>\nA2<|end|>\n",
    ("phi3", "with_system"): "<s><|system|>\nS<|end|>\n<|user|>\nQ1<|end|>\n<|assistant|>\nA1<|end|>\n",
}


@pytest.mark.parametrize(("name", "example"), list(RENDERED))
def test_builtin_templates_render_their_documented_format(name: str, example: str) -> None:
    assert render_chat(BUILTIN_TEMPLATES[name], EXAMPLES[example].turns) == RENDERED[(name, example)]


def test_a_system_turn_must_come_first() -> None:
    late_system = conversation(("user", "Q"), ("system", "S"), ("assistant", "A"))
    with pytest.raises(ValueError, match="system"):
        template_pieces(BUILTIN_TEMPLATES["chatml"], late_system.turns)
    no_user_after_system = conversation(("system", "S"), ("assistant", "A"))
    with pytest.raises(ValueError, match="system prompt"):
        template_pieces(BUILTIN_TEMPLATES["llama2"], no_user_after_system.turns)


# --- the mask ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tokenizer_name", TOKENIZER_NAMES)
@pytest.mark.parametrize("template_name", TEMPLATE_NAMES)
def test_the_mask_covers_exactly_the_answers_and_their_end_of_turn(
    tokenizers_by_name: dict[str, Tokenizer],
    templates: dict[str, ChatTemplate],
    template_name: str,
    tokenizer_name: str,
) -> None:
    for conv in SYNTHETIC:
        check_mask(conv, templates[template_name], tokenizers_by_name[tokenizer_name])


@pytest.mark.parametrize("tokenizer_name", TOKENIZER_NAMES)
@pytest.mark.parametrize("template_name", TEMPLATE_NAMES)
def test_headers_bos_user_and_system_text_are_never_supervised(
    tokenizers_by_name: dict[str, Tokenizer],
    templates: dict[str, ChatTemplate],
    template_name: str,
    tokenizer_name: str,
) -> None:
    tokenizer, template = tokenizers_by_name[tokenizer_name], templates[template_name]
    conv = SYNTHETIC[1]
    pieces = encode_template_pieces(conv, tokenizer=tokenizer, template=template)
    tokenized = tokenize_conversation(conv, tokenizer=tokenizer, template=template)
    # The pieces are the conversation, in order, and carry its mask.
    assert [i for p in pieces for i in p.ids] == list(tokenized.input_ids)
    assert [int(p.supervised) for p in pieces for _ in p.ids] == list(tokenized.loss_mask)
    for piece in pieces:
        trained_part = piece.role == "assistant" and piece.kind in ("content", "suffix")
        assert piece.supervised == trained_part, piece
    # Every user and system message shows up, whole, in the untrained text.
    mask = tokenized.loss_mask
    untrained = tokenizer.decode([i for i, m in zip(tokenized.input_ids, mask, strict=True) if not m])
    shown = [
        t for t in conv.turns if t.role == "user" or (t.role == "system" and template.system_placement != "omitted")
    ]
    assert len(shown) == 4 - (template.system_placement == "omitted")
    for turn in shown:
        assert turn.content.strip() in untrained


@pytest.mark.parametrize("tokenizer_name", ["phi-3", "mistral"])
@pytest.mark.parametrize("template_name", TEMPLATE_NAMES)
def test_a_weight_zero_answer_is_context_only(
    tokenizers_by_name: dict[str, Tokenizer],
    templates: dict[str, ChatTemplate],
    template_name: str,
    tokenizer_name: str,
) -> None:
    tokenizer, template = tokenizers_by_name[tokenizer_name], templates[template_name]
    conv = conversation(
        ("user", "Q1"),
        ("assistant", "As an AI language model, I cannot.", 0.0),
        ("user", "Q2"),
        ("assistant", "Here it is.", 0.5),
        ("user", "Q3"),
        ("assistant", "And more."),
    )
    check_mask(conv, template, tokenizer)
    assert all("As an AI" not in text for text in expected_supervised_text(conv, template))
    # The untrained answer is still in the ids, as context.
    tokenized = tokenize_conversation(conv, tokenizer=tokenizer, template=template)
    assert "As an AI language model, I cannot." in tokenizer.decode(list(tokenized.input_ids))


@pytest.mark.parametrize("template_name", TEMPLATE_NAMES)
def test_a_conversation_with_nothing_to_train_on_is_dropped(
    tokenizers_by_name: dict[str, Tokenizer], templates: dict[str, ChatTemplate], template_name: str
) -> None:
    trained = conversation(("user", "Q"), ("assistant", "A"), id="trained")
    all_zero = conversation(
        ("user", "Q"),
        ("assistant", "A", 0.0),
        ("user", "Q2"),
        ("assistant", "B", 0.0),
        id="z",
        input_file="dump.json",
        byte_offset=42,
        record_index=7,
    )
    kept, dropped = tokenize_conversations(
        [trained, all_zero], tokenizer=tokenizers_by_name["mistral"], template=templates[template_name]
    )
    assert [k.conversation_id for k in kept] == ["trained"]
    (drop,) = dropped
    assert (drop.conversation_id, drop.stage, drop.reason) == ("z", "tokenize", "no_supervised_tokens")
    assert "weight_0=2" in drop.detail and "assistant_turns=2" in drop.detail
    assert (drop.input_file, drop.byte_offset, drop.record_index) == ("dump.json", 42, 7)
    # Kept and dropped account for every input.
    assert len(kept) + len(dropped) == 2


# --- special tokens ----------------------------------------------------------------------------------------


def test_template_control_strings_become_the_tokenizers_special_ids(
    tokenizers_by_name: dict[str, Tokenizer], templates: dict[str, ChatTemplate]
) -> None:
    phi3 = tokenizers_by_name["phi-3"]
    for name in ("phi3", "tokenizer"):
        ids = tokenize_conversation(TWO_ROUNDS, tokenizer=phi3, template=templates[name]).input_ids
        assert ids[0] == phi3.token_to_id("<s>")
        for token, count in (("<|user|>", 2), ("<|assistant|>", 2), ("<|end|>", 4)):
            assert ids.count(phi3.token_to_id(token)) == count, token
    mistral = tokenizers_by_name["mistral"]
    tokenized = tokenize_conversation(TWO_ROUNDS, tokenizer=mistral, template=templates["llama2"])
    bos, eos = mistral.token_to_id("<s>"), mistral.token_to_id("</s>")
    assert tokenized.input_ids[0] == bos and tokenized.input_ids[-1] == eos
    assert tokenized.input_ids.count(bos) == 2 and tokenized.input_ids.count(eos) == 2
    # Each </s> ends an answer and is trained; each <s> opens a round and is not.
    for i, token in enumerate(tokenized.input_ids):
        if token in (bos, eos):
            assert tokenized.loss_mask[i] == (token == eos)


@pytest.mark.parametrize("tokenizer_name", TOKENIZER_NAMES)
@pytest.mark.parametrize("template_name", TEMPLATE_NAMES)
def test_control_strings_typed_in_messages_stay_text(
    tokenizers_by_name: dict[str, Tokenizer],
    templates: dict[str, ChatTemplate],
    template_name: str,
    tokenizer_name: str,
) -> None:
    tokenizer, template = tokenizers_by_name[tokenizer_name], templates[template_name]
    typed = " then ".join(CONTROL_STRINGS)
    conv = conversation(
        ("system", f"system {typed}"),
        ("user", typed),
        ("assistant", f"{typed} in an answer"),
        ("user", "</s>"),
        ("assistant", "<|end|>"),
    )
    check_mask(conv, template, tokenizer)
    specials = special_ids(tokenizer)
    pieces = encode_template_pieces(conv, tokenizer=tokenizer, template=template)
    contents = [p for p in pieces if p.kind == "content"]
    assert contents
    for piece in contents:
        assert not specials & set(piece.ids), piece
    # The caller's tokenizer still reads special tokens in text (it was not switched off).
    assert tokenizer.encode_special_tokens is False
    if tokenizer_name != "falcon":
        assert tokenizer.encode("</s>", add_special_tokens=False).ids == [tokenizer.token_to_id("</s>")]


# --- ids and text ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tokenizer_name", TOKENIZER_NAMES)
@pytest.mark.parametrize("template_name", TEMPLATE_NAMES)
def test_decoding_the_ids_gives_the_rendered_text(
    tokenizers_by_name: dict[str, Tokenizer],
    templates: dict[str, ChatTemplate],
    template_name: str,
    tokenizer_name: str,
) -> None:
    tokenizer, template = tokenizers_by_name[tokenizer_name], templates[template_name]
    for conv in [*SYNTHETIC, TWO_ROUNDS, WITH_SYSTEM]:
        tokenized = tokenize_conversation(conv, tokenizer=tokenizer, template=template)
        rendered = render_chat(template, conv.turns)
        expected = expected_decoding(rendered, tokenizer, DUMMY_PREFIX[tokenizer_name])
        assert tokenizer.decode(list(tokenized.input_ids), skip_special_tokens=False) == expected


# Where every template string meets a message at whitespace or at a special token, encoding piece
# by piece gives exactly the ids of encoding the whole rendered text. Elsewhere a template string
# spelled as text can merge with the message's last character when encoded whole (".<" in
# "done.<|im_end|>"); pieces never merge, so the end of turn always has the same tokens.
SAME_AS_WHOLE_TEXT = [
    ("phi-3", "llama2"),
    ("phi-3", "vicuna"),
    ("phi-3", "tulu"),
    ("phi-3", "phi3"),
    ("phi-3", "tokenizer"),
    ("mistral", "llama2"),
    ("mistral", "vicuna"),
    ("mistral", "tulu"),
]


@pytest.mark.parametrize(("tokenizer_name", "template_name"), SAME_AS_WHOLE_TEXT)
def test_ids_are_those_of_the_whole_rendered_text(
    tokenizers_by_name: dict[str, Tokenizer],
    templates: dict[str, ChatTemplate],
    real_conversations: list[Conversation],
    template_name: str,
    tokenizer_name: str,
) -> None:
    tokenizer, template = tokenizers_by_name[tokenizer_name], templates[template_name]
    convs = [c for c in [*SYNTHETIC, *real_conversations] if not types_control_strings(c, tokenizer)]
    kept, _ = tokenize_conversations(convs, tokenizer=tokenizer, template=template)
    rendered = [render_chat(template, c.turns) for c in convs]
    whole = tokenizer.encode_batch(rendered, add_special_tokens=False)
    assert len(kept) == len(convs) > 250
    for tokenized, encoding in zip(kept, whole, strict=True):
        assert list(tokenized.input_ids) == encoding.ids, tokenized.conversation_id


def test_text_pieces_are_not_merged_across_a_template_boundary(
    tokenizers_by_name: dict[str, Tokenizer], templates: dict[str, ChatTemplate]
) -> None:
    # "done." + "<|im_end|>" as text: encoded whole, Mistral's BPE merges ".<"; piece by piece
    # the end of turn keeps its own tokens, so the mask boundary never falls inside a token.
    tokenizer, template = tokenizers_by_name["mistral"], templates["chatml"]
    conv = conversation(("user", "Q."), ("assistant", "done."))
    check_mask(conv, template, tokenizer)
    end_of_turn = tokenizer.encode("\n" + template.assistant.suffix, add_special_tokens=False).ids[2:]
    pieces = encode_template_pieces(conv, tokenizer=tokenizer, template=template)
    suffixes = [p for p in pieces if p.kind == "suffix" and p.role == "assistant"]
    assert [list(p.ids) for p in suffixes] == [end_of_turn]


# --- the tokenizer's own jinja template ------------------------------------------------------------------


def test_phi3_jinja_template_is_read_as_strings(templates: dict[str, ChatTemplate]) -> None:
    template = templates["tokenizer"]
    assert template.bos == "<s>"
    assert template.assistant.suffix == "<|end|>" and template.assistant.separator == "\n"
    assert template.user.prefix == "<|user|>\n"
    assert text_before_answer(template) == "<|end|>\n<|assistant|>\n"
    # Phi-3's template has no branch for system messages: it leaves them out.
    assert template.system_placement == "omitted"


def test_phi3_jinja_template_renders_and_tokenizes_as_the_jinja_itself(
    phi3_config: Path,
    tokenizers_by_name: dict[str, Tokenizer],
    templates: dict[str, ChatTemplate],
    real_conversations: list[Conversation],
) -> None:
    tokenizer = tokenizers_by_name["phi-3"]
    convs = [*SYNTHETIC, TWO_ROUNDS, WITH_SYSTEM, *real_conversations]
    direct = [render_jinja_directly(phi3_config, conv.turns) for conv in convs]
    assert [render_chat(templates["tokenizer"], conv.turns) for conv in convs] == direct
    # Piece by piece, the ids are those of the jinja output encoded whole (what transformers'
    # apply_chat_template(tokenize=True) gives), wherever no message types a special token.
    plain = [i for i, conv in enumerate(convs) if not types_control_strings(conv, tokenizer)]
    kept, _ = tokenize_conversations([convs[i] for i in plain], tokenizer=tokenizer, template=templates["tokenizer"])
    whole = tokenizer.encode_batch([direct[i] for i in plain], add_special_tokens=False)
    assert len(plain) > 250
    assert [list(k.input_ids) for k in kept] == [e.ids for e in whole]


def write_config(folder: Path, chat_template: str, **tokens: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"bos_token": "<s>", "eos_token": "</s>", **tokens, "chat_template": chat_template}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


# Small jinja templates of other shapes, written for these tests.
OWN_TURN_WITH_DEFAULT = (
    "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nBe kind.<|im_end|>\\n' }}{% endif %}"
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
)
SYSTEM_IN_FIRST_USER = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}{{ bos_token + '[INST] ' }}"
    "{% if loop.index0 == 1 and messages[0]['role'] == 'system' %}"
    "{{ '<<SYS>>\\n' + messages[0]['content'] + '\\n<</SYS>>\\n\\n' }}{% endif %}"
    "{{ m['content'] + ' [/INST]' }}"
    "{% elif m['role'] == 'assistant' %}{{ ' ' + m['content'] + ' ' + eos_token }}{% endif %}"
    "{% endfor %}"
)
STRIPS_CONTENT = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] | trim + eos_token + '\\n' }}{% endfor %}"
)


@pytest.mark.parametrize(
    ("source", "placement"), [(OWN_TURN_WITH_DEFAULT, "own_turn"), (SYSTEM_IN_FIRST_USER, "first_user_turn")]
)
def test_other_jinja_shapes_are_read_and_match_their_jinja(tmp_path: Path, source: str, placement: str) -> None:
    folder = write_config(tmp_path / "tok", source)
    template = template_from_tokenizer_config(folder)
    assert template.system_placement == placement
    for conv in [*SYNTHETIC, TWO_ROUNDS, WITH_SYSTEM, conversation(("user", "Q"), ("assistant", "A"))]:
        assert render_chat(template, conv.turns) == render_jinja_directly(folder / "tokenizer_config.json", conv.turns)


def test_a_jinja_template_that_refuses_system_messages_leaves_them_out(tmp_path: Path) -> None:
    source = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "{{ '<|' + m['role'] + '|>' + m['content'] + eos_token }}{% endfor %}"
    )
    folder = write_config(tmp_path / "tok", source)
    template = template_from_tokenizer_config(folder)
    assert template.system_placement == "omitted"
    for conv in [*SYNTHETIC[:1], TWO_ROUNDS]:
        assert render_chat(template, conv.turns) == render_jinja_directly(folder / "tokenizer_config.json", conv.turns)
    assert render_chat(template, WITH_SYSTEM.turns) == render_chat(template, WITH_SYSTEM.turns[1:])


def test_a_chat_template_jinja_file_beside_the_config_is_read(
    tmp_path: Path, phi3_config: Path, templates: dict[str, ChatTemplate]
) -> None:
    config = json.loads(phi3_config.read_text(encoding="utf-8"))
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "chat_template.jinja").write_text(config.pop("chat_template"), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    assert template_from_tokenizer_config(folder) == templates["tokenizer"]


def test_jinja_templates_that_cannot_be_strings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedChatTemplateError, match="strip"):
        template_from_tokenizer_config(write_config(tmp_path / "strips", STRIPS_CONTENT))
    with pytest.raises(UnsupportedChatTemplateError, match="once"):
        template_from_tokenizer_config(write_config(tmp_path / "drops", "{{ messages[0]['content'] }}"))
    none = tmp_path / "none"
    none.mkdir()
    (none / "tokenizer_config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(UnsupportedChatTemplateError, match="no chat_template"):
        template_from_tokenizer_config(none)
    with pytest.raises(UnsupportedChatTemplateError, match="tokenizer_config"):
        chat_template_for("tokenizer")


# --- the real sample -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("tokenizer_name", ["phi-3", "mistral"])
@pytest.mark.parametrize("template_name", TEMPLATE_NAMES)
def test_every_real_conversation_passes_the_mask_check(
    tokenizers_by_name: dict[str, Tokenizer],
    templates: dict[str, ChatTemplate],
    real_conversations: list[Conversation],
    template_name: str,
    tokenizer_name: str,
) -> None:
    tokenizer, template = tokenizers_by_name[tokenizer_name], templates[template_name]
    kept, dropped = tokenize_conversations(real_conversations, tokenizer=tokenizer, template=template)
    assert dropped == [] and [k.conversation_id for k in kept] == [c.id for c in real_conversations]
    specials = special_ids(tokenizer)
    for conv, tokenized in zip(real_conversations, kept, strict=True):
        assert tokenized.loss_mask[0] == 0
        assert render_supervised_text(tokenized, tokenizer) == expected_supervised_text(conv, template), conv.id
        # Supervised tokens are the answers' tokens plus their end of turn: never a special
        # token other than the template's own end-of-turn ones.
        trained = {i for i, m in zip(tokenized.input_ids, tokenized.loss_mask, strict=True) if m}
        end_of_turn_ids = set(tokenizer.encode(template.assistant.suffix, add_special_tokens=False).ids)
        assert trained & specials <= end_of_turn_ids


def test_tokenization_is_deterministic_and_batch_independent(
    shared_data: Path,
    tokenizers_by_name: dict[str, Tokenizer],
    templates: dict[str, ChatTemplate],
    real_conversations: list[Conversation],
) -> None:
    convs = real_conversations[:60]
    template = templates["phi3"]
    first, _ = tokenize_conversations(convs, tokenizer=tokenizers_by_name["phi-3"], template=template)
    # A freshly loaded tokenizer, the batch reversed, and one conversation at a time.
    fresh = Tokenizer.from_file(str(shared_data / "tokenizers" / "phi-3" / "tokenizer.json"))
    reversed_batch, _ = tokenize_conversations(convs[::-1], tokenizer=fresh, template=template)
    singles = [tokenize_conversation(c, tokenizer=fresh, template=template) for c in convs]
    assert first == reversed_batch[::-1] == singles


class CountingTokenizer:
    """A tokenizer that counts the texts it is asked to encode in batches (everything else passes through)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self.encoded: list[str] = []

    def encode_batch(self, texts: Sequence[str], **kwargs: Any) -> Any:
        self.encoded.extend(texts)
        return self._tokenizer.encode_batch(texts, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokenizer, name)


@pytest.mark.parametrize(("tokenizer_name", "template_name"), [("mistral", "llama2"), ("phi-3", "phi3")])
def test_split_and_tokenize_share_one_encoding_of_each_text(
    tokenizers_by_name: dict[str, Tokenizer],
    templates: dict[str, ChatTemplate],
    real_conversations: list[Conversation],
    tokenizer_name: str,
    template_name: str,
) -> None:
    """What a run does (split counts with the part's encoder, tokenize reuses it) gives the ids a
    fresh tokenization gives, and encodes no text twice; the counts are the content pieces' ids."""
    tokenizer, template = tokenizers_by_name[tokenizer_name], templates[template_name]
    convs = real_conversations[:300]
    counting = CountingTokenizer(tokenizer)
    encoder = ConversationEncoder(counting, template)  # type: ignore[arg-type]
    counts = encoder.content_token_counts(convs)
    encoded_by_split = len(counting.encoded)
    pieces = split_long_conversations(
        convs, count_tokens=encoder.content_token_counts, config=SplitConfig(max_tokens=512)
    )
    assert len(pieces.kept) > len(convs)  # some were cut, so pieces start at new places
    shared, dropped = encoder.tokenize(pieces.kept)
    assert (shared, dropped) == tokenize_conversations(pieces.kept, tokenizer=tokenizer, template=template)
    # Counting again encodes nothing; tokenizing the pieces encodes only the texts that open a piece
    # (a header after the piece's start instead of after an answer) and each of those once.
    assert len(counting.encoded) == len(set(counting.encoded))
    assert len(counting.encoded) - encoded_by_split < 0.05 * encoded_by_split
    expected = []
    for conv in convs:
        per_turn = [0] * len(conv.turns)
        for piece in encode_template_pieces(conv, tokenizer=tokenizer, template=template):
            if piece.kind == "content" and piece.turn_index is not None:
                per_turn[piece.turn_index] += len(piece.ids)
        expected.extend(per_turn)
    assert counts == expected


# --- helpers for inspection ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mask", "spans"),
    [
        ((), []),
        ((0, 0), []),
        ((1,), [(0, 1)]),
        ((0, 1, 1, 0, 1), [(1, 3), (4, 5)]),
        ((1, 1, 0, 0, 1, 1), [(0, 2), (4, 6)]),
    ],
)
def test_supervised_spans(mask: tuple[int, ...], spans: list[tuple[int, int]]) -> None:
    assert supervised_spans(mask) == spans
