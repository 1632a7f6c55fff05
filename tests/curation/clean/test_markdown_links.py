"""Links and images whose URL would run script lose the URL and keep their text."""

from __future__ import annotations

import pytest

from curation.clean.markdown import chatgpt_markdown_parser, html_to_markdown

WRAPPER = '<div class="markdown prose w-full break-words dark:prose-invert light">{}</div>'


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        " JaVaScRiPt:alert(1)",
        "java&#x09;script:alert(1)",
        "java&#x0A;script:alert(1)",
        "&#x01; javascript:alert(1)",
        "&#106;avascript:alert(1)",
        "vbscript:msgbox(1)",
        "VBScript:msgbox(1)",
        "data:text/html,<script>alert(1)</script>",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        " DATA:image/svg+xml,<svg onload=alert(1)>",
    ],
)
def test_script_links_keep_their_text_only(href: str) -> None:
    md = html_to_markdown(WRAPPER.format(f'<p>Click <a href="{href}">here <strong>now</strong></a>.</p>'))
    assert md == "Click here **now**."


@pytest.mark.parametrize("src", ["javascript:alert(1)", " jAvAsCrIpT:x", "data:image/svg+xml,<svg onload=alert(1)>"])
def test_script_images_keep_their_alt_text_only(src: str) -> None:
    md = html_to_markdown(WRAPPER.format(f'<p>See <img src="{src}" alt="a *chart*">.</p>'))
    assert md == "See a \\*chart\\*."  # alt text is literal text: it renders as "a *chart*"
    assert chatgpt_markdown_parser().render(md) == "<p>See a *chart*.</p>\n"


@pytest.mark.parametrize(
    ("html", "md"),
    [
        ('<a href="https://example.com/javascript:x">docs</a>', "[docs](https://example.com/javascript:x)"),
        ('<a href="javascript-guide.html">guide</a>', "[guide](javascript-guide.html)"),
        ('<a href="#data:x">anchor</a>', "[anchor](#data:x)"),
        ('<img src="data:image/png;base64,iVBORw0KGgo=" alt="dot">', "![dot](data:image/png;base64,iVBORw0KGgo=)"),
    ],
)
def test_ordinary_links_and_raster_data_images_stay(html: str, md: str) -> None:
    assert html_to_markdown(WRAPPER.format(f"<p>{html}</p>")) == md
    assert "<a href" in chatgpt_markdown_parser().render(md) or "<img" in chatgpt_markdown_parser().render(md)
