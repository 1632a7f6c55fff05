"""Assistant turns from ChatGPT's HTML to markdown that renders the same; capture noise; the stage.

The markdown dialect is ChatGPT's: CommonMark + GFM tables, raw HTML shown as text (its renderer
never interpreted HTML). So `<div>` in prose needs no escape, and a backslash is written only where
a character would otherwise start markup: `snake_case` stays as it is, `__init__` does not.
Human turns are plain text and never pass through the HTML converter.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Literal

from bs4 import BeautifulSoup, NavigableString, Tag
from markdown_it import MarkdownIt
from markdownify import MarkdownConverter

from curation.clean.html_tree import HtmlScan, LexedHtml, html_soup, lex_html, scan_html
from curation.clean.markdown_escape import (
    ATX_CLOSING_HASHES,
    LINE_BREAK,
    MARK_LITERALS,
    NO_FINAL_NEWLINE,
    OUR_NONCHARACTERS,
    STAND_INS,
    THEMATIC_BREAK,
    paragraph_markdown,
    resolve_literals,
)
from schemas.config import MarkdownConfig
from schemas.conversation import Conversation, Turn
from schemas.ledger import Dropped, DropReason, StageResult


def chatgpt_markdown_parser() -> MarkdownIt:
    """A new markdown-it parser for ChatGPT's dialect: CommonMark + GFM tables, raw HTML as text."""
    return MarkdownIt("commonmark", {"html": False}).enable("table")


# --- capture noise -------------------------------------------------------------------------------

# The regeneration counter as the extension captured it: "k / n" glued to the text ("2 / 2Sure").
# Not before a digit or ".,)/": in "2 / 21. Write" the split is ambiguous, so nothing is cut.
_GLUED_COUNTER = re.compile(r"(\d{1,3}) / (\d{1,3})(?=[^\s\d.,)/])")
# The counter at the end, where ChatGPT shows it under an edited prompt: glued to the text
# ("the group.4 / 4", "PLANNER2 / 2"), but not to a digit, an operator or a decimal point, where it
# would be arithmetic ("x+1 / 2", "3.1 / 2"); or after whitespace ("isn't it? 2 / 2", "...\n\n2 / 2"),
# where "n / n" only is taken, since "What is 3 / 4" is a question.
_TRAILING_COUNTER = re.compile(r"(?:(?<=[^\s\d+\-*/=^(×÷<>%])(?<!\d[.,])|(?P<space>\s+))(\d{1,3}) / (\d{1,3})\s*\Z")
# Extension widgets at the end of a captured turn: "Copy1 chars / 1 words", and
# "지금 번역하기CopyCopy HTMLRead Aloud⏹️ Stop7 chars | 2 words" in the real sample; the count alone
# where the Copy button was a <button> (glued to the text, or on its own line, never "has 3 chars
# / 1 words"); the Korean "translate now" link alone (64 real user turns end with it).
_WIDGET_TAIL = re.compile(
    r"(?:(?:지금 번역하기)?(?:Copy)+(?: HTML)?(?:Read Aloud)?(?:⏹️ Stop)?|(?<=[^\s\d])|\n\s*)"
    r"\d+ chars [/|] \d+ words\s*\Z|\s*지금 번역하기\s*\Z"
)
_WIDGET_TAIL_MAX_CHARS = 120
# A counter in front of the first tag of a captured HTML value ("2 / 2<div class=...").
_HTML_LEADING_COUNTER = re.compile(r"\A\s*\d{1,3} / \d{1,3}\s*(?=<)")
# A converted block that is nothing but a widget, or a counter: chrome, not part of the answer.
_WIDGET = r"(?:지금 번역하기)?(?:Copy)*(?: HTML)?(?:Read Aloud)?(?:⏹️ Stop)?\d+ chars [/|] \d+ words"
_WIDGET_BLOCK = re.compile(rf"\A{_WIDGET}\Z")
_NOISE_BLOCK = re.compile(rf"\A(?:(?P<k>\d{{1,3}}) / (?P<n>\d{{1,3}})|{_WIDGET})\Z")


def _is_counter(k: str, n: str) -> bool:
    return 1 <= int(k) <= int(n)


def strip_user_capture_noise(text: str) -> str:
    """`text` less a regeneration counter glued to its start, and a counter and widgets at its end.

    Narrow on purpose, since everything else a user typed (HTML, indented code, "1 / 2 cup flour")
    must survive byte for byte: at the start, "k / n" (k <= n) is removed only when text follows it
    with no space between, as the extension captured it (and not before a digit or ".,)/", where the
    split would be a guess); at the end, see _TRAILING_COUNTER and _WIDGET_TAIL.
    "1 / 2cup" would lose its "1 / 2": no such prompt is in the sample.
    """
    counter = _GLUED_COUNTER.match(text)
    if counter and _is_counter(counter[1], counter[2]):
        text = text[counter.end() :]
    # Both are short and anchored at the end: search only the tail, not the whole turn. The
    # widget goes first: in "text2 / 2Copy7 chars / 2 words" the counter is before it.
    tail_start = max(0, len(text) - _WIDGET_TAIL_MAX_CHARS)
    widget = _WIDGET_TAIL.search(text, tail_start)
    text = text[: widget.start()] if widget else text
    counter = _TRAILING_COUNTER.search(text, max(0, len(text) - _WIDGET_TAIL_MAX_CHARS))
    if counter and _is_counter(counter[2], counter[3]) and (not counter["space"] or counter[2] == counter[3]):
        text = text[: counter.start()]
    return text


def strip_assistant_capture_noise(md: str) -> str:
    """An assistant markdown value less the counter and widgets at its ends (the user rule, same reasons)."""
    return strip_user_capture_noise(md)


def _strip_noise_blocks(blocks: list[str]) -> list[str]:
    """Converted blocks less the counters and widgets that open the turn as blocks of their own,
    and widget blocks anywhere.

    A converted turn is then cleaned as text (strip_user_capture_noise), which takes what is glued
    to either end, and a last block "n / n". A first block "k / n" before the answer is always the
    counter; the last block only when k = n, so a math answer may still end on "1 / 2".
    """
    start = 0
    while start < len(blocks) - 1 and (noise := _NOISE_BLOCK.match(blocks[start])):
        if noise["k"] is not None and not _is_counter(noise["k"], noise["n"]):
            break
        start += 1
    # A widget block between two blocks of the answer is chrome too ("12 chars / 3 words" alone is
    # no prose); a lone "k / n" there is kept, as it may be a line of arithmetic.
    return [block for block in blocks[start:] if not _WIDGET_BLOCK.match(block)] or blocks[-1:]


# --- detection -----------------------------------------------------------------------------------

_MARKDOWN_DIV = re.compile(r"<div\b[^>]*\bclass=\"[^\"]*\bmarkdown prose\b")
_LEADING_BLOCK_TAG = re.compile(
    r"\s*(?:\d{1,3} / \d{1,3}\s*)?<(?:p|ol|ul|pre|h[1-6]|table|blockquote|div)(?=[\s>])", re.IGNORECASE
)


def is_chatgpt_html(text: str) -> bool:
    """Whether an assistant value is ChatGPT's captured HTML rather than markdown.

    True for ChatGPT's `markdown prose` div, or when the value's first tag (after an optional
    regeneration counter) opens a block element. Markdown that merely contains HTML begins with
    text: none of the 11,278 real markdown answers in the sample is matched.
    """
    return bool(_MARKDOWN_DIV.search(text) or _LEADING_BLOCK_TAG.match(text))


def is_truncated_html(html: str) -> bool:
    """Whether captured HTML ends inside an open element or a half-written tag (the capture was cut off)."""
    return scan_html(html).truncated


# --- HTML to markdown ----------------------------------------------------------------------------

_BLOCK_TAGS = frozenset("p pre ol ul table blockquote hr h1 h2 h3 h4 h5 h6".split())
_TRANSPARENT_TAGS = frozenset("div section article main body html".split())
_WIDGET_TAGS = frozenset("button svg script style head".split())
_BACKTICK_RUN = re.compile(r"`+")
_CODE_ELEMENT = re.compile(r"(<code\b[^>]*>)(.*?)(</code>)", re.DOTALL)
_HIGHLIGHT_SPAN = re.compile(r'<span class="[^"<>]*">|</span>')


def _fenced_code(body: str, language: str) -> str:
    """A fenced code block holding exactly `body`; the fence is longer than any run of its character."""
    char = "~" if "`" in language else "`"  # a backtick fence's info string may not hold a backtick
    longest = max((len(run) for run in re.findall(re.escape(char) + "+", body)), default=0)
    fence = char * max(3, longest + 1)
    # Info strings take backslash escapes and entities; a "|" would let the opening line head a
    # table when the next line looks like a delimiter row, so it is written as a reference.
    info = re.sub(r"([\\&])", r"\\\1", language).replace("|", "&#124;")
    if info.startswith(char):
        info = " " + info  # else it would lengthen the fence
    closing = "" if not body or body.endswith("\n") else NO_FINAL_NEWLINE + "\n"
    return f"{fence}{info}\n{body}{closing}{fence}"


def _code_language(pre: Tag, code: Tag | None) -> str:
    classes = code.get("class") if code is not None else None
    for css_class in classes if isinstance(classes, list) else []:
        if css_class.startswith("language-"):
            return str(css_class[len("language-") :])
    # No class: the label in ChatGPT's header, the span beside the Copy button, if there is one.
    button = _first_descendant(pre, "button")
    label = button.previous_sibling if button is not None else None
    while label is not None and not (isinstance(label, Tag) and label.name == "span"):
        label = label.previous_sibling
    return label.get_text().strip() if isinstance(label, Tag) else ""


# bs4's find and find_all build a filter a call: walked by hand, the converter's lookups cost a
# fifth of what they did (they were a fifth of the conversion).


def _first_descendant(tag: Tag, name: str) -> Tag | None:
    """`tag.find(name)`: the first element named `name` below `tag`, in document order."""
    return next((node for node in tag.descendants if isinstance(node, Tag) and node.name == name), None)


def _child_elements(tag: Tag, names: tuple[str, ...]) -> list[Tag]:
    """`tag.find_all(names, recursive=False)`: the children of `tag` named one of `names`."""
    return [child for child in tag.children if isinstance(child, Tag) and child.name in names]


def _table_rows(table: Tag) -> list[Tag]:
    """The rows whose nearest table is `table` (not a nested table's), in document order."""
    rows: list[Tag] = []
    stack = list(reversed(table.contents))
    while stack:
        node = stack.pop()
        if not isinstance(node, Tag) or node.name == "table":
            continue
        if node.name == "tr":
            rows.append(node)
        stack.extend(reversed(node.contents))
    return rows


# Schemes that run or carry a document: javascript: and vbscript: run script, and a data: URL can
# hold HTML or SVG with script. Images may keep a data: raster (markdown-it allows those too).
_SCRIPT_SCHEME = re.compile(r"(?:javascript|vbscript|data):", re.IGNORECASE)
_RASTER_DATA_IMAGE = re.compile(r"data:image/(?:png|gif|jpeg|webp)[;,]", re.IGNORECASE)
_URL_IGNORED = re.compile(r"[\t\n\r]")
_URL_LEADING = "".join(chr(code) for code in range(0x21))  # C0 controls and space


def _is_script_url(url: str, *, image: bool = False) -> bool:
    """Whether a browser would read `url` as a script or document scheme.

    Entities are decoded by the parser already ("java&#x09;script:"); like a browser (WHATWG URL),
    tabs and newlines anywhere and controls and spaces in front are ignored, and case is.
    """
    url = _URL_IGNORED.sub("", url).lstrip(_URL_LEADING)
    return bool(_SCRIPT_SCHEME.match(url)) and not (image and _RASTER_DATA_IMAGE.match(url))


def _link_destination(href: str) -> str:
    if not href or re.search(r"[\s<>]", href):
        return "<" + re.sub(r"([<>\\])", r"\\\1", href) + ">"
    href = re.sub(r"([()\\])", r"\\\1", href)
    return re.sub(r"&(?=(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});)", r"\\&", href)


_EMPHASIS_TAGS = ("em", "i", "strong", "b")


def _is_strong(el: Tag) -> bool:
    return el.name in ("strong", "b")


def _touching_edges(child: Tag, parent: Tag) -> str:
    """At which of `parent`'s edges `child` sits, delimiters touching: "both", "first", "last" or ""."""
    first = parent.contents[0] is child
    last = parent.contents[-1] is child
    return "both" if first and last else "first" if first else "last" if last else ""


def _emphasis_char(el: Tag, known: dict[int, str]) -> str:
    """`*`, or `_` where delimiters touching another emphasis's would read differently.

    Touching delimiters form one run, so nesting is spelled the way markdown-it reads it back:
    "***x***" is <em><strong> and "****x****" <strong><strong>, but <strong><em> whole is
    "**_x_**", <em><em> "*_x_*", and a same-kind child at one edge needs the parent in
    underscores ("_*x*y_"). Emphasis right after the same kind alternates ("*a*_b_").
    Underscores do not work inside words, so these are kept to where they are needed.
    `known` holds the characters chosen so far (by id), so a long run of siblings is walked
    back one step, not to its start (that recursed once per sibling).
    """
    run: list[Tag] = []  # el, then each same-kind emphasis right before, until one is decided
    current = el
    while (char := known.get(id(current)) or _nested_emphasis_char(current)) is None:
        run.append(current)
        previous = current.previous_sibling
        if (
            not isinstance(previous, Tag)
            or previous.name not in _EMPHASIS_TAGS
            or _is_strong(previous) != _is_strong(el)
        ):
            break
        current = previous
    for member in reversed(run):  # the first of the run is "*" unless decided; the rest alternate
        char = "*" if char is None else "_" if char == "*" else "*"
        known[id(member)] = char
    assert char is not None  # the loop above gave every member of the run a character
    return char


def _nested_emphasis_char(el: Tag) -> str | None:
    """The delimiter character that `el`'s nesting with other emphasis decides, or None."""
    parent = el.parent
    if isinstance(parent, Tag) and parent.name in _EMPHASIS_TAGS and parent.contents:
        edges = _touching_edges(el, parent)
        if edges == "both" and (_is_strong(parent) or not _is_strong(el)):
            return "*" if _is_strong(el) and _is_strong(parent) else "_"
        if edges:
            return "*"
    for child in (el.contents[:1] + el.contents[-1:]) if el.contents else []:
        if isinstance(child, Tag) and child.name in _EMPHASIS_TAGS and _is_strong(child) == _is_strong(el):
            if _touching_edges(child, el) in ("first", "last"):
                return "_"
    return None


def _emphasis(text: str, delimiter: str) -> str:
    # Spaces at the edges go outside the delimiters, which may not touch whitespace on the inside.
    inner = text.strip(" ")
    if not inner:
        return text
    before = " " if text[0] == " " else ""
    after = " " if text[-1] == " " else ""
    return f"{before}{delimiter}{inner}{delimiter}{after}"


def _title_part(title: object) -> str:
    return ' "' + re.sub(r'(["\\])', r"\\\1", str(title)) + '"' if title else ""


def _indent(text: str, first: str, rest: str) -> str:
    """`text` with `first` before its first line and `rest` before each later non-empty line."""
    lines = text.split("\n")
    return "\n".join([first + lines[0]] + [rest + line if line else line for line in lines[1:]])


class _ChatGPTMarkdownConverter(MarkdownConverter):
    """markdownify's inline conversions; block structure, text escaping and code blocks are ours."""

    def __init__(self) -> None:
        super().__init__()
        self._emphasis_chars: dict[int, str] = {}  # by id(): valid while the tree converted lives

    def forget_tree(self) -> None:
        """Clear what was kept of the last tree converted."""
        self._emphasis_chars.clear()

    def blocks(self, node: Tag) -> list[str]:
        """The markdown of each block in `node`, in order; a run of inline content is a paragraph."""
        out: list[str] = []
        inline: list[str] = []
        for child in node.children:
            if isinstance(child, Tag) and child.name in _BLOCK_TAGS:
                self._flush(inline, out)
                block = self.block(child, previous=out[-1] if out else "")
                if block:
                    out.append(block)
            elif isinstance(child, Tag) and child.name in _TRANSPARENT_TAGS:
                self._flush(inline, out)
                out.extend(self.blocks(child))
            elif isinstance(child, Tag) and child.name not in _WIDGET_TAGS:
                inline.append(self.convert_soup(child))  # markdownify's own walk, our hooks
            elif type(child) is NavigableString:  # not a comment, doctype or CDATA
                inline.append(self.process_text(child))
        self._flush(inline, out)
        return out

    @staticmethod
    def _flush(inline: list[str], out: list[str]) -> None:
        text = paragraph_markdown("".join(inline)) if inline else ""
        if text:
            out.append(text)
        inline.clear()

    def block(self, tag: Tag, *, previous: str) -> str:
        name = tag.name
        if name == "p":
            return paragraph_markdown(self.inline(tag))
        if name == "pre":
            code = _first_descendant(tag, "code")
            return _fenced_code(code.get_text() if code else self._pre_text(tag), _code_language(tag, code))
        if name in ("ul", "ol"):
            return self.list_block(tag, previous=previous)
        if name == "blockquote":
            body = "\n\n".join(self.blocks(tag))
            return "\n".join("> " + line if line else ">" for line in body.split("\n"))
        if name == "table":
            return self.table(tag)
        if name == "hr":
            return "***"  # not "---", which under a paragraph line would make it a heading
        return self.heading(tag)

    @staticmethod
    def _pre_text(pre: Tag) -> str:
        # A <pre> without <code>: its text, less ChatGPT's header if it has one.
        button = _first_descendant(pre, "button")
        if button is not None and isinstance(button.parent, Tag):
            button.parent.extract()
        return pre.get_text()

    def inline(self, tag: Tag) -> str:
        """The marked inline markdown of `tag`'s children (literals still stand-ins)."""
        return "".join(
            self.convert_soup(child) if isinstance(child, Tag) else self.process_text(child)
            for child in tag.children
            if isinstance(child, Tag | NavigableString)
        )

    def heading(self, tag: Tag) -> str:
        level = int(tag.name[1])
        marked = self.inline(tag).strip(" \t\n" + LINE_BREAK)
        if level <= 2 and ("\n" in marked or LINE_BREAK in marked):
            # Only a setext heading holds a line break (markdown-it makes one from "a\nb\n===").
            return paragraph_markdown(marked) + "\n" + ("=" if level == 1 else "-") * 3
        text = resolve_literals(re.sub(r"[ \t]*[\n" + LINE_BREAK + r"][ \t]*", " ", marked))
        text = ATX_CLOSING_HASHES.sub(lambda m: m[1] + "\\" + m[2], text)  # else read as closing hashes
        return "#" * level + (" " + text if text else "")

    def list_block(self, tag: Tag, *, previous: str) -> str:
        items = _child_elements(tag, ("li",))
        # markdown-it shows paragraphs in list items only when the list is loose.
        loose = any(isinstance(child, Tag) and child.name == "p" for li in items for child in li.children)
        separator = "\n\n" if loose else "\n"
        # Two lists in a row merge unless the marker changes, which is how markdown-it split them.
        if tag.name == "ol":
            start = str(tag.get("start", "1"))
            first = int(start) if start.isdigit() else 1
            after_dot = re.match(r"[0-9]{1,9}\.(?:\s|$)", previous)
            markers = [f"{n}{')' if after_dot else '.'}" for n in range(first, first + len(items))]
        else:
            markers = []
        bodies = [separator.join(self.blocks(li)) for li in items]
        if not markers:
            # Any bullet but the previous list's, and none that would turn an item whose first
            # line is itself bullets ("- - -", nested empty items) into a thematic break.
            previous_bullet = re.match(r"([-*+])(?:\s|$)", previous)
            bullet = next(
                b
                for b in "-*+"
                if not (previous_bullet and previous_bullet[1] == b)
                and not any(THEMATIC_BREAK.match(f"{b} {body}") for body in bodies)
            )
            markers = [bullet] * len(items)
        rendered = [
            _indent(body, marker + " ", " " * (len(marker) + 1)) if body else marker
            for marker, body in zip(markers, bodies, strict=True)
        ]
        return separator.join(rendered)

    def table(self, tag: Tag) -> str:
        rows = _table_rows(tag)
        lines = []
        for index, tr in enumerate(rows):
            cells = _child_elements(tr, ("th", "td"))
            lines.append("| " + " | ".join(self.cell(cell) for cell in cells) + " |")
            if index == 0:
                lines.append("| " + " | ".join(self.alignment(cell) for cell in cells) + " |")
        return "\n".join(lines)

    def cell(self, tag: Tag) -> str:
        # One line per row, and the table splits on every unescaped "|", inside code spans too.
        text = resolve_literals(self.inline(tag).replace(LINE_BREAK, " "))
        return re.sub(r"[ \t]*\n[ \t]*", " ", text).strip(" \t").replace("|", "\\|")

    @staticmethod
    def alignment(tag: Tag) -> str:
        align = re.search(r"text-align:\s*(left|center|right)", str(tag.get("style", "")))
        return {"left": ":---", "center": ":---:", "right": "---:"}.get(align[1] if align else "", "---")

    # --- markdownify's hooks ---

    def process_text(self, el: NavigableString, parent_tags: set[str] | None = None) -> str:
        if type(el) is not NavigableString:
            return ""  # comments, doctypes, processing instructions
        if parent_tags and "_noformat" in parent_tags:
            return str(el)  # code text is verbatim
        return str(el).translate(MARK_LITERALS)

    def convert_br(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        return LINE_BREAK

    def convert_code(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        if "_noformat" in parent_tags:
            return text
        # The parser turns a line end inside a code span into a space; writing the space keeps
        # the span on one line, out of reach of the paragraph's line-start escapes.
        content = el.get_text().replace("\n", " ")
        if not content:
            return ""
        delimiter = "`" * (1 + max((len(run) for run in _BACKTICK_RUN.findall(content)), default=0))
        # The parser strips one space from each end when both ends have one, and a backtick at an
        # end would merge into the delimiter: pad in those cases.
        pad = content[0] == "`" or content[-1] == "`" or (content[0] == content[-1] == " " and content.strip(" "))
        return f"{delimiter} {content} {delimiter}" if pad else f"{delimiter}{content}{delimiter}"

    def convert_em(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        return _emphasis(text, _emphasis_char(el, self._emphasis_chars))

    def convert_strong(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        return _emphasis(text, _emphasis_char(el, self._emphasis_chars) * 2)

    convert_i = convert_em
    convert_b = convert_strong

    def convert_a(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        href = el.get("href")
        if href is None or _is_script_url(str(href)):
            return text  # the text stays; a script link would run when the markdown is rendered
        # Brackets in link text must be balanced or escaped: escape them.
        text = text.replace(STAND_INS["["], "\\[").replace(STAND_INS["]"], "\\]")
        return f"[{text}]({_link_destination(str(href))}{_title_part(el.get('title'))})"

    def convert_img(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        if _is_script_url(str(el.get("src", "")), image=True):
            return str(el.get("alt", "")).translate(MARK_LITERALS)
        alt = re.sub(r"([\\*_`\[\]<&!])", r"\\\1", str(el.get("alt", "")))
        return f"![{alt}]({_link_destination(str(el.get('src', '')))}{_title_part(el.get('title'))})"


def html_to_markdown(html: str) -> str:
    """One assistant turn of ChatGPT HTML as markdown that renders to the same content.

    Code blocks keep their language and exact text. Dropped: the Copy-code header, a regeneration
    counter before the first tag, an extension widget at the end, and anything outside ChatGPT's
    `markdown` div when the turn has one. Unicode noncharacters U+FDD0-U+FDDA, which the
    converter uses internally and no text uses, become U+FFFD. The tree is built and walked
    recursively: the stage bounds a turn's depth and size first (lex_html).
    """
    prepared = _prepared_html(html)
    return _markdown_from_prepared(prepared, lex_html(prepared))


def _prepared_html(html: str) -> str:
    """The HTML the tree is built from: no leading counter, no highlight spans, no stand-in characters."""
    html = _HTML_LEADING_COUNTER.sub("", html, count=1).translate(OUR_NONCHARACTERS)
    # Highlight spans carry no text, and code text holds no raw "<": dropping the spans before
    # parsing keeps every code body and halves the tree BeautifulSoup has to build.
    return _CODE_ELEMENT.sub(lambda m: m[1] + _HIGHLIGHT_SPAN.sub("", m[2]) + m[3], html)


def _outer_markdown_divs(soup: BeautifulSoup) -> list[Tag]:
    """ChatGPT's `markdown` divs that sit in no other one, in document order. One walk that stops at
    each: a find_all, then a find_parent per div, cost a sixth of the conversion in bs4's filters."""
    found: list[Tag] = []
    stack = list(reversed(soup.contents))
    while stack:
        node = stack.pop()
        if not isinstance(node, Tag):
            continue
        if node.name == "div" and "markdown" in node.get_attribute_list("class"):
            found.append(node)
        else:
            stack.extend(reversed(node.contents))
    return found


# One converter a thread: markdownify's __init__ cost a twentieth of a short turn's conversion.
_CONVERTERS = threading.local()


def _converter() -> _ChatGPTMarkdownConverter:
    converter: _ChatGPTMarkdownConverter | None = getattr(_CONVERTERS, "converter", None)
    if converter is None:
        converter = _CONVERTERS.converter = _ChatGPTMarkdownConverter()
    return converter


def _markdown_from_prepared(html: str, lexed: LexedHtml) -> str:
    # html.parser's tree (lxml was no faster on the sample's 26 MB of generated HTML, and loses
    # "\r" and NUL from code bodies), read in the scan's one pass where the HTML allows.
    soup = html_soup(html, lexed)
    roots = _outer_markdown_divs(soup) or [soup]
    converter = _converter()
    converter.forget_tree()  # the last tree's ids may be reused by this one
    blocks = _strip_noise_blocks([block for root in roots for block in converter.blocks(root)])
    md = strip_assistant_capture_noise("\n\n".join(blocks)).rstrip()
    # A last code body without a final newline stays exact only in a fence left open.
    md = re.sub(NO_FINAL_NEWLINE + r"\n[ >]*(?:`{3,}|~{3,})\Z", "", md)
    return md.replace(NO_FINAL_NEWLINE, "")


# --- the stage -----------------------------------------------------------------------------------


def convert_assistant_html(convs: Iterable[Conversation], *, config: MarkdownConfig) -> StageResult:
    """Assistant HTML turns as markdown, capture noise removed; a conversation with HTML that is cut
    off, nested deeper than config.max_html_depth or holding more than config.max_html_elements is dropped.

    Which assistant turns are HTML follows `config.assistant_format`: "auto" asks is_chatgpt_html,
    "html" converts every one, "markdown" none. User turns get only strip_user_capture_noise, and
    system turns are left alone. A drop's detail names the 0-based index of the refused turn.
    """
    kept: list[Conversation] = []
    dropped: list[Dropped] = []
    changed: Counter[str] = Counter({"html_turns_converted": 0, "capture_noise_removed": 0})
    for conv in convs:
        turns: list[Turn] = []
        changes: Counter[str] = Counter()
        refused: tuple[int, DropReason, str] | None = None  # turn index, reason, why
        for index, turn in enumerate(conv.turns):
            content = turn.content
            if turn.role == "assistant" and _is_html(content, config.assistant_format):
                prepared = _prepared_html(content)
                lexed = lex_html(prepared, max_elements=config.max_html_elements)
                refusal = _refused_html(lexed.scan, config)
                if refusal is not None:
                    refused = (index, *refusal)
                    break
                content = _markdown_from_prepared(prepared, lexed)
                changes["html_turns_converted"] += 1
            elif turn.role == "assistant":
                content = strip_assistant_capture_noise(content)
                changes["capture_noise_removed"] += content != turn.content
            elif turn.role == "user":
                content = strip_user_capture_noise(content)
                changes["capture_noise_removed"] += content != turn.content
            turns.append(turn if content == turn.content else turn.model_copy(update={"content": content}))
        if refused is not None:
            index, reason, why = refused
            detail = f"turn={index} {why}" if why else f"turn={index}"
            dropped.append(Dropped.of(conv, stage="markdown", reason=reason, detail=detail))
            continue
        changed.update(changes)
        modified = any(new is not old for new, old in zip(turns, conv.turns, strict=True))
        kept.append(conv.model_copy(update={"turns": tuple(turns)}) if modified else conv)
    return StageResult(kept=kept, dropped=dropped, changed=dict(changed))


def _refused_html(scan: HtmlScan, config: MarkdownConfig) -> tuple[DropReason, str] | None:
    """Why a turn's HTML is not converted (a reason and the figures behind it), or None to convert it.

    The element bound keeps the tree's memory in check (~1 KB an element); the depth bound keeps
    the recursive conversion clear of Python's recursion limit.
    """
    if scan.elements > config.max_html_elements:
        return "html_too_large", f"elements>{config.max_html_elements} (max_html_elements={config.max_html_elements})"
    if scan.truncated:
        return "truncated_html", ""
    if scan.depth > config.max_html_depth:
        return "html_too_deep", f"depth={scan.depth} (max_html_depth={config.max_html_depth})"
    return None


def _is_html(content: str, assistant_format: Literal["auto", "html", "markdown"]) -> bool:
    return is_chatgpt_html(content) if assistant_format == "auto" else assistant_format == "html"
