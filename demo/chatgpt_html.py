"""Produce ShareGPT input in the real markup: assistant turns as ChatGPT's DOM, pages as Next.js.

Real ShareGPT HTML is no longer public, so tests, benchmarks and the demo build it from markdown
with this module, following the markup the ShareGPT extension captured (docs/sharegpt.md).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

from markdown_it.common.utils import unescapeAll
from markdown_it.renderer import RendererProtocol
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from pygments.lexers import get_lexer_by_name
from pygments.token import Token as PygmentsToken
from pygments.token import _TokenType
from pygments.util import ClassNotFound

from curation.clean.markdown import chatgpt_markdown_parser


def sharegpt_page_html(
    *,
    page_id: str,
    items: Sequence[dict[str, str]],
    title: str = "",
    model: str | None = None,
    views: int = 0,
) -> str:
    """A saved ShareGPT page: Next.js HTML whose __NEXT_DATA__ script holds props.pageProps.

    `items` are {"from": "human"|"gpt", "value": ...}: human values plain text, gpt values HTML.
    """
    content: dict[str, Any] = {"title": title, "avatarUrl": "", "items": list(items)}
    if model is not None:
        content["model"] = model
    next_data = {
        "props": {"pageProps": {"id": page_id, "views": views, "content": content, "comments": []}},
        "page": "/c/[id]",
        "query": {"id": page_id},
        "buildId": "chatsift-fixture",
        "isFallback": False,
        "gssp": True,
        "scriptLoader": [],
    }
    # Next.js escapes "<" in the JSON so that "</script>" inside a message cannot end the script.
    payload = json.dumps(next_data, ensure_ascii=False).replace("<", "\\u003c")
    return (
        '<!DOCTYPE html><html><head><meta charSet="utf-8"/>'
        f"<title>{html.escape(title or 'ShareGPT conversation')}</title></head>"
        '<body><div id="__next"><main>'
        f"<h1>{html.escape(title)}</h1></main></div>"
        f'<script id="__NEXT_DATA__" type="application/json">{payload}</script>'
        "</body></html>"
    )


# --- Assistant turns: markdown rendered into ChatGPT's early-2023 DOM -------------------------------

CHATGPT_WRAPPER_OPEN = '<div class="markdown prose w-full break-words dark:prose-invert light">'
_CODE_HEADER_OPEN = (
    '<div class="flex items-center relative text-gray-200 bg-gray-800 px-4 py-2 text-xs font-sans'
    ' justify-between rounded-t-md">'
)
# The "Copy code" button with its clipboard icon (drawn here with two rectangles): a converter must
# drop the icon and the button text together.
_COPY_BUTTON = (
    '<button class="flex ml-auto gap-2"><svg stroke="currentColor" fill="none" stroke-width="2"'
    ' viewBox="0 0 24 24" class="h-4 w-4" height="1em" width="1em" xmlns="http://www.w3.org/2000/svg">'
    '<rect x="4" y="4" width="16" height="18" rx="2"></rect><rect x="8" y="2" width="8" height="4" rx="1">'
    "</rect></svg>Copy code</button>"
)

# Pygments token families → highlight.js class names, most specific first. highlight.js nests some
# spans (an escape inside a string); the string family is kept open around its escapes for that.
_HLJS_CLASSES: tuple[tuple[_TokenType, str], ...] = (
    (PygmentsToken.Comment.Preproc, "hljs-meta"),
    (PygmentsToken.Comment, "hljs-comment"),
    (PygmentsToken.Keyword.Constant, "hljs-literal"),
    (PygmentsToken.Keyword.Type, "hljs-type"),
    (PygmentsToken.Keyword, "hljs-keyword"),
    (PygmentsToken.Operator.Word, "hljs-keyword"),
    (PygmentsToken.Operator, "hljs-operator"),
    (PygmentsToken.Name.Builtin.Pseudo, "hljs-variable language_"),
    (PygmentsToken.Name.Builtin, "hljs-built_in"),
    (PygmentsToken.Name.Function, "hljs-title function_"),
    (PygmentsToken.Name.Class, "hljs-title class_"),
    (PygmentsToken.Name.Decorator, "hljs-meta"),
    (PygmentsToken.Name.Tag, "hljs-name"),
    (PygmentsToken.Name.Attribute, "hljs-attr"),
    (PygmentsToken.Name.Variable, "hljs-variable"),
    (PygmentsToken.Name.Exception, "hljs-title class_"),
    (PygmentsToken.Literal.String.Escape, "hljs-subst"),
    (PygmentsToken.Literal.String.Interpol, "hljs-subst"),
    (PygmentsToken.Literal.String, "hljs-string"),
    (PygmentsToken.Literal.Number, "hljs-number"),
    (PygmentsToken.Literal, "hljs-literal"),
    (PygmentsToken.Generic.Deleted, "hljs-deletion"),
    (PygmentsToken.Generic.Inserted, "hljs-addition"),
    (PygmentsToken.Generic.Heading, "hljs-section"),
    (PygmentsToken.Generic.Subheading, "hljs-section"),
)


def _hljs_class(token_type: _TokenType) -> str | None:
    for family, css_class in _HLJS_CLASSES:
        if token_type in family:
            return css_class
    return None


def highlighted_code_html(code: str, language: str) -> str:
    """`code` HTML-escaped and split into highlight.js-style spans; its text content is exactly `code`.

    Languages Pygments does not know (mermaid, "", ...) come back escaped but unhighlighted, as
    highlight.js left them.
    """
    try:
        lexer = get_lexer_by_name(language) if language else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return html.escape(code, quote=False)
    # get_tokens_unprocessed skips Pygments' input preprocessing (newline and tab rewriting,
    # stripping), so the token values are slices of `code` itself.
    class_of: dict[_TokenType, str | None] = {}  # token types repeat; the family walk is the slow part
    pieces = []
    for _, token_type, value in lexer.get_tokens_unprocessed(code):
        if token_type not in class_of:
            class_of[token_type] = _hljs_class(token_type)
        pieces.append((class_of[token_type], value))
    if "".join(value for _, value in pieces) != code:
        return html.escape(code, quote=False)
    parts: list[str] = []
    open_classes: list[str] = []  # the spans currently open, outermost first (at most a string + escape)
    for css_class, value in pieces:
        nested_in_string = css_class == "hljs-subst" and open_classes[:1] == ["hljs-string"]
        wanted = (["hljs-string", css_class] if nested_in_string else [css_class]) if css_class else []
        # Close the spans that do not continue, open the new ones: runs of one class share a span.
        keep = 0
        while keep < min(len(open_classes), len(wanted)) and open_classes[keep] == wanted[keep]:
            keep += 1
        parts.append("</span>" * (len(open_classes) - keep))
        parts.extend(f'<span class="{name}">' for name in wanted[keep:])
        open_classes = wanted
        parts.append(html.escape(value, quote=False))
    parts.append("</span>" * len(open_classes))
    return "".join(parts)


def chatgpt_code_block_html(code: str, language: str) -> str:
    """One code block as ChatGPT drew it: header with the language and Copy button, then the body.

    A block without a language gets an empty header label and no `language-*` class; ChatGPT showed
    highlight.js's guess there, which a converter cannot tell from a real fence language.
    """
    code_class = f"!whitespace-pre hljs language-{language}" if language else "!whitespace-pre hljs"
    return (
        '<pre><div class="bg-black rounded-md mb-4">'
        f"{_CODE_HEADER_OPEN}<span>{html.escape(language, quote=False)}</span>{_COPY_BUTTON}</div>"
        f'<div class="p-4 overflow-y-auto"><code class="{html.escape(code_class)}">'
        f"{highlighted_code_html(code, language)}</code></div></div></pre>"
    )


def _render_fence(
    renderer: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    info = unescapeAll(token.info).strip()
    language = info.split(maxsplit=1)[0] if info else ""
    return chatgpt_code_block_html(token.content, language)


def _render_code_block(
    renderer: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return chatgpt_code_block_html(tokens[idx].content, "")


def _render_hardbreak(
    renderer: RendererProtocol, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return "<br>"  # React wrote no newline after it, unlike markdown-it's "<br />\n"


def markdown_to_chatgpt_html(md: str) -> str:
    """An assistant turn's markdown rendered into the DOM ShareGPT captured from ChatGPT (early 2023).

    Block structure is markdown-it's (CommonMark + GFM tables, raw HTML shown as text, as ChatGPT's
    renderer did), inside the `markdown prose` div; code blocks carry ChatGPT's header and
    highlight.js spans. React wrote no whitespace between tags, so neither does this.
    """
    parser = chatgpt_markdown_parser()
    parser.add_render_rule("fence", _render_fence)
    parser.add_render_rule("code_block", _render_code_block)
    parser.add_render_rule("hardbreak", _render_hardbreak)
    tokens = parser.parse(md)
    for token in tokens:
        # markdown-it puts a newline after each block tag only for tokens marked as blocks.
        token.block = False
    return CHATGPT_WRAPPER_OPEN + parser.renderer.render(tokens, parser.options, {}) + "</div>"


def as_captured(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """ShareGPT {from, value} messages as the extension captured them: gpt values rendered into
    ChatGPT's HTML, every other value kept as the text it is."""
    return [
        {**m, "value": markdown_to_chatgpt_html(m["value"]) if m["from"] == "gpt" else m["value"]} for m in messages
    ]
