"""The rephrase tier on code: a HumanEval rewrite with renamed identifiers is flagged, and a different
function whose docstring shares the item's opening sentence is not (the real MiniLM, every HumanEval item
indexed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from curation.contamination.benchmarks import read_benchmark_items
from curation.contamination.check import (
    BenchmarkIndex,
    check_contamination,
)
from schemas.config import LOCAL_BENCHMARK_PRESETS, ContaminationConfig
from schemas.contamination import TurnFinding
from tests.helpers.conversations import conversation
from tests.helpers.planting import embedded_index

# HumanEval/3 (below_zero) rewritten as llm-decontaminator's rephrasings are: function and argument
# renamed, docstring reworded, other doctest values, the solution included.
RENAMED = '''from typing import List


def balance_dips_negative(transactions: List[int]) -> bool:
    """ You receive a sequence of deposits and withdrawals applied to a bank account whose balance
    starts at zero. Return True if the balance ever becomes negative at some point, otherwise False.
    >>> balance_dips_negative([3, 1, -7, 2])
    True
    """
    running = 0
    for amount in transactions:
        running += amount
        if running < 0:
            return True
    return False
'''

# Another task on the same account: its docstring opens with HumanEval/3's first sentence word for word,
# which takes MiniLM's cosine to the item's docstring view to 0.79 with 56% of its anchor terms.
UNRELATED = '''from typing import List


def final_balance(operations: List[int]) -> int:
    """ You're given a list of deposit and withdrawal operations on a bank account.
    Return the account's balance after all of them have been applied, starting from zero.
    >>> final_balance([1, 2, -4, 5])
    4
    """
    return sum(operations)
'''


@pytest.fixture(scope="module")
def humaneval_index(shared_data: Path, embed_units: Any) -> BenchmarkIndex:
    spec = LOCAL_BENCHMARK_PRESETS["humaneval"]
    items = read_benchmark_items(
        spec.model_copy(update={"path": str(shared_data / "benchmarks" / "raw" / spec.path)})
    ).items
    return embedded_index(items, embed_units)


def _check(code: str, index: BenchmarkIndex, embed_units: Any) -> TurnFinding:
    conv = conversation(("user", f"Can you explain this Python code?\n\n{code}"), ("assistant", "Sure."), id="c")
    result = check_contamination([conv], index=index, embed=embed_units, config=ContaminationConfig(), decisions={})
    [finding] = result.findings
    return finding


@pytest.mark.shared_data
def test_a_humaneval_rewrite_with_renamed_identifiers_is_flagged_by_the_rephrase_tier(
    humaneval_index: BenchmarkIndex, embed_units: Any
) -> None:
    finding = _check(RENAMED, humaneval_index, embed_units)
    assert finding.flagged and finding.matched_item_id == "HumanEval/3"
    assert finding.rephrase_item_id == "HumanEval/3" and finding.category == "rephrased"


@pytest.mark.shared_data
def test_another_function_with_a_similar_docstring_is_not_flagged(
    humaneval_index: BenchmarkIndex, embed_units: Any
) -> None:
    finding = _check(UNRELATED, humaneval_index, embed_units)
    # The near item is found, and its docstring passes the tier's cosine and anchor floors ...
    assert finding.best_item_id == "HumanEval/3"
    # ... but final_balance(List[int]) -> int is not below_zero(List[int]) -> bool.
    assert not finding.flagged and finding.rephrase_item_id is None
