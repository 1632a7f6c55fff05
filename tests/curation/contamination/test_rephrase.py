"""The rephrase tier's text parts: anchor terms, docstring prose and the items' second views (no model)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from curation.contamination.rephrase import (
    anchor_share,
    anchor_terms,
    code_prose,
    code_signatures,
    item_views,
    signatures_agree,
)
from schemas.config import ContaminationConfig
from schemas.config.contamination import RephraseRule
from schemas.contamination import BenchmarkItem

HUMANEVAL_LIKE = '''from typing import List


def below_zero(operations: List[int]) -> bool:
    """ You're given a list of deposit and withdrawal operations on a bank account.
    Detect if at any point the balance falls below zero.
    >>> below_zero([1, 2, -4, 5])
    True
    """
'''


def test_anchor_terms_keep_numbers_names_and_rare_words_not_function_words() -> None:
    terms = anchor_terms("Josh buys a house for $80,000 and puts in 50,000 in repairs. Which of the following?")
    assert {"josh", "buy", "house", "80000", "50000", "repair"} <= terms
    assert not {"a", "for", "and", "in", "which", "of", "the", "following"} & terms
    share, count = anchor_share(
        "By what means did the United States take the Oregon Territory?",
        "How did the United States acquire the Oregon Territory?",
    )
    assert count == 6 and share == pytest.approx(4 / 6)  # means, take dropped; united, states, oregon, territory kept


def test_code_prose_drops_doctest_examples_and_their_output() -> None:
    assert code_prose(HUMANEVAL_LIKE) == (
        "You're given a list of deposit and withdrawal operations on a bank account. "
        "Detect if at any point the balance falls below zero."
    )
    assert code_prose("def f(x):\n    return x") == ""


def test_item_views_are_a_passage_items_question_line_and_a_code_items_docstring() -> None:
    passage = BenchmarkItem(
        benchmark="mmlu",
        item_id="h/1",
        text="This question refers to the following information.\n"
        + "A long quoted source that goes on for a good many words about the territory and its settlers. " * 3
        + "\nBy what means did the United States take possession of the Oregon Territory?",
    )
    options = BenchmarkItem(benchmark="mmlu", item_id="b/13", text="A cell nucleus contains which?\nI. DNA\nIII. RNA")
    code = BenchmarkItem(benchmark="humaneval", item_id="HumanEval/3", text=HUMANEVAL_LIKE)
    views = item_views([passage, options, code], min_words=5)
    assert views == [
        (0, "question", "By what means did the United States take possession of the Oregon Territory?"),
        (2, "docstring", code_prose(HUMANEVAL_LIKE)),
    ]


def test_one_rephrase_rule_per_benchmark() -> None:
    rule = RephraseRule(benchmark="mmlu", min_score=0.7, min_anchor_share=0.4)
    with pytest.raises(ValidationError, match="rephrase_rules name a benchmark twice"):
        ContaminationConfig(rephrase_rules=(rule, rule))


def test_code_signatures_leave_names_out_and_agree_on_arity_and_annotations() -> None:
    assert code_signatures(HUMANEVAL_LIKE) == {(("list[int]",), "bool")}
    renamed = "def dips(self, moves: typing.List[int], start=0) -> bool:\n    pass"
    assert code_signatures(renamed) == {(("list[int]", ""), "bool")}
    assert signatures_agree(HUMANEVAL_LIKE, "def dips(moves: list[int]) -> Optional[bool]:")
    assert signatures_agree(HUMANEVAL_LIKE, "def dips(moves):")  # unannotated: no evidence against
    assert not signatures_agree(HUMANEVAL_LIKE, "def total(moves: List[int]) -> int:")
    assert not signatures_agree(HUMANEVAL_LIKE, "def dips(moves: List[int], limit: int) -> bool:")
    assert signatures_agree(HUMANEVAL_LIKE, "Write a function that says whether the balance dips.")  # no def
    assert signatures_agree("What is 2 + 2?", "def total(moves: List[int]) -> int:")  # no code item
