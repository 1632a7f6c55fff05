"""The rephrase tier of the contamination check: a rewritten benchmark question keeps its anchors.

A GPT-4 rephrasing (llm-decontaminator's, Yang et al. 2023, arXiv:2311.04850) swaps most words for
synonyms, so word n-grams and character 3-grams miss it, and MiniLM often scores it under
Platypus's 0.8. What survives the rewrite is what the question is about: its numbers (GSM8K), its
names and rare terms (MMLU), the prose of a function's docstring (HumanEval). The tier flags a unit
whose cosine to an item clears a lower, per-benchmark floor when it also holds a large share of
the item's anchor terms; both are needed, so a same-topic question with other numbers or names
stays unflagged.

A code item's rewrite renames its function and arguments but keeps what they are: so when the
unit defines functions, one of them must have the item's signature with its names left out (the
types of its arguments and its return type, `def f(xs: List[int]) -> bool` as `(list[int]) ->
bool`). A different function with a similar docstring (same account, other result) is no rewrite.

Items are also compared through a second view where their text hides the question: the last line
of a passage item (MMLU's history questions quote a source, then ask), and the docstring prose of
a code item (doctest examples left out: rephrasings change their values).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from curation.text import words
from schemas.contamination import BenchmarkItem

# Words that say nothing of a question's subject (English function words and quiz phrasing).
_STOPWORDS = frozenset(
    """a about above after again all also am an and any are as at be been before being below between both but by
    can could did do does doing down during each few for from further had has have having he her here hers him his
    how i if in into is it its itself just me more most my no nor not now of off on once only or other our out over
    own same she should so some such than that the their them then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you your following
    statement statements true false best describes given find let many much total""".split()
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_TRIPLE_QUOTED = re.compile(r"(\"\"\"|''')(.*?)\1", re.S)
_DOCTEST_PROMPT = re.compile(r"^\s*(>>>|\.\.\.)")
# A Python def up to its colon: arguments (possibly over several lines) and return annotation.
_DEF = re.compile(
    r"^[ \t]*(?:async[ \t]+)?def[ \t]+\w+[ \t]*\((?P<args>[^()]*(?:\([^()]*\)[^()]*)*)\)[ \t]*(?:->(?P<ret>[^:\n]+))?:",
    re.M,
)
_OPTIONAL = re.compile(r"\AOptional\[(.*)\]\Z")
_TYPING_PREFIX = re.compile(r"\b(?:typing\.)?(List|Dict|Tuple|Set|FrozenSet|Type)\b")


def _fold(word: str) -> str:
    """A crude plural fold ("eggs" -> "egg"), enough for a rewrite that keeps the noun."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


@lru_cache(maxsize=1 << 16)
def anchor_terms(text: str) -> frozenset[str]:
    """The terms a rewrite of `text` keeps: its numbers (thousands separators dropped) and its
    words of 3 or more letters that are not function words, plurals folded."""
    numbers = {m.group().replace(",", "") for m in _NUMBER.finditer(text)}
    kept = {_fold(w) for w in words(text) if len(w) >= 3 and w not in _STOPWORDS and not w.isdigit()}
    return frozenset(numbers | kept)


def anchor_share(item_text: str, text: str) -> tuple[float, int]:
    """(share of the item's anchor terms found in `text`, how many the item has)."""
    item = anchor_terms(item_text)
    return (len(item & anchor_terms(text)) / len(item), len(item)) if item else (0.0, 0)


def code_prose(text: str) -> str:
    """The prose of the docstrings (triple-quoted strings) in `text`, doctest examples and their
    expected output left out; "" when there is none."""
    parts = []
    for match in _TRIPLE_QUOTED.finditer(text):
        lines: list[str] = []
        in_example = False
        for line in match.group(2).splitlines():
            if _DOCTEST_PROMPT.match(line):
                in_example = True
            elif not line.strip():
                in_example = False
            elif not in_example:
                lines.append(line.strip())
        parts.append(" ".join(lines))
    return " ".join(p for p in parts if p)


def _annotation(text: str) -> str:
    """An annotation compared without spaces, `typing.` or the capital of List/Dict/Tuple/Set."""
    return _TYPING_PREFIX.sub(lambda m: m.group(1).lower(), "".join(text.split()))


def _arguments(args: str) -> tuple[str, ...]:
    """The annotations of a def's arguments, in order ("" where none), self and cls left out."""
    parts, depth, current = [], 0, ""
    for char in args:
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    annotations = []
    for part in (p.split("=", 1)[0] for p in parts if p.strip()):
        name, _, annotation = part.partition(":")
        if name.strip() not in ("self", "cls"):
            annotations.append(_annotation(annotation))
    return tuple(annotations)


@lru_cache(maxsize=1 << 14)
def code_signatures(text: str) -> frozenset[tuple[tuple[str, ...], str]]:
    """The signatures of the functions `text` defines with their names left out: (argument
    annotations, return annotation)."""
    return frozenset((_arguments(m["args"]), _annotation(m["ret"] or "")) for m in _DEF.finditer(text))


def _same_annotation(a: str, b: str) -> bool:
    """Equal, or one side unannotated, or equal once an Optional[...] is unwrapped (a rewrite may add one)."""
    return not a or not b or _OPTIONAL.sub(r"\1", a) == _OPTIONAL.sub(r"\1", b)


def _same_signature(a: tuple[tuple[str, ...], str], b: tuple[tuple[str, ...], str]) -> bool:
    return len(a[0]) == len(b[0]) and all(map(_same_annotation, (*a[0], a[1]), (*b[0], b[1])))


def signatures_agree(item_text: str, text: str) -> bool:
    """False only when both define functions and none of `text`'s has a signature of the item's:
    as many arguments, and the same annotations where both have one."""
    item, unit = code_signatures(item_text), code_signatures(text)
    return not item or not unit or any(_same_signature(i, u) for i in item for u in unit)


def item_views(items: Sequence[BenchmarkItem], *, min_words: int) -> list[tuple[int, str, str]]:
    """(item row, view, text) for the second views of items that have one: "question", the last
    line of a multi-line item that is shorter than half of it, and "docstring", a code item's
    docstring prose. Views under `min_words` words are left out (a lone answer option)."""
    views = []
    for row, item in enumerate(items):
        lines = [line.strip() for line in item.text.strip().splitlines() if line.strip()]
        last = lines[-1] if len(lines) > 1 else ""
        if last and 2 * len(last) < len(item.text) and len(words(last)) >= min_words:
            views.append((row, "question", last))
        prose = code_prose(item.text)
        if prose and len(words(prose)) >= min_words:
            views.append((row, "docstring", prose))
    return views
