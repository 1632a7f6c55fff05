"""curation.text.words_of_texts: the vectorized words of many texts are `words` of each, on real text and edge cases."""

from __future__ import annotations

from typing import Any

from curation.text import words, words_of_texts

EDGE_CASES = [
    "",
    "   \n\t ",
    "...!?",
    "Hello, World! don't stop_me now 42x",
    "ＦＵＬＬ－ｗｉｄｔｈ and ﬁ ligature",  # NFKC folds both
    "Straße STRASSE",  # casefold
    "हिन्दी भाषा",  # combining marks: Python's \w splits at them, Rust's would not
    "naïve café 東京タワー x²",
    "tab\tsep\u00a0nbsp\u3000ideographic",
]


def test_words_of_texts_are_words_of_each_text(sharegpt_sample: list[dict[str, Any]]) -> None:
    texts = EDGE_CASES + [m["value"] for record in sharegpt_sample[:400] for m in record["conversations"]]
    assert any(not t.isascii() for t in texts[len(EDGE_CASES) :]) and any(t.isascii() for t in texts)
    assert words_of_texts(texts).to_list() == [words(t) for t in texts]
    ascii_only = [t for t in texts if t.isascii()]
    assert words_of_texts(ascii_only).to_list() == [words(t) for t in ascii_only]
    assert words_of_texts([]).to_list() == []
