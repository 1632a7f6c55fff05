"""A hand-made contamination report: three flagged pairs (an XSS turn kept by a reviewer, a
rephrased MMLU question, a near-verbatim GSM8K one with messy spans) and two reviewer decisions."""

from __future__ import annotations

from schemas.contamination import (
    AppliedDecision,
    BenchmarkSourceCount,
    ContaminationReport,
    ContextTurn,
    FlaggedPair,
    ReviewerDecision,
)

GSM8K_Q = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)
GSM8K_TURN = f"hey can u solve this for me, need it for class tomorrow:\n\n{GSM8K_Q}\n\nshow the steps pls"
MMLU_ITEM = (
    "Which of the following is the body cavity that contains the pituitary gland?\n"
    "A. Abdominal\nB. Cranial\nC. Pleural\nD. Spinal"
)
MMLU_TURN = (
    "Quick anatomy check: the pituitary gland sits in which body cavity - abdominal, cranial, pleural or spinal?"
)
SCRIPT = "<script>alert(1)</script>"
XSS_ITEM = (
    "Which of the following is an example of a cross-site scripting attack? "
    "A. Injecting a script into a web page viewed by other users B. Flooding a server with requests"
)
XSS_TURN = (
    "My comment form shows whatever people type. Someone posted this and I got a popup:\n"
    f"{SCRIPT}\n"
    "Is that cross-site scripting? Here is the page source:\n"
    + "\n".join(f'<div class="comment" id="c{i}"><p>comment number {i} &amp; more</p></div>' for i in range(80))
)


MMLU_ANSWER = "B"
# The MMLU pair's conversation: an answer before the flagged turn stays, the flagged round and after are cut.
MMLU_CONVERSATION = (
    ContextTurn(role="user", text="I am revising anatomy for my exam tomorrow."),
    ContextTurn(role="assistant", text="Happy to help you revise: ask away."),
    ContextTurn(role="user", text=MMLU_TURN),
    ContextTurn(role="assistant", text="Cranial: the pituitary gland sits in the sella turcica."),
)


def span_of(text: str, needle: str) -> tuple[int, int]:
    """The (start, end) of `needle` in `text`."""
    start = text.index(needle)
    return start, start + len(needle)


def sample_report(pairs: bool = True) -> ContaminationReport:
    """The report; with `pairs=False`, the same run having flagged nothing."""
    flagged = [
        FlaggedPair(
            conversation_id="sharegpt-xss-0042",
            source="sharegpt_v3.json",
            turn_index=0,
            role="user",
            turn_text=XSS_TURN,
            benchmark="mmlu",
            item_id="computer_security/17",
            item_text=XSS_ITEM,
            score=0.83,
            ngram_coverage=0.0,
            category="similar",
            action="kept_by_reviewer",
            decision="keep",
            conversation_title=f"XSS question {SCRIPT}",
            conversation=(ContextTurn(role="user", text=XSS_TURN), ContextTurn(role="assistant", text=SCRIPT)),
        ),
        FlaggedPair(
            conversation_id="sharegpt-mmlu-0777",
            source="sharegpt_v3.json",
            turn_index=2,
            role="user",
            turn_text=MMLU_TURN,
            benchmark="mmlu",
            item_id="anatomy/3",
            item_text=MMLU_ITEM,
            score=0.91,
            ngram_coverage=0.1,
            category="rephrased",
            action="cut",
            turn_spans=(span_of(MMLU_TURN, "pituitary gland"),),
            item_spans=(span_of(MMLU_ITEM, "pituitary gland"),),
            embedding_score=0.91,
            embedding_unit="turn",
            item_answer=MMLU_ANSWER,
            conversation=MMLU_CONVERSATION,
            cut_at=2,
        ),
        FlaggedPair(
            conversation_id="sharegpt-gsm8k-0001",
            source="sharegpt_v3.json",
            turn_index=0,
            role="user",
            turn_text=GSM8K_TURN,
            benchmark="gsm8k",
            item_id="test/0",
            item_text=GSM8K_Q,
            score=0.987,
            ngram_coverage=1.0,
            category="near_verbatim",
            action="removed",
            # Unsorted, overlapping and out of range, as the matcher may hand them over.
            turn_spans=(
                (GSM8K_TURN.index("How many"), GSM8K_TURN.index(GSM8K_Q) + len(GSM8K_Q)),
                (GSM8K_TURN.index(GSM8K_Q), GSM8K_TURN.index("How many") + 3),
            ),
            item_spans=((40, len(GSM8K_Q) + 50), (0, 45)),
        ),
    ]
    return ContaminationReport(
        run_id="run-2024-06-01T12-00-00",
        created_at="2024-06-01T12:03:11+00:00",
        model="all-MiniLM-L6-v2",
        device="cpu",
        threshold=0.8,
        near_verbatim_score=0.95,
        rephrased_score=0.88,
        ngram_n=13,
        ngram_min_coverage=0.5,
        action="drop_conversation",
        remove_categories=("near_verbatim", "rephrased", "similar"),
        benchmarks={"gsm8k": 1319, "mmlu": 14042},
        conversations_checked=3003 if pairs else 10,
        turns_checked=11872 if pairs else 12,
        flagged_turns=3 if pairs else 0,
        flagged_conversations=3 if pairs else 0,
        removed_conversations=1 if pairs else 0,
        cut_conversations=1 if pairs else 0,
        counts=[
            BenchmarkSourceCount(
                benchmark="gsm8k", source="sharegpt_v3.json", flagged_turns=1, flagged_conversations=1,
                removed_conversations=1,
            ),
            BenchmarkSourceCount(
                benchmark="mmlu", source="sharegpt_v3.json", flagged_turns=2, flagged_conversations=2,
                removed_conversations=1,
            ),
        ]
        if pairs
        else [],
        score_bins=[round(i * 0.05, 2) for i in range(20)],
        score_counts=[0, 3, 40, 410, 1800, 3100, 2900, 1900, 980, 420, 180, 80, 35, 14, 6, 2, 1, 1, 0, 1],
        score_counts_flagged=[0] * 16 + [1, 1, 0, 1],
        unflagged_score_quantiles={"p50": 0.31, "p99": 0.66, "min": 0.02, "max": 0.79},
        flagged_score_quantiles={"p50": 0.91, "p99": 0.99, "min": 0.83, "max": 0.99},
        unflagged_near_threshold=2,
        pairs=flagged if pairs else [],
        decisions=[
            AppliedDecision(
                decision=ReviewerDecision(
                    conversation_id="sharegpt-xss-0042", benchmark="mmlu", item_id="computer_security/17",
                    decision="keep", reviewer="ana", note="asks about XSS, does not contain the question",
                ),
                applied=True,
                effect="kept 1 flagged turn",
            ),
            AppliedDecision(
                decision=ReviewerDecision(
                    conversation_id="sharegpt-gone-9999", benchmark="gsm8k", item_id="test/12", decision="keep",
                    reviewer="bo",
                ),
                applied=False,
                effect="pair not met in this run",
            ),
        ]
        if pairs
        else [],
        calibration="On 200 planted GSM8K edits: 97% of verbatim copies and 81% of rephrasings flagged.",
    )  # fmt: skip
