"""Reading input files: [ingest]."""

from __future__ import annotations

from pydantic import Field

from schemas.config._base import ConfigSection


class IngestConfig(ConfigSection):
    """[ingest]: reading input files (saved pages and JSON dumps) into conversation records."""

    max_record_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    """A record larger than this many bytes is dropped (record_too_large). 8 MiB is ~90x the largest of the 3003 real
    ShareGPT conversations (94 KB), so only broken or hostile records hit it (docs/defaults.md#ingest).
    """
    max_json_depth: int = Field(default=64, ge=3, le=512)
    """A record whose JSON nests deeper than this (arrays and objects, counted from the record itself) is dropped
    (too_deeply_nested) before it is parsed. Real ShareGPT records are 3 deep and a saved page's __NEXT_DATA__ 6;
    64 is .NET System.Text.Json's default limit, far below the ~1,000 where Python's json fails
    (docs/defaults.md#ingest).
    """
    read_chunk_bytes: int = Field(default=1024 * 1024, gt=0)
    """Bytes read at a time while streaming an input file; a reader holds about one chunk plus the largest record. 1 MiB
    keeps a reader's memory small (docs/defaults.md#ingest).
    """
