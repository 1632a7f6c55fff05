"""The one definition of "same text" for filters and dedupers.

Two strings are the same text when `normalize_text` maps them to the same string. Every stage
that compares text (blocked phrases, exact and near-duplicate detection) goes through this
module, so a phrase that matches in one stage cannot silently miss in another.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import polars as pl

# A word is a maximal run of Unicode letters, digits and underscores. On ASCII text the ASCII
# pattern finds the same words ~1.5x faster.
_WORD = re.compile(r"\w+")
_ASCII_WORD = re.compile(r"\w+", re.ASCII)


def _folded(text: str) -> str:
    """NFKC and casefold, normalize_text's first step."""
    if text.isascii():
        # NFKC leaves ASCII as it is and casefold() equals lower() on it: skip both passes
        # (most turns are ASCII; this makes blocked-phrase matching ~3x faster).
        return text.lower()
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def normalize_text(text: str) -> str:
    """Text in canonical comparable form: NFKC, casefolded, whitespace runs collapsed to one
    space, stripped.

    NFKC folds compatibility forms (full-width letters, ligatures such as "ﬁ", superscripts) into
    their plain letters. casefold is a stronger lower(): "Straße" and "STRASSE" compare equal.
    casefold can emit a decomposed sequence (U+01F0 "ǰ" folds to "j" + combining caron), so NFKC
    runs again afterwards: the result is itself NFKC (as Unicode's NFKC_Casefold is), and the
    function is idempotent. Whitespace is str.isspace's (spaces, tabs, newlines, NBSP, ideographic
    space...), which str.split() splits on, 3x faster than a regex substitution.
    """
    return " ".join(_folded(text).split())


def is_blank(text: str) -> bool:
    """Whether `text` shows nothing: only whitespace and invisible format characters.

    str.strip() keeps format characters (Unicode category Cf: zero-width space, zero-width
    joiner, byte-order mark, word joiner). ChatGPT pages captured empty answers as a lone
    U+200B, 31 of them among the 3003 real ShareGPT conversations, so those count as blank too.
    """
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in text)


def words(text: str) -> list[str]:
    """The words of `text` after `normalize_text`, in order.

    Punctuation separates words ("don't" gives "don", "t"). Scripts written without spaces
    (Chinese, Japanese, Thai) come out as one word per run of letters; a consumer that needs
    finer units for them should shingle characters instead.
    """
    # Whitespace never sits inside a word, so collapsing it (normalize_text's last step) is skipped.
    folded = _folded(text)
    return (_ASCII_WORD if folded.isascii() else _WORD).findall(folded)


def words_of_texts(texts: Sequence[str]) -> pl.Series:
    """`words` of each text, as a Series of lists in the same order.

    ASCII texts (most turns) go through one vectorized polars pass, lowercase then runs of word
    characters: on ASCII, `words` itself lowercases and takes [A-Za-z0-9_] runs, and the Unicode
    and ASCII \\w agree. The others go through `words` (NFKC and casefold, which polars lacks).
    """
    series = pl.Series(texts, dtype=pl.String)
    vectorized = series.str.to_lowercase().str.extract_all(r"\w+")
    ascii_text = [text.isascii() for text in texts]
    if all(ascii_text):
        return vectorized
    others = [None if a else words(t) for t, a in zip(texts, ascii_text, strict=True)]
    folded = pl.Series(others, dtype=vectorized.dtype)
    return pl.select(pl.when(pl.Series(ascii_text)).then(vectorized).otherwise(folded)).to_series()


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """The words of `text` with their [start, end) character offsets in `text` itself.

    Each word is normalized on its own, so the words equal `words(text)` except where NFKC
    would merge or split characters across a word boundary (rare compatibility forms); use this
    where matched words must be located in the original text (report highlighting).
    """
    return [(normalize_text(m.group()), m.start(), m.end()) for m in _WORD.finditer(text)]
