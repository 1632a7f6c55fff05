"""Reading input files: [ingest]."""

from __future__ import annotations

from pydantic import Field

from schemas.config._base import ConfigSection


class IngestConfig(ConfigSection):
    """Reading input files."""

    # The largest of the 3003 real ShareGPT conversations is 94 KB of JSON and the median
    # 8 KB; 8 MiB is ~90x the largest, so only broken or hostile records hit it.
    max_record_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    # Streaming read size: memory per reader is about one chunk plus the largest record.
    read_chunk_bytes: int = Field(default=1024 * 1024, gt=0)
