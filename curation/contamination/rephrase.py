"""The rephrase tier of the contamination check: a rewritten benchmark question keeps its anchors.

A GPT-4 rephrasing (llm-decontaminator's, Yang et al. 2023, arXiv:2311.04850) swaps most words for
synonyms, so word n-grams and character 3-grams miss it, and MiniLM often scores it under
Platypus's 0.8. What survives the rewrite is what the question is about: its numbers (GSM8K), its
names and rare terms (MMLU), the prose of a function's docstring (HumanEval). The tier flags a unit
whose cosine to an item clears a lower, per-benchmark floor when it also holds a large share of
the item's anchor terms; both are needed, so a same-topic question with other numbers or names
stays unflagged.

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
