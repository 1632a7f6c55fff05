"""Chat templates as data: the strings a format puts around each message, and which are trained.

A template is a `ChatTemplate` of plain strings. A conversation rendered with it is a sequence of
`TemplatePiece`s: the BOS string, then per turn its role's prefix (the header), the content, the
suffix (end of turn) and a separator. Only an assistant's content and suffix are supervised, and
only when the turn's weight is None or > 0. Tokenization (curation.shards.tokenization) encodes these
pieces one by one, so the loss mask follows the pieces by construction instead of being
recovered afterwards from a rendered string (FastChat's "tokenization mismatch",
docs/sharegpt.md#training-formats).

Where the separator matters: an assistant's end-of-turn token is trained (the model must learn to
stop), but the newline some formats write after it is not: generation has stopped by then, so the
model never produces it.

A tokenizer's own jinja `chat_template` (tokenizer_config.json) becomes a ChatTemplate too
(`template_from_tokenizer_config`). The jinja source is rendered, sandboxed, on probe
conversations whose contents are sentinel strings; the text between the sentinels gives each
role's prefix and suffix:

    render(user U0, assistant A0, user U1, assistant A1) = s0 U0 s1 A0 s2 U1 s3 A1 s4
    s4 = the assistant's suffix + separator (the end of the conversation)
    s2 = s4 + the user's prefix, so the user prefix is s2 without s4
    s0 = BOS + the user prefix
    s1 = s3 = the user's suffix + the assistant's prefix, split where a conversation ending in
         a user turn ends
    a system message in a third probe shows whether it is its own turn, sits inside the first
    user turn (Llama 2), or is left out (Phi-3's template ignores system messages)

The result is then checked: longer probes with awkward contents (surrounding whitespace, blank
lines) must render to exactly the jinja output, or the template is refused
(UnsupportedChatTemplateError): templates that change the content (strip it) or vary by turn
position cannot be expressed as per-role strings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from os.path import commonprefix
from pathlib import Path
from typing import Any, Literal

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from schemas.config import ChatTemplateName
from schemas.conversation import Role, Turn
from schemas.errors import ConfigError

__all__ = [
    "BUILTIN_TEMPLATES",
    "ChatTemplate",
    "PieceKind",
    "SystemPlacement",
    "TemplatePiece",
    "TurnFormat",
    "UnsupportedChatTemplateError",
    "chat_template_for",
    "jinja_chat_template",
    "render_chat",
    "template_from_tokenizer_config",
    "template_pieces",
]

# "own_turn": the system prompt is a turn of its own; "first_user_turn": it is written inside the
# first user turn, after that turn's prefix (Llama 2's <<SYS>> block); "omitted": the format has
# no place for it and leaves it out, as Phi-3's own template does.
SystemPlacement = Literal["own_turn", "first_user_turn", "omitted"]
PieceKind = Literal["bos", "prefix", "content", "suffix", "separator"]


@dataclass(frozen=True)
class TurnFormat:
    """The strings around one role's messages."""

    prefix: str = ""  # the role header, before the content; never trained
    suffix: str = ""  # after the content; the assistant's is its end of turn, trained with it
    separator: str = ""  # after the suffix, before the next turn; never trained


@dataclass(frozen=True)
class ChatTemplate:
    """A chat format as strings. Special-token strings ("</s>", "<|end|>") are plain text here;
    tokenization maps them to token ids where the tokenizer has them."""

    name: str
    bos: str
    system: TurnFormat
    user: TurnFormat
    assistant: TurnFormat
    system_placement: SystemPlacement = "own_turn"
    # Rendered as the system prompt of a conversation without one (Vicuna always has one).
    default_system: str | None = None


@dataclass(frozen=True)
class TemplatePiece:
    """One string of a rendered conversation. `kind == "content"` is message text: it is never
    read for special tokens. `turn_index` is the turn's index in the conversation (None: BOS)."""

    text: str
    kind: PieceKind
    role: Role | None
    turn_index: int | None
    supervised: bool


# --- the built-in formats ------------------------------------------------------------------------

# Llama 2 chat as Meta's reference code builds it: every round is its own <s> ... </s>, and the
# system prompt sits in a <<SYS>> block inside the first [INST].
LLAMA2 = ChatTemplate(
    name="llama2",
    bos="",
    system=TurnFormat(prefix="<<SYS>>\n", suffix="\n<</SYS>>\n\n"),
    user=TurnFormat(prefix="<s>[INST] ", suffix=" [/INST]"),
    assistant=TurnFormat(prefix=" ", suffix=" </s>"),
    system_placement="first_user_turn",
)

CHATML = ChatTemplate(
    name="chatml",
    bos="",
    system=TurnFormat(prefix="<|im_start|>system\n", suffix="<|im_end|>", separator="\n"),
    user=TurnFormat(prefix="<|im_start|>user\n", suffix="<|im_end|>", separator="\n"),
    assistant=TurnFormat(prefix="<|im_start|>assistant\n", suffix="<|im_end|>", separator="\n"),
)

# FastChat's vicuna_v1.1: sep " " after the system prompt and user turns, "</s>" after answers,
# and its default system prompt when the conversation brings none.
VICUNA = ChatTemplate(
    name="vicuna",
    bos="<s>",
    system=TurnFormat(suffix=" "),
    user=TurnFormat(prefix="USER: ", suffix=" "),
    assistant=TurnFormat(prefix="ASSISTANT: ", suffix="</s>"),
    default_system=(
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions."
    ),
)

# OpenChat's GPT-4 condition; a system prompt is bare text closed by <|end_of_turn|>.
OPENCHAT = ChatTemplate(
    name="openchat",
    bos="<s>",
    system=TurnFormat(suffix="<|end_of_turn|>"),
    user=TurnFormat(prefix="GPT4 User: ", suffix="<|end_of_turn|>"),
    assistant=TurnFormat(prefix="GPT4 Assistant: ", suffix="<|end_of_turn|>"),
)

# Tulu (open-instruct): EOS closes each answer, then a newline before the next turn.
TULU = ChatTemplate(
    name="tulu",
    bos="<s>",
    system=TurnFormat(prefix="<|system|>\n", suffix="\n"),
    user=TurnFormat(prefix="<|user|>\n", suffix="\n"),
    assistant=TurnFormat(prefix="<|assistant|>\n", suffix="</s>", separator="\n"),
)

# Phi-3 with a system turn as its later releases write it (the phi-3 tokenizer_config.json in
# ../shared has no system role; the "tokenizer" template follows that file exactly).
PHI3 = ChatTemplate(
    name="phi3",
    bos="<s>",
    system=TurnFormat(prefix="<|system|>\n", suffix="<|end|>", separator="\n"),
    user=TurnFormat(prefix="<|user|>\n", suffix="<|end|>", separator="\n"),
    assistant=TurnFormat(prefix="<|assistant|>\n", suffix="<|end|>", separator="\n"),
)

BUILTIN_TEMPLATES: dict[str, ChatTemplate] = {t.name: t for t in (LLAMA2, CHATML, VICUNA, OPENCHAT, TULU, PHI3)}


def chat_template_for(name: ChatTemplateName, *, tokenizer_config: Path | None = None) -> ChatTemplate:
    """The template ShardsConfig.template names; "tokenizer" reads `tokenizer_config`."""
    if name != "tokenizer":
        return BUILTIN_TEMPLATES[name]
    if tokenizer_config is None:
        raise UnsupportedChatTemplateError(
            "template 'tokenizer' needs the tokenizer's tokenizer_config.json (the built-in tokenizer has none)"
        )
    return template_from_tokenizer_config(tokenizer_config)


# --- rendering -----------------------------------------------------------------------------------


def is_supervised(turn: Turn) -> bool:
    """Whether the templates train on `turn`: an answer whose weight is None or above 0."""
    return turn.role == "assistant" and (turn.weight is None or turn.weight > 0)


def template_pieces(template: ChatTemplate, turns: Sequence[Turn]) -> list[TemplatePiece]:
    """The pieces of `turns` rendered with `template`, empty strings left out.

    A system turn may only come first; with "first_user_turn" placement a user turn must follow
    it. Turn order is otherwise not checked (the shape stage does that).
    """
    pieces: list[TemplatePiece] = []

    def add(text: str, kind: PieceKind, role: Role | None, index: int | None, supervised: bool = False) -> None:
        if text:
            pieces.append(TemplatePiece(text, kind, role, index, supervised))

    def add_turn(fmt: TurnFormat, turn_role: Role, content: str, index: int | None, supervised: bool) -> None:
        add(fmt.prefix, "prefix", turn_role, index)
        add(content, "content", turn_role, index, supervised)
        add(fmt.suffix, "suffix", turn_role, index, supervised)
        add(fmt.separator, "separator", turn_role, index)

    system_index = 0 if turns and turns[0].role == "system" else None
    if any(t.role == "system" for t in turns[1:]):
        raise ValueError("a system turn may only be the first turn")
    system_text = turns[0].content if system_index is not None else template.default_system
    formats = {"system": template.system, "user": template.user, "assistant": template.assistant}

    add(template.bos, "bos", None, None)
    start = 0 if system_index is None else 1
    if system_text is not None and template.system_placement == "own_turn":
        add_turn(template.system, "system", system_text, system_index, False)
    for index in range(start, len(turns)):
        turn = turns[index]
        fmt = formats[turn.role]
        if index == start and system_text is not None and template.system_placement == "first_user_turn":
            if turn.role != "user":
                raise ValueError(
                    f"template {template.name!r} puts the system prompt in the first user turn: none follows"
                )
            add(fmt.prefix, "prefix", "user", index)
            add_turn(template.system, "system", system_text, system_index, False)
            add(turn.content, "content", "user", index)
            add(fmt.suffix, "suffix", "user", index)
            add(fmt.separator, "separator", "user", index)
            continue
        add_turn(fmt, turn.role, turn.content, index, is_supervised(turn))
    return pieces


def render_chat(template: ChatTemplate, turns: Sequence[Turn]) -> str:
    """The conversation as the template's text."""
    return "".join(piece.text for piece in template_pieces(template, turns))


# --- a tokenizer's jinja chat_template -------------------------------------------------------------


class UnsupportedChatTemplateError(ConfigError):
    """The jinja template cannot be expressed as per-role strings; the message says why."""


def _sentinel(i: int) -> str:
    # Letters and digits only: nothing a template would escape, trim or split.
    return f"CHATSIFTPROBE{i}X"


def _raise_exception(message: str) -> None:
    # Templates call raise_exception() on conversations they refuse (transformers provides it).
    raise TemplateError(message)


def _token_text(value: Any) -> str:
    # tokenizer_config.json spells a token as a string or as {"content": ...}.
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return "" if value is None else str(value)


class _JinjaRenderer:
    """A sandboxed jinja chat_template, rendered the way transformers renders it."""

    def __init__(self, source: str, config: dict[str, Any]) -> None:
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.globals["raise_exception"] = _raise_exception
        env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)
        self._template = env.from_string(source)
        self._tokens = {
            key: _token_text(config.get(key)) for key in ("bos_token", "eos_token", "unk_token", "pad_token")
        }
        self.bos_token = self._tokens["bos_token"]

    def render(self, messages: Sequence[tuple[str, str]]) -> str:
        return self._template.render(
            messages=[{"role": role, "content": content} for role, content in messages],
            add_generation_prompt=False,
            **self._tokens,
        )


def _split_on_sentinels(text: str, count: int) -> list[str]:
    """`text` cut at sentinels 0..count-1, which must each appear once, in order."""
    parts, rest = [], text
    for i in range(count):
        before, found, after = rest.partition(_sentinel(i))
        if not found or _sentinel(i) in after:
            raise UnsupportedChatTemplateError(f"the template does not write message {i}'s content once, verbatim")
        parts.append(before)
        rest = after
    return [*parts, rest]


def _derive_template(jinja: _JinjaRenderer, name: str) -> ChatTemplate:
    s = _split_on_sentinels(
        jinja.render(
            [("user", _sentinel(0)), ("assistant", _sentinel(1)), ("user", _sentinel(2)), ("assistant", _sentinel(3))]
        ),
        4,
    )
    if s[1] != s[3]:
        raise UnsupportedChatTemplateError("the text between a user turn and its answer differs from round to round")
    if not s[2].startswith(s[4]):
        raise UnsupportedChatTemplateError("an answer ends differently mid-conversation and at its end")
    user_prefix = s[2][len(s[4]) :]
    if not s[0].endswith(user_prefix):
        raise UnsupportedChatTemplateError("the first user turn opens differently from later ones")
    bos = s[0][: len(s[0]) - len(user_prefix)]
    # Where a conversation ending in a user turn ends is where the user's suffix ends; both
    # halves are untrained, so a template that refuses such a conversation loses nothing.
    try:
        after_user = _split_on_sentinels(jinja.render([("user", _sentinel(0))]), 1)[1]
    except TemplateError:
        after_user = ""
    user_suffix = commonprefix([after_user, s[1]])
    end_of_turn = s[4].rstrip()
    assistant = TurnFormat(prefix=s[1][len(user_suffix) :], suffix=end_of_turn, separator=s[4][len(end_of_turn) :])
    user = TurnFormat(prefix=user_prefix, suffix=user_suffix)
    without_system = jinja.render([("user", _sentinel(0)), ("assistant", _sentinel(1))])
    try:
        with_system = jinja.render([("system", _sentinel(2)), ("user", _sentinel(0)), ("assistant", _sentinel(1))])
    except TemplateError:
        with_system = without_system
    if _sentinel(2) not in with_system:
        if with_system != without_system:
            raise UnsupportedChatTemplateError("a system message changes the text although its content is left out")
        return ChatTemplate(name, bos, TurnFormat(), user, assistant, system_placement="omitted")
    base = ChatTemplate(name, bos, TurnFormat(), user, assistant)
    return _with_system_turn(base, with_system, without_system, jinja.bos_token)


def _with_system_turn(base: ChatTemplate, with_system: str, without_system: str, bos_token: str) -> ChatTemplate:
    # Cut "<before> SYSTEM <between> U0 <rest>" and compare with the render without a system turn.
    before, rest = with_system.split(_sentinel(2), 1)
    between, after_user = rest.split(_sentinel(0), 1)
    if after_user != without_system.split(_sentinel(0), 1)[1]:
        raise UnsupportedChatTemplateError("a system message changes the text of the turns after it")
    opening = base.bos + base.user.prefix
    if before.startswith(opening):
        system = TurnFormat(prefix=before[len(opening) :], suffix=between)
        return ChatTemplate(base.name, base.bos, system, base.user, base.assistant, "first_user_turn")
    if not between.endswith(base.user.prefix):
        raise UnsupportedChatTemplateError("no user turn header follows the system message")
    system_suffix = between[: len(between) - len(base.user.prefix)]
    # A template that writes a default system prompt when none is given has it inside what the
    # first probe took for BOS. The real BOS is then a common start of both renders: the
    # config's bos_token when they start with it, else nothing.
    bos = commonprefix([base.bos, before])
    if bos != base.bos:
        bos = bos_token if bos_token and bos.startswith(bos_token) else ""
    system_prefix = before[len(bos) :]
    default_block = base.bos[len(bos) :]
    default_system = None
    if default_block:
        inner_end = len(default_block) - len(system_suffix)
        framed = default_block.startswith(system_prefix) and default_block.endswith(system_suffix)
        if not framed or inner_end < len(system_prefix):
            raise UnsupportedChatTemplateError("the text before the first turn is neither BOS nor a system prompt")
        default_system = default_block[len(system_prefix) : inner_end]
    system = TurnFormat(prefix=system_prefix, suffix=system_suffix)
    return ChatTemplate(base.name, bos, system, base.user, base.assistant, "own_turn", default_system)


# Contents that catch templates which strip, trim or otherwise touch the text.
_CHECK_CONTENTS = (" leading space", "trailing newline\n", "\n\nblank lines\n\n", "tab\tand  spaces ", "plain")


def _check_matches_jinja(template: ChatTemplate, jinja: _JinjaRenderer) -> None:
    roles: tuple[Role, Role] = ("user", "assistant")
    rounds: list[tuple[Role, str]] = [(roles[i % 2], c) for i, c in enumerate(_CHECK_CONTENTS * 2)]
    for messages in (rounds, [("system", "You are\n terse. "), *rounds]):
        turns = [Turn(role=role, content=content, source_role=role) for role, content in messages]
        try:
            expected = jinja.render(messages)
        except TemplateError:
            if template.system_placement == "omitted" and messages[0][0] == "system":
                continue  # the template refuses system messages; ours leaves them out
            raise
        if render_chat(template, turns) != expected:
            raise UnsupportedChatTemplateError(
                "the template does not write each message as fixed strings around its unchanged content "
                "(does it strip the content, or treat some turns specially?)"
            )


def _literal(text: str | None) -> str:
    # A JSON string is a jinja string literal with the same value (jinja reads its escapes).
    return "none" if text is None else json.dumps(text, ensure_ascii=False)


def jinja_chat_template(template: ChatTemplate) -> str:
    """A jinja `chat_template` (as tokenizer_config.json holds it) that renders every conversation
    to the text render_chat gives, with `add_generation_prompt` writing the assistant's header.
    Checked against render_chat on the probe conversations before it is returned."""
    s, u, a = template.system, template.user, template.assistant
    system_block = f"{{{{- {_literal(s.prefix)} + system_text + {_literal(s.suffix + s.separator)} -}}}}"
    if template.system_placement == "first_user_turn":
        user_block = (
            f"{{{{- {_literal(u.prefix)} -}}}}{{%- if loop.first and system_text is not none -%}}{system_block}"
            f"{{%- endif -%}}{{{{- message['content'] + {_literal(u.suffix + u.separator)} -}}}}"
        )
    else:
        user_block = f"{{{{- {_literal(u.prefix)} + message['content'] + {_literal(u.suffix + u.separator)} -}}}}"
    source = (
        f"{{{{- {_literal(template.bos)} -}}}}"
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{%- set system_text = messages[0]['content'] -%}{%- set loop_messages = messages[1:] -%}"
        f"{{%- else -%}}{{%- set system_text = {_literal(template.default_system)} -%}}"
        "{%- set loop_messages = messages -%}{%- endif -%}"
        + (
            f"{{%- if system_text is not none -%}}{system_block}{{%- endif -%}}"
            if template.system_placement == "own_turn"
            else ""
        )
        + "{%- for message in loop_messages -%}"
        f"{{%- if message['role'] == 'user' -%}}{user_block}"
        f"{{%- elif message['role'] == 'assistant' -%}}"
        f"{{{{- {_literal(a.prefix)} + message['content'] + {_literal(a.suffix + a.separator)} -}}}}"
        "{%- endif -%}{%- endfor -%}"
        f"{{%- if add_generation_prompt -%}}{{{{- {_literal(a.prefix)} -}}}}{{%- endif -%}}"
    )
    _check_matches_jinja(template, _JinjaRenderer(source, {}))
    return source


def template_from_tokenizer_config(path: Path) -> ChatTemplate:
    """The ChatTemplate of the jinja `chat_template` in a tokenizer_config.json (a file, or the
    folder holding it; a chat_template.jinja beside it is used when the JSON has none)."""
    config_path = path / "tokenizer_config.json" if path.is_dir() else path
    config: dict[str, Any] = json.loads(config_path.read_text(encoding="utf-8"))
    source = config.get("chat_template")
    if isinstance(source, list):  # named templates: [{"name": "default", "template": ...}, ...]
        source = next((t.get("template") for t in source if t.get("name") == "default"), None)
    jinja_file = config_path.parent / "chat_template.jinja"
    if not source and jinja_file.is_file():
        source = jinja_file.read_text(encoding="utf-8")
    if not isinstance(source, str) or not source:
        raise UnsupportedChatTemplateError(f"{config_path} has no chat_template")
    jinja = _JinjaRenderer(source, config)
    try:
        template = _derive_template(jinja, "tokenizer")
        _check_matches_jinja(template, jinja)
    except TemplateError as e:
        raise UnsupportedChatTemplateError(f"rendering the chat_template of {config_path} failed: {e}") from e
    return template
