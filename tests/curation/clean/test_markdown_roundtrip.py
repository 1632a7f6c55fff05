"""Round trip on the real sample: markdown → ChatGPT's DOM → html_to_markdown → markdown again.

Real ShareGPT HTML is no longer public, so every real answer of the sample (markdown) is rendered
into ChatGPT's DOM by demo.chatgpt_html and converted back. Both markdowns are then rendered
with the dialect's parser and compared exactly: no normalization at all is applied, because none
turned out to be needed (the two renders are byte-identical for every answer of the sample).
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from bs4 import BeautifulSoup
from markdown_it import MarkdownIt
from markdown_it.common.utils import unescapeAll

from curation.clean.markdown import chatgpt_markdown_parser, html_to_markdown
from demo.chatgpt_html import CHATGPT_WRAPPER_OPEN, markdown_to_chatgpt_html

# Of the real answers, this share must render identically after the round trip.
MIN_EQUAL_RATE = 0.98
# Of the `_` and `*` shown as text in the converted answers, at most this share may be escaped.
MAX_ESCAPED_SHARE = 0.02


def rendered_and_code(parser: MarkdownIt, md: str) -> tuple[str, list[tuple[str, str]]]:
    """`md` rendered to HTML, and (language, body) of each of its code blocks, from one parse."""
    tokens = parser.parse(md)
    code = []
    for token in tokens:
        if token.type in ("fence", "code_block"):
            info = unescapeAll(token.info).strip()
            code.append((info.split(maxsplit=1)[0] if info else "", token.content))
    return parser.renderer.render(tokens, parser.options, {}), code


def emphasis_chars_and_escapes(parser: MarkdownIt, md: str) -> tuple[int, int]:
    """How many literal `_`/`*` the prose of `md` shows, and how many of them were backslash-escaped."""
    shown = escaped = 0
    for token in parser.parse(md):  # a parser without text_join, which would merge escapes into text
        for child in token.children or []:
            if child.type in ("text", "text_special"):
                shown += child.content.count("_") + child.content.count("*")
            if child.type == "text_special" and child.markup in ("\\_", "\\*"):
                escaped += 1
    return shown, escaped


# --- the generator's contract -------------------------------------------------------------------


def test_generated_dom_has_chatgpt_markup_and_exact_code_text() -> None:
    md = 'Intro with `x`.\n\n```python\ndef f(a):\n\treturn "s\\n" + a  # <b>&\n```\n\n- one\n- two\n'
    html = markdown_to_chatgpt_html(md)
    assert html.startswith(CHATGPT_WRAPPER_OPEN) and html.endswith("</div>")
    outside_code = re.sub(r"<code\b.*?</code>", "", html, flags=re.DOTALL)
    assert re.search(r">\s+<", outside_code) is None  # React wrote no whitespace between tags
    soup = BeautifulSoup(html, "html.parser")
    code = soup.select_one("pre div.bg-black div.p-4 code")
    assert code is not None
    assert code["class"] == ["!whitespace-pre", "hljs", "language-python"]
    assert [b.get_text() for b in soup.select("pre button")] == ["Copy code"]
    assert soup.select("pre span")[0].get_text() == "python"
    # Highlighted into spans, with the text content byte-exact.
    assert code.select("span.hljs-keyword") and code.select("span.hljs-string")
    assert code.get_text() == 'def f(a):\n\treturn "s\\n" + a  # <b>&\n'
    assert [li.get_text() for li in soup.select("ul > li")] == ["one", "two"]


def test_generated_code_block_without_language() -> None:
    html = markdown_to_chatgpt_html("    indented\n\n```\nplain\n```\n")
    soup = BeautifulSoup(html, "html.parser")
    codes = soup.select("pre code")
    assert [c["class"] for c in codes] == [["!whitespace-pre", "hljs"]] * 2
    assert [c.get_text() for c in codes] == ["indented\n", "plain\n"]
    assert [s.get_text() for s in soup.select("pre span")] == ["", ""]


# --- the real sample ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_answers_round_trip(sharegpt_sample: list[dict[str, Any]]) -> None:
    parser = chatgpt_markdown_parser()
    unjoined = chatgpt_markdown_parser().disable("text_join")
    answers = [t["value"] for c in sharegpt_sample for t in c["conversations"] if t["from"] == "gpt"]
    started = time.perf_counter()
    unequal: list[int] = []
    code_differs: list[tuple[int, list[tuple[str, str]], list[tuple[str, str]]]] = []
    code_blocks = shown = escaped = 0
    for index, md in enumerate(answers):
        back = html_to_markdown(markdown_to_chatgpt_html(md))
        html_before, code_before = rendered_and_code(parser, md)
        html_after, code_after = rendered_and_code(parser, back)
        code_blocks += len(code_before)
        answer_shown, answer_escaped = emphasis_chars_and_escapes(unjoined, back)
        shown, escaped = shown + answer_shown, escaped + answer_escaped
        if html_before != html_after:
            unequal.append(index)
        if code_before != code_after:
            code_differs.append((index, code_before, code_after))
    rate = 1 - len(unequal) / len(answers)
    print(
        f"\nround trip: {len(answers) - len(unequal)}/{len(answers)} answers render identically "
        f"({rate:.4%}); {code_blocks} code blocks, {len(code_differs)} answers with a code difference; "
        f"{escaped} of {shown} literal _ and * in prose escaped; {time.perf_counter() - started:.1f} s"
    )
    assert code_blocks > 1000  # the sample is code-heavy: this check must have something to check
    assert code_differs == [], f"code blocks changed (first 3): {code_differs[:3]}"
    # FastChat's converter escaped every one of them; only those that could pair need it.
    assert shown > 1000 and escaped / shown < MAX_ESCAPED_SHARE
    assert rate >= MIN_EQUAL_RATE, f"first unequal answers: {[answers[i][:200] for i in unequal[:3]]}"
