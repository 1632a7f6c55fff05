"""Benchmark items, reviewer decisions and the contamination report: the contamination stage's records."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.conversation import Role

# Platypus (Lee et al. 2023, arXiv:2308.07317, section 2.2) sorts the pairs it flags into
# "duplicate", "gray-area" and "similar but different"; chatsift names them for what they are.
Category = Literal["near_verbatim", "rephrased", "similar"]
CATEGORIES: tuple[Category, ...] = ("near_verbatim", "rephrased", "similar")

# What happened to a checked turn: "none" (not flagged), "removed" (its conversation was dropped),
# "cut" (its conversation was cut before it), "kept_by_reviewer" (a keep decision cleared it),
# "kept_by_config" (flagged, but its category is not in remove_categories).
TurnAction = Literal["none", "removed", "cut", "kept_by_reviewer", "kept_by_config"]


class BenchmarkItem(BaseModel):
    """One benchmark question (or reference answer) that training data must not contain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    benchmark: str
    # Stable within its benchmark: the file's own id field, or <file stem>/<row> where there is none.
    item_id: str
    kind: Literal["question", "answer"] = "question"
    text: str


class ReviewerDecision(BaseModel):
    """A reviewer's ruling on one flagged (conversation, benchmark item) pair, honoured by later runs.

    "keep" clears a false positive: that pair no longer removes anything. "remove" removes the
    conversation's turns that match the item (the whole conversation when none does), whatever
    their score.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    conversation_id: str
    benchmark: str
    item_id: str
    decision: Literal["keep", "remove"]
    reviewer: str = ""
    note: str = ""


class TurnFinding(BaseModel):
    """One checked turn: its best match by embedding and by n-gram overlap, and what was done.

    Every checked turn gets one, flagged or not, so score distributions can be audited.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    conversation_id: str
    input_file: str
    record_index: int | None = None
    turn_index: int
    role: Role
    # Best cosine similarity over the turn's units (the whole turn, its paragraphs and windows).
    best_benchmark: str | None = None
    best_item_id: str | None = None
    best_score: float = 0.0
    best_unit: str = "turn"
    # The item with the largest share of its word n-grams found verbatim in the turn.
    ngram_benchmark: str | None = None
    ngram_item_id: str | None = None
    ngram_coverage: float = 0.0
    # The best character 3-gram containment of a near item in one of the turn's units (fuzzy tier).
    fuzzy_item_id: str | None = None
    fuzzy_benchmark: str | None = None
    fuzzy_containment: float = 0.0
    # The rephrase tier's match (curation.contamination.rephrase): the item a unit is near (cosine rephrase_score to
    # its text or to its second view, rephrase_view: "text", "question" or "docstring") and the share of the item's
    # anchor terms (numbers, names, rare words) the unit holds; None when no item met its benchmark's rule.
    rephrase_benchmark: str | None = None
    rephrase_item_id: str | None = None
    rephrase_score: float = 0.0
    rephrase_anchor_share: float = 0.0
    rephrase_view: str | None = None
    # The pair a reviewer sees: the stronger of the two matches, with its own score.
    flagged: bool = False
    category: Category | None = None
    matched_benchmark: str | None = None
    matched_item_id: str | None = None
    matched_score: float = 0.0
    decision: Literal["keep", "remove"] | None = None
    action: TurnAction = "none"
    # Flagged turns only: the turn's text and the matched n-gram spans, for the report.
    turn_text: str | None = None
    turn_spans: tuple[tuple[int, int], ...] = ()
    item_spans: tuple[tuple[int, int], ...] = ()


class ContextTurn(BaseModel):
    """One turn of a flagged pair's conversation, as the report shows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    text: str


class FlaggedPair(BaseModel):
    """A training turn beside the benchmark item it matched, as the report shows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    conversation_id: str
    source: str
    turn_index: int
    role: Role
    turn_text: str
    benchmark: str
    item_id: str
    item_text: str
    score: float
    ngram_coverage: float
    category: Category
    fuzzy_containment: float = 0.0
    # Set when the rephrase tier matched this item: the view compared and the share of its anchor terms in the turn.
    rephrase_view: str | None = None
    rephrase_anchor_share: float = 0.0
    action: TurnAction
    decision: Literal["keep", "remove"] | None = None
    # Character spans [start, end) of the verbatim n-gram evidence in each text.
    turn_spans: tuple[tuple[int, int], ...] = ()
    item_spans: tuple[tuple[int, int], ...] = ()
    # The embedding tier's own evidence for this item: its best cosine and the unit of the turn that had it
    # ("turn", "paragraph 2", "paragraph 1 window 3", "docstrings"); 0 and "" when another tier matched it.
    embedding_score: float = 0.0
    embedding_unit: str = ""
    # The benchmark's reference answer to the item (its answer_fields), "" where it has none.
    item_answer: str = ""
    # The whole conversation (its title too, where it has one), and for a cut conversation the index of its
    # first removed turn.
    conversation_title: str = ""
    conversation: tuple[ContextTurn, ...] = ()
    cut_at: int | None = None


class BenchmarkSourceCount(BaseModel):
    """Flagged turns and removed conversations for one benchmark and one input source."""

    model_config = ConfigDict(extra="forbid")

    benchmark: str
    source: str
    flagged_turns: int = 0
    flagged_conversations: int = 0
    removed_conversations: int = 0
    cut_conversations: int = 0


class AppliedDecision(BaseModel):
    """A reviewer decision and whether this run met the pair it names."""

    model_config = ConfigDict(extra="forbid")

    decision: ReviewerDecision
    applied: bool
    effect: str


class ContaminationReport(BaseModel):
    """What the contamination check found, for reviewers: written as JSON, CSV and HTML."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    created_at: str
    model: str
    device: str
    threshold: float
    near_verbatim_score: float
    rephrased_score: float
    ngram_n: int
    ngram_min_coverage: float
    action: str
    remove_categories: tuple[str, ...]
    # benchmark name -> items indexed
    benchmarks: dict[str, int] = Field(default_factory=dict)
    conversations_checked: int = 0
    turns_checked: int = 0
    flagged_turns: int = 0
    flagged_conversations: int = 0
    removed_conversations: int = 0
    cut_conversations: int = 0
    counts: list[BenchmarkSourceCount] = Field(default_factory=list)
    # Histogram of every checked turn's best score: bin lower edges and counts, all turns and flagged ones.
    score_bins: list[float] = Field(default_factory=list)
    score_counts: list[int] = Field(default_factory=list)
    score_counts_flagged: list[int] = Field(default_factory=list)
    # This run's calibration figures: best-score quantiles of the unflagged and the flagged turns, and the
    # unflagged turns within 0.05 below the threshold (the ones a lower threshold would add first).
    unflagged_score_quantiles: dict[str, float] = Field(default_factory=dict)
    flagged_score_quantiles: dict[str, float] = Field(default_factory=dict)
    unflagged_near_threshold: int = 0
    pairs: list[FlaggedPair] = Field(default_factory=list)
    decisions: list[AppliedDecision] = Field(default_factory=list)
    # Measured rates that tell a reviewer how far to trust the flags (docs/contamination.md).
    calibration: str = ""
