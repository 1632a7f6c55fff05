"""curation.clean.markdown: ChatGPT's captured HTML → markdown, capture noise, and the markdown stage.

The HTML here is hand-written in ChatGPT's early-2023 markup (docs/sharegpt.md). Each of
the FastChat/OpenChat converter's failures listed there has a regression test.
"""

from __future__ import annotations

import html as html_lib
import re
from typing import Any

import pytest

from curation.clean.markdown import (
    chatgpt_markdown_parser,
    convert_assistant_html,
    html_to_markdown,
    is_chatgpt_html,
    is_truncated_html,
    strip_assistant_capture_noise,
    strip_user_capture_noise,
)
from schemas.config import MarkdownConfig
from schemas.ledger import DROP_REASONS
from tests.helpers.conversations import conversation

WRAPPER = '<div class="markdown prose w-full break-words dark:prose-invert light">{}</div>'
HEADER = (
    '<div class="flex items-center relative text-gray-200 bg-gray-800 px-4 py-2 text-xs font-sans'
    ' justify-between rounded-t-md"><span>{lang}</span><button class="flex ml-auto gap-2">'
    '<svg stroke="currentColor" fill="none" stroke-width="2" viewBox="0 0 24 24" class="h-4 w-4"'
    ' height="1em" width="1em" xmlns="http://www.w3.org/2000/svg"><rect x="4" y="4" width="16"'
    ' height="18" rx="2"></rect></svg>Copy code</button></div>'
)


def chatgpt(*blocks: str) -> str:
    """An assistant turn as ChatGPT's DOM: the blocks inside the `markdown prose` div, no whitespace."""
    return WRAPPER.format("".join(blocks))


def code_block(lang: str, body_html: str, *, header: bool = True, css_lang: str | None = None) -> str:
    """ChatGPT's code block: header (language + Copy button) and a highlight.js-classed <code>."""
    css_lang = lang if css_lang is None else css_lang
    code_class = f"!whitespace-pre hljs language-{css_lang}" if css_lang else "!whitespace-pre hljs"
    return (
        '<pre><div class="bg-black rounded-md mb-4">'
        + (HEADER.format(lang=lang) if header else "")
        + f'<div class="p-4 overflow-y-auto"><code class="{code_class}">{body_html}</code></div></div></pre>'
    )


def render(md: str) -> str:
    return chatgpt_markdown_parser().render(md)


def code_blocks(md: str) -> list[tuple[str, str]]:
    """(language, body) of each code block as markdown-it reads `md`."""
    return [
        ((token.info.split() or [""])[0], token.content)
        for token in chatgpt_markdown_parser().parse(md)
        if token.type in ("fence", "code_block")
    ]


def block_types(md: str) -> list[str]:
    """The top-level block sequence markdown-it reads from `md`."""
    return [t.type for t in chatgpt_markdown_parser().parse(md) if t.level == 0 and t.nesting >= 0]


# --- prose --------------------------------------------------------------------------------------


def test_snake_case_and_lone_stars_get_no_escapes() -> None:
    # FastChat regression: markdownify wrote `my\_var` and `2 \* 3` everywhere in prose.
    html = chatgpt("<p>Set my_var_name in config_file.py, then compute 2 * 3 and a*b.</p>")
    assert html_to_markdown(html) == "Set my_var_name in config_file.py, then compute 2 * 3 and a*b."


def test_delimiters_that_would_pair_are_escaped_and_render_as_text() -> None:
    html = chatgpt("<p>Python calls __init__ first; *this* is literal, and so is _that_.</p>")
    md = html_to_markdown(html)
    assert "\\_\\_init\\_\\_" in md
    # The markdown must render back to the same literal text, with no <em>/<strong>.
    assert render(md) == "<p>Python calls __init__ first; *this* is literal, and so is _that_.</p>\n"


def test_emphasis_strong_code_and_links() -> None:
    html = chatgpt(
        "<p>Use <strong>bold</strong>, <em>italic</em>, <code>x_y = 1</code>, "
        '<code>a`b</code> and <a href="https://example.com/a_(b)">the docs</a>.</p>'
    )
    md = html_to_markdown(html)
    assert md == ("Use **bold**, *italic*, `x_y = 1`, ``a`b`` and [the docs](https://example.com/a_\\(b\\)).")
    assert render(md) == (
        "<p>Use <strong>bold</strong>, <em>italic</em>, <code>x_y = 1</code>, <code>a`b</code> and "
        '<a href="https://example.com/a_(b)">the docs</a>.</p>\n'
    )


def test_headings_are_atx() -> None:
    # FastChat regression: h1/h2 came out as setext ("Title\n=====").
    html = chatgpt("<h1>Title</h1><h2>Part 2</h2><h3>Step #3</h3><p>Text</p>")
    assert html_to_markdown(html) == "# Title\n\n## Part 2\n\n### Step #3\n\nText"


def test_text_that_would_start_a_block_is_escaped() -> None:
    html = chatgpt("<p>1. not a list\n# not a heading\n- not a bullet\n&gt; not a quote</p>")
    md = html_to_markdown(html)
    assert md == "1\\. not a list\n\\# not a heading\n\\- not a bullet\n\\> not a quote"
    assert render(md).startswith("<p>1. not a list\n# not a heading\n")


def test_html_in_prose_stays_literal_text() -> None:
    # ChatGPT showed raw HTML as text; the dialect has raw HTML off, so no escapes are needed.
    html = chatgpt('<p>Wrap it in &lt;div class="box"&gt; and use &amp;amp; for &amp;.</p>')
    md = html_to_markdown(html)
    assert md == 'Wrap it in <div class="box"> and use \\&amp; for &.'
    assert render(md) == "<p>Wrap it in &lt;div class=&quot;box&quot;&gt; and use &amp;amp; for &amp;.</p>\n"


def test_line_break_and_blockquote() -> None:
    html = chatgpt("<blockquote><p>first line<br>second line</p><p>more</p></blockquote>")
    md = html_to_markdown(html)
    assert md == "> first line\\\n> second line\n>\n> more"
    assert "<br />" in render(md)


# --- lists and tables ---------------------------------------------------------------------------


def test_nested_lists_keep_start_numbers_and_tightness() -> None:
    html = chatgpt(
        '<ol start="3"><li>Third<ul><li>a</li><li>b</li></ul></li><li>Fourth</li></ol>'
        "<ul><li><p>loose one</p></li><li><p>loose two</p><p>second paragraph</p></li></ul>"
    )
    md = html_to_markdown(html)
    assert md == ("3. Third\n   - a\n   - b\n4. Fourth\n\n- loose one\n\n- loose two\n\n  second paragraph")
    rendered = render(md)
    assert '<ol start="3">' in rendered
    assert "<li>\n<p>loose two</p>\n<p>second paragraph</p>\n</li>" in rendered


def test_adjacent_lists_stay_separate() -> None:
    html = chatgpt("<ul><li>a</li></ul><ul><li>b</li></ul><ol><li>c</li></ol><ol><li>d</li></ol>")
    md = html_to_markdown(html)
    assert render(md).count("<ul>") == 2 and render(md).count("<ol>") == 2


def test_table_with_alignment_and_pipes() -> None:
    html = chatgpt(
        '<table><thead><tr><th>Name</th><th style="text-align:right">Cost</th></tr></thead>'
        "<tbody><tr><td>a | b</td><td><code>x||y</code></td></tr><tr><td>c</td><td>2</td></tr></tbody></table>"
    )
    md = html_to_markdown(html)
    assert md == "| Name | Cost |\n| --- | ---: |\n| a \\| b | `x\\|\\|y` |\n| c | 2 |"
    rendered = render(md)
    assert "<td>a | b</td>" in rendered and "<code>x||y</code>" in rendered
    assert '<th style="text-align:right">Cost</th>' in rendered


def test_blank_lines_between_list_fence_and_table() -> None:
    # FastChat regression: blank lines were lost, so list, fence and table ran together.
    html = chatgpt(
        "<p>Steps:</p><ol><li>Install</li><li>Run</li></ol>",
        code_block("bash", "pip install x"),
        "<table><thead><tr><th>k</th></tr></thead><tbody><tr><td>v</td></tr></tbody></table>",
        "<p>Done.</p>",
    )
    md = html_to_markdown(html)
    assert "\n\n```bash\npip install x\n```\n\n| k |" in md
    assert block_types(md) == [
        "paragraph_open",
        "ordered_list_open",
        "fence",
        "table_open",
        "paragraph_open",
    ]


# --- code blocks --------------------------------------------------------------------------------


def test_code_block_language_and_exact_indented_body() -> None:
    body = 'def f(x_1, *args):\n    if x_1 > 0:\n\treturn "a*b_c" & <tag>\n\n    return None\n'
    highlighted = '<span class="hljs-keyword">def</span> <span class="hljs-title function_">f</span>' + html_lib.escape(
        body[len("def f") :], quote=False
    )
    md = html_to_markdown(chatgpt("<p>Code:</p>", code_block("python", highlighted)))
    # FastChat regression: code lost its indentation and gained escapes.
    assert code_blocks(md) == [("python", body)]
    assert "Copy code" not in md


def test_language_from_header_when_class_is_missing() -> None:
    md = html_to_markdown(chatgpt(code_block("rust", "fn main() {}\n", css_lang="")))
    assert code_blocks(md) == [("rust", "fn main() {}\n")]


def test_code_block_without_header_does_not_merge_with_the_next() -> None:
    # FastChat regression: its fence regex keyed on "Copy code" and spanned two blocks.
    html = chatgpt(
        '<pre><code class="language-js">let a = 1;\n</code></pre>',
        "<p>and then</p>",
        code_block("python", "b = 2\n"),
    )
    md = html_to_markdown(html)
    assert code_blocks(md) == [("js", "let a = 1;\n"), ("python", "b = 2\n")]
    assert block_types(md) == ["fence", "paragraph_open", "fence"]


def test_fence_is_longer_than_backtick_runs_in_the_body() -> None:
    body = "Use ```python fences\nand ```` four\n"
    md = html_to_markdown(chatgpt(code_block("markdown", html_lib.escape(body, quote=False))))
    assert md.startswith("`````markdown\n")
    assert code_blocks(md) == [("markdown", body)]


def test_code_block_inside_a_list_item_keeps_its_body() -> None:
    html = chatgpt("<ol><li><p>Run:</p>" + code_block("bash", "ls -la\n\n  echo hi\n") + "</li></ol>")
    md = html_to_markdown(html)
    assert code_blocks(md) == [("bash", "ls -la\n\n  echo hi\n")]


def test_code_body_characters_are_kept_as_captured() -> None:
    body = "a\r\nb\tc\x0cd\u2028e\n"
    md = html_to_markdown(chatgpt(code_block("text", body)))
    assert md == "```text\n" + body + "```"


def test_internal_noncharacters_in_the_input_do_not_leak() -> None:
    # The converter's stand-ins are noncharacters; one in the input must not turn into markup.
    md = html_to_markdown(chatgpt("<p>a\ufdd1b\ufdd1c</p>"))
    assert md == "a\ufffdb\ufffdc"


def test_code_block_without_language() -> None:
    md = html_to_markdown(chatgpt(code_block("", "plain text\n")))
    assert md == "```\nplain text\n```"


# --- capture noise ------------------------------------------------------------------------------


def test_regeneration_counter_and_widget_around_the_html_are_dropped() -> None:
    html = "2 / 2" + chatgpt("<p>Answer.</p>") + "Copy1 chars / 1 words"
    assert html_to_markdown(html) == "Answer."


def test_counter_before_bare_block_tags_is_dropped_but_prose_fractions_stay() -> None:
    assert html_to_markdown("3 / 3<p>Yes.</p>") == "Yes."
    assert html_to_markdown("<p>1 / 2 cup flour</p><p>30 / 216 = 5 / 36</p>") == (
        "1 / 2 cup flour\n\n30 / 216 = 5 / 36"
    )


@pytest.mark.parametrize(
    ("captured", "expected"),
    [
        ("2 / 2Write a poem", "Write a poem"),
        ("1 / 3이 문장을 번역해줘", "이 문장을 번역해줘"),
        # FastChat regression: a prompt starting with a fraction lost it.
        ("1 / 2 cup flour, how many grams?", "1 / 2 cup flour, how many grams?"),
        ("3 / 2Impossible counter", "3 / 2Impossible counter"),
        ("2 / 21. Write a poem", "2 / 21. Write a poem"),  # ambiguous: left alone
        ("2 / 23 is prime", "2 / 23 is prime"),
        ("Translate thisCopy7 chars / 2 words", "Translate this"),
        ("Please answer지금 번역하기CopyCopy HTMLRead Aloud⏹️ Stop7 chars | 2 words", "Please answer"),
        ("Copy the 3 chars / 1 words later", "Copy the 3 chars / 1 words later"),
    ],
)
def test_user_capture_noise_rule(captured: str, expected: str) -> None:
    assert strip_user_capture_noise(captured) == expected


def test_user_html_and_indented_code_survive_byte_for_byte() -> None:
    # FastChat regression: human turns went through the HTML converter.
    typed = '<div class="x">hi</div>\n\n    def f(a_b):\n        return a_b * 2\n\n1 / 2 cup'
    assert strip_user_capture_noise(typed) == typed


def test_assistant_markdown_noise() -> None:
    assert strip_assistant_capture_noise("2 / 2Sure, here it is.") == "Sure, here it is."
    assert strip_assistant_capture_noise("1 / 2 = 0.5") == "1 / 2 = 0.5"


# --- detection ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (chatgpt("<p>x</p>"), True),
        ("<p>Hello</p><ol><li>a</li></ol>", True),
        ("  <ol><li>a</li></ol>", True),
        ("2 / 2<pre><code>x</code></pre>", True),
        ("<h2>Title</h2>", True),
        ('<table class="t"><tr><td>1</td></tr></table>', True),
        ("Use <br> to break a line.", False),
        ("<?php echo 1; ?>", False),
        ('<meta name="description" content="x">', False),
        ("<QuestsScreen>:\nMDBoxLayout:", False),
        ("Here is HTML:\n\n```html\n<div>x</div>\n```", False),
        ("<pending> task", False),
    ],
)
def test_is_chatgpt_html(value: str, expected: bool) -> None:
    assert is_chatgpt_html(value) is expected


@pytest.mark.shared_data
def test_no_real_markdown_answer_is_taken_for_html(sharegpt_sample: list[dict[str, Any]]) -> None:
    answers = [t["value"] for c in sharegpt_sample for t in c["conversations"] if t["from"] == "gpt"]
    with_tags = [a for a in answers if re.search(r"</?[A-Za-z][A-Za-z0-9]*[\s/>]", a)]
    assert len(with_tags) > 100  # the sample's answers do contain stray HTML
    false_positives = [a[:80] for a in answers if is_chatgpt_html(a)]
    assert false_positives == []


@pytest.mark.parametrize(
    ("html", "truncated"),
    [
        (chatgpt("<p>done</p>"), False),
        (chatgpt("<p>a<br>b<br/>c</p><hr><p><img src=x></p>"), False),
        (chatgpt("<p>cut in the midd")[: -len("</div>")], True),
        (chatgpt("<p>a</p>" + code_block("py", '<span class="hljs-keyword">def</span> f')[:-40]), True),
        ('<div class="markdown prose"><p>a</p><p cla', True),
        ("<p>a</p><ul><li>b</li>", True),
        ("<p>a</p><!-- cut", True),
        ("<p>a</p>", False),
    ],
)
def test_is_truncated_html(html: str, truncated: bool) -> None:
    assert is_truncated_html(html) is truncated


# --- the stage ----------------------------------------------------------------------------------


def test_stage_converts_strips_drops_and_counts() -> None:
    user_html = "<p>keep <b>this</b></p>\n    indented()"
    good = conversation(
        ("system", "2 / 2You are helpful."),
        ("user", "2 / 2" + user_html),
        ("assistant", "1 / 1" + chatgpt("<p>Use my_var.</p>")),
        ("user", "thanks"),
        ("assistant", "You're welcome! 1 / 2 is a half."),
        id="good",
    )
    cut = conversation(
        ("user", "hi"),
        ("assistant", chatgpt("<p>fine</p>")),
        ("user", "more"),
        ("assistant", chatgpt("<p>cut off")[:-6]),
        id="cut",
        byte_offset=700,
        record_index=7,
    )
    result = convert_assistant_html([good, cut], config=MarkdownConfig())

    assert [c.id for c in result.kept] == ["good"]
    turns = result.kept[0].turns
    assert turns[0].content == "2 / 2You are helpful."  # system turns are left alone
    assert turns[1].content == user_html  # counter gone, the rest byte for byte
    assert turns[2].content == "Use my_var."
    assert turns[4].content == "You're welcome! 1 / 2 is a half."
    assert result.changed == {"html_turns_converted": 1, "capture_noise_removed": 1}

    (drop,) = result.dropped
    assert drop.reason == "truncated_html" and drop.reason in DROP_REASONS
    assert (drop.conversation_id, drop.stage, drop.detail) == ("cut", "markdown", "turn=3")
    assert (drop.input_file, drop.byte_offset, drop.record_index) == ("in.json", 700, 7)
    assert len(result.kept) + len(result.dropped) == 2


def test_stage_formats() -> None:
    html_answer = chatgpt("<p>Hi <em>there</em></p>")
    md_answer = "Already *markdown*"
    conv = conversation(("user", "q"), ("assistant", html_answer), ("user", "q2"), ("assistant", md_answer), id="c")

    auto = convert_assistant_html([conv], config=MarkdownConfig(assistant_format="auto")).kept[0]
    assert [t.content for t in auto.turns[1::2]] == ["Hi *there*", md_answer]

    as_markdown = convert_assistant_html([conv], config=MarkdownConfig(assistant_format="markdown")).kept[0]
    assert as_markdown == conv  # nothing to strip, nothing converted

    as_html = convert_assistant_html([conv], config=MarkdownConfig(assistant_format="html"))
    assert as_html.changed["html_turns_converted"] == 2
    # "html" takes every answer for HTML: markdown's stars are then literal text and get escaped.
    assert as_html.kept[0].turns[3].content == "Already \\*markdown\\*"
    assert as_html.kept[0].turns[3].source_role == "gpt"


def test_stage_leaves_clean_conversations_untouched() -> None:
    conv = conversation(("user", "q"), ("assistant", "a"), id="c")
    result = convert_assistant_html([conv], config=MarkdownConfig())
    assert result.kept[0] is conv
    assert result.changed == {"html_turns_converted": 0, "capture_noise_removed": 0}


def test_only_the_outer_markdown_divs_are_converted_in_document_order() -> None:
    html = (
        "<nav>Regenerate response</nav>"
        + WRAPPER.format("<p>First.</p>" + WRAPPER.format("<p>Nested.</p>"))
        + "<footer>ChatGPT may produce inaccurate information</footer>"
        + '<div class="markdown">'
        + "<p>Second.</p></div>"
    )
    assert html_to_markdown(html) == "First.\n\nNested.\n\nSecond."


def test_emphasis_of_one_turn_does_not_leak_into_the_next() -> None:
    # One converter serves a thread's turns; what it keeps of a tree is cleared for the next.
    first = html_to_markdown(WRAPPER.format("<p>a<em>b</em>c and <em>d</em></p>"))
    assert html_to_markdown(WRAPPER.format("<p><em>x</em> y</p>")) == "*x* y"
    assert html_to_markdown(WRAPPER.format("<p>a<em>b</em>c and <em>d</em></p>")) == first
