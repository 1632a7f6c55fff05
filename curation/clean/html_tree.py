"""A turn's ChatGPT HTML as a BeautifulSoup tree, and what bounds a turn before one is built, in one pass.

Captures are DOM outerHTML: every element closed in order, text escaped with a handful of named
references, attributes double-quoted. For HTML of that form one regular-expression pass gives both
the scan the stage bounds a turn by (truncation, depth, element count) and the events that build
BeautifulSoup's tree, the same tree html.parser builds. Anything else (comments, script, other
character references, a stray "<", end tags out of order, a cut-off tag) goes to html.parser: a
scan by HTMLParser, then the tree from bs4's html.parser builder, as before.
"""

from __future__ import annotations

import re
from collections import Counter
from html import unescape
from html.parser import HTMLParser
from typing import Literal, NamedTuple

from bs4 import BeautifulSoup
from bs4.builder._htmlparser import HTMLParserTreeBuilder

VOID_ELEMENTS = frozenset("area base br col embed hr img input link meta param source track wbr".split())


class HtmlScan(NamedTuple):
    """What one pass over a turn's HTML finds, before any tree is built."""

    truncated: bool  # it ends inside an open element or a half-written tag
    depth: int  # the deepest nesting of elements
    elements: int  # the elements it opens (counting stops just past max_elements)


# --- html.parser's pass, for any HTML -----------------------------------------------------------


class _OpenElementTracker(HTMLParser):
    """The stack of elements opened and not yet closed, the deepest it got, and the elements seen."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open_elements: list[str] = []
        self._open_counts: Counter[str] = Counter()  # so an end tag finds its element in O(1)
        self.depth = 0
        self.elements = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements += 1
        if tag not in VOID_ELEMENTS:
            self.open_elements.append(tag)
            self._open_counts[tag] += 1
            self.depth = max(self.depth, len(self.open_elements))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements += 1  # "<x/>" opens nothing, but bs4 still makes an element of it

    def handle_endtag(self, tag: str) -> None:
        if self._open_counts[tag]:  # an end tag for something never opened is ignored
            while (closed := self.open_elements.pop()) != tag:
                self._open_counts[closed] -= 1
            self._open_counts[tag] -= 1


_SCAN_CHUNK_CHARS = 1 << 16


def scan_html(html: str, *, max_elements: int | None = None) -> HtmlScan:
    """Truncation, nesting depth and element count of `html`, in one streaming HTMLParser pass.

    Captures are DOM outerHTML, which closes every element explicitly, so anything left open
    means the value was cut. The pass stops once more than `max_elements` are seen: past that
    the turn is refused anyway, and its truncation is then not looked for.
    """
    tracker = _OpenElementTracker()
    for start in range(0, len(html), _SCAN_CHUNK_CHARS):
        tracker.feed(html[start : start + _SCAN_CHUNK_CHARS])
        if max_elements is not None and tracker.elements > max_elements:
            return HtmlScan(truncated=False, depth=tracker.depth, elements=tracker.elements)
    # HTMLParser holds back an incomplete construct ("<p cla", "<!-- x") until close().
    cut_inside_tag = tracker.rawdata.lstrip().startswith("<")
    tracker.close()
    return HtmlScan(
        truncated=bool(tracker.open_elements) or cut_inside_tag, depth=tracker.depth, elements=tracker.elements
    )


# --- the one pass, for serialized DOM ------------------------------------------------------------

# html.parser reads these as it reads text (script, style) or escapable text (textarea, title
# in later Pythons); bs4 gives them string classes of their own. They go to html.parser.
_RAW_TEXT_ELEMENTS = frozenset("script style textarea title xmp iframe noembed noframes noscript plaintext".split())
# The references a DOM serializer writes; html.parser and bs4 read them as html.unescape does.
_REFERENCES = {"&amp;": "&", "&lt;": "<", "&gt;": ">", "&quot;": '"', "&nbsp;": "\xa0", "&#39;": "'", "&#x27;": "'"}
_SPACE = "[ \t\n\r\f]"
_LEXEME = re.compile(
    r"(?P<text>[^<&]+)"
    r"|(?P<reference>&(?:amp|lt|gt|quot|nbsp|#39|#x27);)"
    rf"|<(?P<name>[a-zA-Z][a-zA-Z0-9-]*)(?P<attrs>(?:{_SPACE}+[a-zA-Z_:][-a-zA-Z0-9_:.]*(?:{_SPACE}*={_SPACE}*\"[^\"]*\")?)*)"
    rf"{_SPACE}*(?P<self_closing>/?)>"
    rf"|</(?P<end>[a-zA-Z][a-zA-Z0-9-]*){_SPACE}*>"
    r"|(?P<other>[<&])"
)
_ATTRIBUTE = re.compile(rf"{_SPACE}+([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:{_SPACE}*={_SPACE}*\"([^\"]*)\")?")

# A tree event: ("start", name, attributes), ("end", name, None) or ("text", text, None).
TreeEvent = tuple[Literal["start", "end", "text"], str, dict[str, str] | None]


class LexedHtml(NamedTuple):
    """A turn's scan, and the events that build its tree when one pass could read it (else None)."""

    scan: HtmlScan
    events: list[TreeEvent] | None


def lex_html(html: str, *, max_elements: int | None = None) -> LexedHtml:
    """The scan of `html` and its tree events in one pass; HTMLParser's scan where the pass cannot read it.

    Past `max_elements` the pass stops, as scan_html does: the turn is refused, no tree is needed.
    """
    read = _serialized_dom_events(html, max_elements)
    return read if read is not None else LexedHtml(scan_html(html, max_elements=max_elements), None)


def _serialized_dom_events(html: str, max_elements: int | None) -> LexedHtml | None:
    """The scan and events of `html` if it is serialized DOM (see the module's docstring), else None."""
    events: list[TreeEvent] = []
    open_names: list[str] = []
    depth = elements = 0
    text: list[str] = []
    for lexeme in _LEXEME.finditer(html):
        kind = lexeme.lastgroup
        if kind == "text":
            text.append(lexeme[0])
            continue
        if kind == "reference":
            text.append(_REFERENCES[lexeme[0]])
            continue
        if text:
            events.append(("text", "".join(text), None))
            text.clear()
        if kind == "self_closing":
            name = lexeme["name"].lower()
            if name in _RAW_TEXT_ELEMENTS:
                return None
            elements += 1
            if max_elements is not None and elements > max_elements:
                return LexedHtml(HtmlScan(truncated=False, depth=depth, elements=elements), None)
            events.append(("start", name, _attributes(lexeme["attrs"])))
            if lexeme["self_closing"] or name in VOID_ELEMENTS:
                events.append(("end", name, None))
            else:
                open_names.append(name)
                depth = max(depth, len(open_names))
        elif kind == "end":
            # Out of order, never opened, or a void element's: html.parser and bs4 each repair
            # those their own way, so theirs is the tree.
            if not open_names or open_names.pop() != lexeme["end"].lower():
                return None
            events.append(("end", lexeme["end"].lower(), None))
        else:  # "other": a "<" or "&" that starts nothing above
            return None
    if open_names:
        return None  # cut off: scan_html says so, and how
    if text:
        events.append(("text", "".join(text), None))
    return LexedHtml(HtmlScan(truncated=False, depth=depth, elements=elements), events)


def _attributes(source: str) -> dict[str, str]:
    # As html.parser reads them: names lowercased, values unescaped, a bare name "", the last wins.
    return {
        name.lower(): unescape(value) if value and "&" in value else value or ""
        for name, value in _ATTRIBUTE.findall(source)
    }


class _EventsTreeBuilder(HTMLParserTreeBuilder):
    """bs4's html.parser builder fed from events read beforehand, not from HTMLParser."""

    def __init__(self, events: list[TreeEvent]) -> None:
        super().__init__()
        self._events = events

    def feed(self, markup: str | bytes, _parser_class: object = None) -> None:
        # `markup` was read into the events already; bs4 passes it for the other builders.
        soup = self.soup
        assert soup is not None  # BeautifulSoup calls initialize_soup before feed
        new_attributes = self.attribute_dict_class
        for kind, value, attributes in self._events:
            if kind == "text":
                soup.handle_data(value)
            elif kind == "start":
                soup.handle_starttag(value, None, None, new_attributes(attributes or {}))
            else:
                soup.handle_endtag(value)


def html_soup(html: str, lexed: LexedHtml | None = None) -> BeautifulSoup:
    """The tree html.parser builds for `html`, from `lexed`'s events when it has them."""
    if lexed is None:
        lexed = lex_html(html)
    if lexed.events is None:
        return BeautifulSoup(html, "html.parser")
    return BeautifulSoup(html, builder=_EventsTreeBuilder(lexed.events))
