"""The verbatim tier of the contamination check: long word n-grams shared with benchmark items.

GPT-3 (Brown et al. 2020, appendix C) and dolma decontaminate with word 13-grams: a 13-word run
copied from a benchmark is evidence whatever surrounds it, where one embedding of a long turn is
diluted by the rest of the turn. An item shorter than n words is matched as a whole, down to
`min_words`; below that a match is too likely by chance ("what is the capital of france").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from curation.text import normalize_text, word_spans


@dataclass(frozen=True)
class NgramIndex:
    """Every item's n-grams (joined normalized words) -> the items that hold them."""

    n: int
    # gram -> indexes of the items holding it
    grams: dict[str, tuple[int, ...]]
    # item index -> its number of distinct grams (0: too short to be matched verbatim)
    gram_counts: tuple[int, ...]
    # gram lengths present: n, and the lengths of items shorter than n
    lengths: tuple[int, ...]


class Overlap(NamedTuple):
    """The item with the largest share of its grams found in a text."""

    item: int | None
    coverage: float


def _grams(words: Sequence[str], length: int) -> list[str]:
    return [" ".join(words[i : i + length]) for i in range(len(words) - length + 1)]


def _gram_length(word_count: int, *, n: int, min_words: int) -> int | None:
    if word_count >= n:
        return n
    return word_count if word_count >= min_words else None


def build_ngram_index(texts: Sequence[str], *, n: int, min_words: int) -> NgramIndex:
    """Index the texts (benchmark items, in index order) by their word n-grams."""
    holders: defaultdict[str, list[int]] = defaultdict(list)
    counts: list[int] = []
    lengths: set[int] = set()
    for i, text in enumerate(texts):
        words = [w for w, _, _ in word_spans(text)]
        length = _gram_length(len(words), n=n, min_words=min_words)
        if length is None:
            counts.append(0)
            continue
        lengths.add(length)
        distinct = set(_grams(words, length))
        counts.append(len(distinct))
        for gram in distinct:
            holders[gram].append(i)
    return NgramIndex(
        n=n,
        grams={g: tuple(items) for g, items in holders.items()},
        gram_counts=tuple(counts),
        lengths=tuple(sorted(lengths)),
    )


def best_overlap(text: str, index: NgramIndex) -> Overlap:
    """The item whose grams the text holds the largest share of (ties: the lower item index)."""
    words = [w for w, _, _ in word_spans(text)]
    found: defaultdict[int, set[str]] = defaultdict(set)
    for length in index.lengths:
        if length > len(words):
            break
        for gram in _grams(words, length):
            for item in index.grams.get(gram, ()):
                found[item].add(gram)
    best: Overlap = Overlap(None, 0.0)
    for item in sorted(found):
        coverage = len(found[item]) / index.gram_counts[item]
        if coverage > best.coverage:
            best = Overlap(item, coverage)
    return best


def _merged(spans: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return tuple(out)


def overlap_evidence(
    text: str, item_text: str, *, n: int, min_words: int
) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    """Character spans of the shared grams in `text` and in `item_text`, merged, for highlighting."""
    item_words = word_spans(item_text)
    length = _gram_length(len(item_words), n=n, min_words=min_words)
    if length is None:
        return (), ()
    text_words = word_spans(text)

    def positions(spans: list[tuple[str, int, int]]) -> dict[str, list[int]]:
        at: defaultdict[str, list[int]] = defaultdict(list)
        words = [w for w, _, _ in spans]
        for i, gram in enumerate(_grams(words, length)):
            at[gram].append(i)
        return at

    in_text, in_item = positions(text_words), positions(item_words)
    shared = in_text.keys() & in_item.keys()
    text_spans = [(text_words[i][1], text_words[i + length - 1][2]) for g in shared for i in in_text[g]]
    item_spans = [(item_words[i][1], item_words[i + length - 1][2]) for g in shared for i in in_item[g]]
    return _merged(text_spans), _merged(item_spans)


@lru_cache(maxsize=1 << 16)
def _char_trigrams(text: str) -> frozenset[str]:
    norm = normalize_text(text)
    return frozenset(norm[i : i + 3] for i in range(max(len(norm) - 2, 1)))


def char_containment(item_text: str, text: str) -> float:
    """Share of the item's character 3-grams (after normalize_text) found in `text`: robust to
    the typos and respacing of a retyped question, where word n-grams and embeddings are not."""
    item = _char_trigrams(item_text)
    return len(item & _char_trigrams(text)) / len(item) if item else 0.0
