"""The one-pass reading of ChatGPT HTML builds html.parser's tree and scan, or steps aside for html.parser.

The reference is bs4's own html.parser builder and HTMLParser's scan (scan_html): every case,
real or generated, compares the two whole trees (decoded) and the two scans.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from bs4 import BeautifulSoup

from curation.clean.html_tree import html_soup, lex_html, scan_html
from curation.clean.markdown import _prepared_html, html_to_markdown
from demo.chatgpt_html import as_captured


def assert_same_as_html_parser(html: str) -> bool:
    """Asserts the tree and scan equal html.parser's; returns whether the one pass read `html` itself."""
    lexed = lex_html(html)
    reference = BeautifulSoup(html, "html.parser")

    assert html_soup(html, lexed).decode() == reference.decode(), html
    assert lexed.scan == scan_html(html), html
    return lexed.events is not None


# Serialized DOM: read in one pass, the same tree as html.parser's.
READ_IN_ONE_PASS = [
    '<div class="markdown prose w-full"><p>Hello <strong>world</strong></p></div>',
    "<p>a &amp; b &lt;c&gt; &quot;d&quot; &#39;e&#x27; f&nbsp;g</p>",
    '<p><a href="https://x.test/?a=1&amp;b=2" title="say &quot;hi&quot;">link</a></p>',
    '<P CLASS="Upper">upper-case names</P>',
    '<p>line<br>break<br/>again<hr></p><img src="x.png" alt="">',
    '<div/><span data-x="1" hidden>bare attribute</span>',
    '<p id="a" id="b">the last of two duplicates</p>',
    "<pre><code>  \n\n  </code></pre><p>   </p>\n\n<p>\t</p>",
    '<pre><code class="language-python">if a &gt; b:\n    print("&lt;tag&gt;")\r\n\x00</code></pre>',
    "<table><tr><td><table><tr><td>nested</td></tr></table></td></tr></table>",
    '<div\n  class="multi line"\n  >tag split over lines</div>',
    "plain text with > and no tags",
    "",
]

# Anything else: html.parser reads it, as before the one pass existed.
LEFT_TO_HTML_PARSER = [
    "<p>a comment <!-- here --></p>",
    "<p><script>if (a < b) {}</script></p>",
    "<style>p > a { }</style><p>x</p>",
    "<p>&copy; &#8212; &#x2014; &amp</p>",
    "<p>a bare & sign</p>",
    "<p>a < b</p>",
    "<p><b><i>out of order</b></i></p>",
    "<p>closed twice</p></p>",
    "<p>a<br></br>b</p>",
    "<p class='single'>quotes</p>",
    "<p class=unquoted>attribute</p>",
    "<!DOCTYPE html><p>doctype</p>",
    "<p>cut off",
    "<p>cut off inside a tag <a hr",
    "<textarea><b>raw</b></textarea>",
]


@pytest.mark.parametrize("html", READ_IN_ONE_PASS)
def test_serialized_dom_is_read_in_one_pass_into_html_parsers_tree(html: str) -> None:
    assert assert_same_as_html_parser(html)


@pytest.mark.parametrize("html", LEFT_TO_HTML_PARSER)
def test_other_html_is_left_to_html_parser(html: str) -> None:
    assert not assert_same_as_html_parser(html)


def test_the_element_bound_stops_the_pass_as_scan_html_does() -> None:
    html = "<p>" + "<b>x</b>" * 50 + "</p>"
    lexed = lex_html(html, max_elements=10)
    assert lexed.events is None
    assert lexed.scan.elements == 11  # it stops at the first element past the bound
    # scan_html stops at the end of a 64 KiB chunk: both are past the bound, which is what the stage reads.
    assert scan_html(html, max_elements=10).elements > 10 and not lexed.scan.truncated


# Fragments a capture is made of, and some that it is not: shuffled, the two readings still agree.
FRAGMENTS = [
    "<p>", "</p>", "<div class=\"markdown\">", "</div>", "<code>", "</code>", "<pre>", "</pre>", "<br>",
    "<em>", "</em>", "<strong>", "</strong>", "<ol start=\"3\">", "</ol>", "<li>", "</li>", "text", " ",
    "\n", "&amp;", "&lt;", "&nbsp;", "&copy;", "&", "<", ">", "'", "\"", "<!-- c -->", "<a href=\"/x?a&amp;b\">",
    "</a>", "<hr/>", "</br>", "<span x>", "</span>", "\r", "\x00", "&#39;", "<img src=x>",
]  # fmt: skip


def test_random_fragments_read_the_same_either_way() -> None:
    generator = random.Random(31)
    read_in_one_pass = 0
    for _ in range(3000):
        html = "".join(generator.choice(FRAGMENTS) for _ in range(generator.randint(0, 14)))
        read_in_one_pass += assert_same_as_html_parser(html)
    assert 100 < read_in_one_pass < 3000  # both paths were taken many times


@pytest.mark.shared_data
def test_real_answers_in_chatgpt_markup_are_read_in_one_pass(sharegpt_sample: list[dict[str, Any]]) -> None:
    """Every assistant turn of 300 real conversations, in ChatGPT's markup: the one pass reads it and
    builds html.parser's tree (the whole sample agreed too: 11,278 turns, when this was written)."""
    answers = [m["value"] for record in sharegpt_sample[:300] for m in as_captured(record["conversations"])]
    html_answers = [_prepared_html(value) for value in answers if value.lstrip().startswith("<")]
    assert len(html_answers) > 1000
    assert all(assert_same_as_html_parser(html) for html in html_answers)


def test_markdown_is_the_same_whichever_path_read_the_html() -> None:
    # A comment sends the turn to html.parser; without it the one pass reads it.
    one_pass = '<div class="markdown prose"><p>a &amp; <em>b</em></p><ul><li>c</li></ul></div>'
    html_parser = one_pass.replace("<ul>", "<!-- x --><ul>")
    assert lex_html(one_pass).events is not None and lex_html(html_parser).events is None
    assert html_to_markdown(one_pass) == html_to_markdown(html_parser) == "a & *b*\n\n- c"
