"""The drop ledger and run reports: where every record that is not kept ends up."""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args

from pydantic import BaseModel, ConfigDict, Field

from schemas.conversation import Conversation

Stage = Literal[
    "ingest",
    "markdown",
    "shape",
    "model",
    "blocked",
    "secrets",
    "language",
    "dedupe_exact",
    "dedupe_minhash",
    "split",
    "contamination",
    "tokenize",
    "pack",
    "scrape",
]

# Bounded, stable drop reasons: reports group by them and a test triggers every one.
DropReason = Literal[
    # ingest: a record that could not become a Conversation
    "empty_input",  # a file or page with no bytes / no records at all
    "invalid_utf8",  # bytes that are not UTF-8
    "invalid_json",  # JSON that does not parse (a truncated dump's tail included)
    "no_next_data",  # a saved page without <script id="__NEXT_DATA__">
    "no_page_content",  # __NEXT_DATA__ without props.pageProps.content.items
    "record_too_large",  # a record or page over IngestConfig.max_record_bytes
    "unknown_format",  # a JSON value that is no ShareGPT, Alpaca or messages record
    "invalid_record",  # a known format with fields of the wrong type
    "unsafe_id",  # an id that could escape a directory or is not printable
    "unknown_role",  # a turn whose role maps to none of system/user/assistant
    "too_deeply_nested",  # JSON nested deeper than IngestConfig.max_json_depth (parsing it would recurse)
    "not_a_readable_file",  # an input path that is no regular file open() takes: FIFO, socket, device, dead link
    "corrupt_compression",  # gzip data damaged or cut off; byte_offset is in the compressed file
    # markdown
    "truncated_html",  # an assistant turn whose HTML ends inside an open block element
    "html_too_deep",  # an assistant turn's HTML nests deeper than MarkdownConfig.max_html_depth
    "html_too_large",  # an assistant turn's HTML holds more elements than MarkdownConfig.max_html_elements
    # shape
    "no_turns",  # zero turns (21 of the 3003 real conversations)
    "empty_turn",  # a turn with no text after cleaning
    "roles_not_alternating",  # user/assistant order that no safe repair fixes
    "no_assistant_turn",  # nothing left to learn from after repair
    "too_short",  # fewer turns or characters than ShapeConfig asks
    # model
    "model_not_allowed",
    # blocked
    "blocked_word",  # mode "drop": a blocked word or phrase in an assistant turn
    "blocked_response",  # an assistant turn that is a ChatGPT error message, not an answer
    "all_turns_unsupervised",  # mode "zero_weight" left no assistant turn with weight
    # language
    "language_not_allowed",
    # dedupe_exact (duplicate_of names the copy that was kept)
    "exact_duplicate",  # the same normalized, role-tagged turns as another conversation
    "same_prompts",  # the same user turns with other (regenerated) answers
    "prefix_of_longer",  # its turns are the first turns of a longer conversation
    # dedupe_minhash
    "near_duplicate",  # verified Jaccard of word 5-gram shingles >= the threshold
    # split
    "round_too_long",  # one user+assistant round is longer than max_tokens on its own
    # contamination (detail: benchmark, item id, score, category, turn)
    "benchmark_contamination",  # a turn matches a benchmark item: the conversation is dropped
    "contaminated_rounds_cut",  # scope "round": rounds from the first contaminated turn on were cut
    # tokenize
    "no_supervised_tokens",  # nothing left to train on (every assistant turn has weight 0)
    # pack
    "longer_than_max_seq_len",  # still longer than shards.max_seq_len after splitting (overlong="drop")
    # scrape: a requested page id that did not become a fetched page (conversation_id = page id).
    # A 200 page with no bytes or without a whole __NEXT_DATA__ script is empty_input / no_next_data.
    "invalid_id",  # not a ShareGPT page id (empty, too long, "/", "..", "\\", NUL...): never a file name
    "invalid_url",  # a listed URL whose resolved path is not url_template's shape (/c/../x, /c/): never requested
    "host_not_allowed",  # the URL's origin (scheme, host, port) is not on the allow-list: never requested
    "redirect_off_allowlist",  # a redirect pointed to an origin off the allow-list (or too many hops)
    "not_found",  # HTTP 404: the share was never there or was deleted
    "gone",  # HTTP 410: the share was removed for good
    "blocked",  # HTTP 401/403/451: the server refuses us this page
    "page_too_large",  # over max_page_bytes, by Content-Length or by counting the streamed body
    "truncated_body",  # fewer bytes than Content-Length on every try (connection closed early)
    "fetch_failed",  # no page after max_tries (429/5xx/timeouts/connection errors) or another 4xx
]

DROP_REASONS: tuple[str, ...] = get_args(DropReason)


class Dropped(BaseModel):
    """One record that left the pipeline, with the stage, a bounded reason and a free detail."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The conversation id; for input that never had one, "<file>#<record index>".
    conversation_id: str
    stage: Stage
    reason: DropReason
    detail: str = ""
    input_file: str | None = None
    byte_offset: int | None = None
    record_index: int | None = None
    # For duplicates: the id of the copy that was kept.
    duplicate_of: str | None = None
    # "conversation": the record left the pipeline; for a split piece ("<id>--pN"), that piece
    # left, and the record counts as dropped only when none of its pieces is kept.
    # "round": one round was cut out of a record whose other rounds go on (split), so it does not
    # count as a dropped record.
    scope: Literal["conversation", "round"] = "conversation"

    @classmethod
    def of(
        cls,
        conv: Conversation,
        *,
        stage: Stage,
        reason: DropReason,
        detail: str = "",
        duplicate_of: str | None = None,
        scope: Literal["conversation", "round"] = "conversation",
    ) -> Dropped:
        """The drop record for `conv`, carrying its id and where it was read."""
        return cls(
            conversation_id=conv.id,
            stage=stage,
            reason=reason,
            detail=detail,
            input_file=conv.provenance.input_file,
            byte_offset=conv.provenance.byte_offset,
            record_index=conv.provenance.record_index,
            duplicate_of=duplicate_of,
            scope=scope,
        )


class StageReport(BaseModel):
    """Counts for one stage over one run: inputs == kept + dropped always holds.

    Counts are of conversations; `rows_out` differs from `kept` only where a stage writes several
    rows for one conversation (split pieces), and `dropped` counts conversation-scope drops only.
    """

    model_config = ConfigDict(extra="forbid")

    stage: str
    inputs: int = 0
    kept: int = 0
    dropped: int = 0
    # Records written for the next stage; None means the same as `kept`.
    rows_out: int | None = None
    dropped_by_reason: dict[str, int] = Field(default_factory=dict)
    # Changes that kept the record: repairs, redactions, zero-weighted turns, converted HTML.
    changed: dict[str, int] = Field(default_factory=dict)
    seconds: float = 0.0
    # Task-sized pieces of work (parts, file groups) the stage ran, and how many of them were
    # taken from the stage cache instead of being computed again.
    parts: int = 0
    parts_reused: int = 0
    # What a person should know that dropped nothing: an input file reached twice and read once.
    warnings: list[str] = Field(default_factory=list)


class CacheRejection(BaseModel):
    """A stage-cache entry a run found damaged (a file missing, cut short or changed, an unreadable
    record) and removed; the run computed that part again."""

    stage: str
    key: str
    reason: str


class RunReport(BaseModel):
    """What one run read, did and wrote; written as JSON and as a Prefect artifact."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    started_at: str
    finished_at: str = ""
    inputs: list[str]
    config_hash: str
    code_version: str
    records_read: int = 0
    # Source conversations that reach the output (in one piece or several) ...
    kept: int = 0
    # ... the rows they make up (pieces of split conversations count one each) ...
    rows: int = 0
    # ... and the records that left the pipeline, one ledger row each (scope "conversation").
    dropped: int = 0
    stages: list[StageReport] = Field(default_factory=list)
    outputs: dict[str, str] = Field(default_factory=dict)
    # Damaged stage-cache entries this run removed and computed again, by stage and key.
    cache_entries_rejected: list[CacheRejection] = Field(default_factory=list)
    # The runner its tasks ran on: run.task_runner, with "auto" resolved ("" in reports written before it).
    task_runner: str = ""


class InputGroup(BaseModel):
    """One ingest task's input files: what the stage cache keys on, in lineage."""

    group: str
    files: int
    bytes: int
    first_file: str
    last_file: str
    reused: bool = False


class OutputFile(BaseModel):
    path: str
    blake2b: str


class InputFile(BaseModel):
    """A file a run read, by content: `runs diff` matches inputs on blake2b, whatever their paths."""

    path: str
    blake2b: str


class RunLineage(BaseModel):
    """lineage.json: what a run read (by content), with which config and code, and what it wrote."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    code_version: str
    # Hash of the pipeline's source: the stage cache's code key.
    code_fingerprint: str
    config_hash: str
    inputs: list[str]
    input_groups: list[InputGroup] = Field(default_factory=list)
    # every file the inputs held, with its content digest (empty in lineage written before it)
    input_files: list[InputFile] = Field(default_factory=list)
    outputs: list[OutputFile] = Field(default_factory=list)


class StageResult(NamedTuple):
    """What a stage returns: the records it kept, those it dropped, and counts of changes made
    to kept records (repairs, redactions, zero-weighted turns) so reports can show them."""

    kept: list[Conversation]
    dropped: list[Dropped]
    changed: dict[str, int]
