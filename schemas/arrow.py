"""Explicit Arrow schemas for every Parquet file chatsift writes.

Changing a field here means bumping SCHEMA_VERSION; readers check it in the file metadata.
"""

from __future__ import annotations

import pyarrow as pa

# "2": Provenance gained url and fetched_at (scraped pages). Version "1" files differ only by
# lacking those two nullable fields, so readers still accept them (READABLE_SCHEMA_VERSIONS).
SCHEMA_VERSION = "2"
READABLE_SCHEMA_VERSIONS = ("1", "2")
SCHEMA_VERSION_KEY = b"chatsift.schema_version"
KIND_KEY = b"chatsift.kind"

TURN_TYPE = pa.struct(
    [
        pa.field("role", pa.string(), nullable=False),
        pa.field("content", pa.string(), nullable=False),
        pa.field("source_role", pa.string(), nullable=False),
        pa.field("weight", pa.float32(), nullable=True),
    ]
)

PROVENANCE_TYPE = pa.struct(
    [
        pa.field("input_file", pa.string(), nullable=False),
        pa.field("byte_offset", pa.int64(), nullable=True),
        pa.field("page_id", pa.string(), nullable=True),
        pa.field("record_index", pa.int64(), nullable=True),
        pa.field("content_hash", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=True),
        pa.field("fetched_at", pa.string(), nullable=True),
    ]
)


def _with_kind(fields: list[pa.Field], kind: str) -> pa.Schema:
    return pa.schema(fields, metadata={SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode(), KIND_KEY: kind.encode()})


CONVERSATION_SCHEMA = _with_kind(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=True),
        pa.field("title", pa.string(), nullable=True),
        pa.field("turns", pa.list_(pa.field("item", TURN_TYPE, nullable=False)), nullable=False),
        pa.field("parent_id", pa.string(), nullable=True),
        pa.field("split_index", pa.int32(), nullable=True),
        pa.field("provenance", PROVENANCE_TYPE, nullable=False),
    ],
    "conversations",
)

LEDGER_SCHEMA = _with_kind(
    [
        pa.field("conversation_id", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
        pa.field("input_file", pa.string(), nullable=True),
        pa.field("byte_offset", pa.int64(), nullable=True),
        pa.field("record_index", pa.int64(), nullable=True),
        pa.field("duplicate_of", pa.string(), nullable=True),
        pa.field("scope", pa.string(), nullable=False),
    ],
    "ledger",
)

# Which records a global stage (exact or near dedupe) removes, by position: part index and row.
REMOVALS_SCHEMA = _with_kind(
    [
        pa.field("part", pa.int32(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("duplicate_of", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
    ],
    "removals",
)


# keep_rank's components verbatim (curation.dedupe.common.keep_rank), so sorting them ascending,
# then part and row for records that tie (a repeated id), orders records exactly as keep_rank does.
RANKED_RECORD_FIELDS = [
    pa.field("part", pa.int32(), nullable=False),
    pa.field("row", pa.int32(), nullable=False),
    pa.field("id", pa.string(), nullable=False),
    pa.field("rank_gpt4", pa.int8(), nullable=False),  # 0 for GPT-4, 1 otherwise
    pa.field("rank_turns", pa.int32(), nullable=False),  # minus the number of turns
    pa.field("rank_chars", pa.int64(), nullable=False),  # minus the number of characters
]

# dedupe_exact's keys, one row per conversation.
EXACT_KEYS_SCHEMA = pa.schema(
    [
        *RANKED_RECORD_FIELDS,
        pa.field("full_hash", pa.string(), nullable=False),
        pa.field("user_hash", pa.string(), nullable=True),
        pa.field("prefix_hashes", pa.list_(pa.field("item", pa.string(), nullable=False)), nullable=False),
    ]
)

# dedupe_minhash's signatures, one row per conversation. band_hashes is empty for a conversation
# without words: an empty set has no MinHash, and all empty records would otherwise collide.
MINHASH_SIGNATURE_SCHEMA = _with_kind(
    [
        *RANKED_RECORD_FIELDS,
        pa.field("band_hashes", pa.list_(pa.field("item", pa.uint64(), nullable=False)), nullable=False),
    ],
    "minhash_signatures",
)


# Benchmark items as read from their files, one row per question or reference answer.
BENCHMARK_ITEMS_SCHEMA = _with_kind(
    [
        pa.field("benchmark", pa.string(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
    ],
    "benchmark_items",
)


def embedding_cache_schema(dim: int) -> pa.Schema:
    """The embedding cache: one row per distinct text, keyed by blake2b-128 of its UTF-8 bytes."""
    return _with_kind(
        [
            pa.field("text_hash", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.field("item", pa.float32(), nullable=False), dim), nullable=False),
        ],
        "embedding_cache",
    )


_SPAN = pa.list_(pa.field("item", pa.int32(), nullable=False), 2)
_SPANS = pa.list_(pa.field("item", _SPAN, nullable=False))

# Every checked turn's best matches and what was done with it (schemas.contamination.TurnFinding).
FINDINGS_SCHEMA = _with_kind(
    [
        pa.field("conversation_id", pa.string(), nullable=False),
        pa.field("input_file", pa.string(), nullable=False),
        pa.field("record_index", pa.int64(), nullable=True),
        pa.field("turn_index", pa.int32(), nullable=False),
        pa.field("role", pa.string(), nullable=False),
        pa.field("best_benchmark", pa.string(), nullable=True),
        pa.field("best_item_id", pa.string(), nullable=True),
        pa.field("best_score", pa.float32(), nullable=False),
        pa.field("best_unit", pa.string(), nullable=False),
        pa.field("ngram_benchmark", pa.string(), nullable=True),
        pa.field("ngram_item_id", pa.string(), nullable=True),
        pa.field("ngram_coverage", pa.float32(), nullable=False),
        pa.field("fuzzy_item_id", pa.string(), nullable=True),
        pa.field("fuzzy_benchmark", pa.string(), nullable=True),
        pa.field("fuzzy_containment", pa.float32(), nullable=False),
        pa.field("rephrase_benchmark", pa.string(), nullable=True),
        pa.field("rephrase_item_id", pa.string(), nullable=True),
        pa.field("rephrase_score", pa.float32(), nullable=False),
        pa.field("rephrase_anchor_share", pa.float32(), nullable=False),
        pa.field("rephrase_view", pa.string(), nullable=True),
        pa.field("flagged", pa.bool_(), nullable=False),
        pa.field("category", pa.string(), nullable=True),
        pa.field("matched_benchmark", pa.string(), nullable=True),
        pa.field("matched_item_id", pa.string(), nullable=True),
        pa.field("matched_score", pa.float32(), nullable=False),
        pa.field("decision", pa.string(), nullable=True),
        pa.field("action", pa.string(), nullable=False),
        pa.field("turn_text", pa.string(), nullable=True),
        pa.field("turn_spans", _SPANS, nullable=False),
        pa.field("item_spans", _SPANS, nullable=False),
    ],
    "contamination_findings",
)
