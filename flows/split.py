"""The `split` stage of curate: long conversations cut into pieces of whole rounds that fit max_tokens,
then tokenized in the same task with the encodings split counted with (the tokenize stage's output)."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import task

from curation.parquet import read_conversations_parquet
from curation.runs.stage_reports import merge_stage_reports, stage_report
from curation.shards.split import SPLIT
from curation.shards.tokenization import ConversationEncoder
from flows.execution import run_parts
from flows.parts import PartResult, write_part
from flows.resources import part_encoder
from flows.shards import tokenized_part
from flows.stage_cache import cached_part
from schemas import Conversation, StageReport
from schemas.config import CurationConfig
from schemas.run_layout import RunPaths, part_name


def _split(
    part: str, paths: RunPaths, config: CurationConfig, encoder: ConversationEncoder, kept: list[Conversation]
) -> PartResult:
    """Split one part; what it keeps is also appended to `kept`, for tokenize to take without reading it back."""
    started = time.perf_counter()
    convs = read_conversations_parquet(Path(part))
    result = SPLIT.call(convs, config=config, count_tokens=encoder.content_token_counts)
    kept.extend(result.kept)
    report = stage_report(
        "split",
        inputs=len(convs),
        # A conversation kept whole or as pieces counts once; its pieces are the rows.
        kept=sum(1 for c in result.kept if not c.split_index),
        dropped=result.dropped,
        changed=result.changed,
        seconds=time.perf_counter() - started,
        rows_out=len(result.kept),
    )
    return write_part(paths, "split", part, result.kept, result.dropped, [report])


# Retried once: the only transient failure here is loading the tokenizer.
@task(name="split-part", retries=1)
def split_part(
    part: str, paths: RunPaths, shards_paths: RunPaths, config: CurationConfig
) -> tuple[PartResult, PartResult]:
    """Split one part's long conversations, then tokenize what it keeps with the same encoder, so each
    text is encoded once for both (`shards_paths`: where the tokenize stage writes); each step is
    cached on its input's content and its options, the tokenizer and the chat template among them."""
    encoder = part_encoder(config)
    kept: list[Conversation] = []  # stays empty when split's output comes from the stage cache
    split = cached_part(
        SPLIT,
        paths=paths,
        config=config,
        inputs=[(part_name(part), Path(part))],
        compute=lambda: _split(part, paths, config, encoder, kept),
    )
    return split, tokenized_part(split.output, shards_paths, config, encoder, kept or None)


def split_stage(
    parts: list[str], paths: RunPaths, shards_paths: RunPaths, config: CurationConfig
) -> tuple[list[str], StageReport, list[PartResult]]:
    """Split every part (a conversation that fits passes unchanged) and tokenize the result: the parts,
    the split report, and the tokenize stage's part results for shards_stage."""
    results = run_parts(split_part, [(p, paths, shards_paths, config) for p in parts])
    (report,) = merge_stage_reports([split.report for split, _ in results]) or [
        stage_report("split", inputs=0, kept=0, dropped=[], rows_out=0)
    ]
    return [split.output for split, _ in results], report, [tokenized for _, tokenized in results]
