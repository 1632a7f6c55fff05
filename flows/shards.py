"""The `shards` flow: tokenize each part with the chat template, then pack and write the shards."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact
from tokenizers import Tokenizer

from curation.chat_templates import ChatTemplate, chat_template_for
from curation.io import atomic_write_text, read_conversations_parquet, read_tokenized, write_ledger, write_tokenized
from curation.pack import pack_conversations, with_unique_ids
from curation.reports import merge_stage_reports, stage_report
from curation.shards import MANIFEST_NAME, write_shards
from curation.tokenization import tokenize_conversations
from flows.paths import RunPaths, new_run_id, part_name
from flows.resources import tokenizer_config_for, tokenizer_for
from flows.stage_cache import reuse_or_compute_part
from schemas import StageReport
from schemas.config import CurationConfig
from schemas.shards import TokenizerInfo


def template_for(config: CurationConfig) -> ChatTemplate:
    return chat_template_for(config.shards.template, tokenizer_config=tokenizer_config_for(config.tokenizer.spec))


def tokenizer_info(tokenizer: Tokenizer, spec: str) -> TokenizerInfo:
    """What the manifest records of the tokenizer: enough to refuse shards made with another one."""
    serialized = tokenizer.to_str().encode("utf-8")
    special = {t.content: i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special}
    return TokenizerInfo(
        name=spec,
        sha256=hashlib.sha256(serialized).hexdigest(),
        vocab_size=tokenizer.get_vocab_size(),
        special_ids=dict(sorted(special.items(), key=lambda kv: kv[1])),
    )


def _tokenize(part: str, paths: RunPaths, config: CurationConfig) -> dict:
    started = time.perf_counter()
    convs = read_conversations_parquet(Path(part))
    tokenized, dropped = tokenize_conversations(
        convs, tokenizer=tokenizer_for(config.tokenizer.spec), template=template_for(config)
    )
    out = paths.stage_part("tokenize", part_name(part))
    write_tokenized(out, tokenized)
    ledger = paths.ledger_part("tokenize", part_name(part))
    write_ledger(ledger, dropped)
    report = stage_report(
        "tokenize", inputs=len(convs), kept=len(tokenized), dropped=dropped, seconds=time.perf_counter() - started
    )
    tokens = sum(len(t.input_ids) for t in tokenized)
    return {"part": str(out), "ledger": str(ledger), "report": report, "tokens": tokens}


@task(name="tokenize-part")
def tokenize_part(part: str, index: int, paths: RunPaths, config: CurationConfig) -> dict:
    """Tokenize one part with the chat template; cached on its content and the tokenizer and shard options."""
    return reuse_or_compute_part(
        paths.cache,
        "tokenize",
        part,
        paths.root,
        lambda: _tokenize(part, paths, config),
        config=(config.tokenizer, config.shards),
    )


@task(name="pack-and-write-shards")
def pack_and_write(tokenized_parts: list[str], paths: RunPaths, config: CurationConfig) -> dict:
    """Pack every tokenized conversation of the run and write the shards and manifest."""
    started = time.perf_counter()
    tokenized = with_unique_ids([t for part in tokenized_parts for t in read_tokenized(Path(part))])
    rows, dropped, packing = pack_conversations(tokenized, config=config.shards)
    manifest = write_shards(
        rows,
        paths.shards_dir,
        config=config.shards,
        tokenizer_info=tokenizer_info(tokenizer_for(config.tokenizer.spec), config.tokenizer.spec),
        template=config.shards.template,
        run_id=paths.run_id,
        config_hash=config.config_hash(),
        truncated=packing.truncated,
    )
    write_ledger(paths.ledger_part("pack", "00000"), dropped)
    report = stage_report(
        "pack",
        inputs=len(tokenized),
        kept=manifest.total_conversations,
        dropped=dropped,
        changed={"truncated": packing.truncated},
        seconds=time.perf_counter() - started,
    )
    get_run_logger().info(
        "pack: %d conversations → %d rows of ≤%d tokens, efficiency %.2f%% (lower bound %d rows)",
        manifest.total_conversations,
        packing.rows,
        config.shards.max_seq_len,
        100 * packing.efficiency,
        packing.lower_bound_rows,
    )
    return {"manifest": str(paths.shards_dir / MANIFEST_NAME), "report": report}


@flow(name="shards")
def shards_flow(parts: list[str], paths: RunPaths, config: CurationConfig) -> tuple[str, list[StageReport]]:
    """Curated conversation parts → packed (or one-per-row) Parquet shards + manifest.json."""
    results = [f.result() for f in [tokenize_part.submit(p, i, paths, config) for i, p in enumerate(parts)]]
    (tokenize_report,) = merge_stage_reports([r["report"] for r in results]) or [
        stage_report("tokenize", inputs=0, kept=0, dropped=[])
    ]
    packed = pack_and_write([r["part"] for r in results], paths, config)
    return packed["manifest"], [tokenize_report, packed["report"]]


@flow(name="build-shards", log_prints=True)
def build_shards_flow(
    conversations: Path,
    out_dir: Path = Path("runs"),
    config: CurationConfig = CurationConfig(),
    run_id: str | None = None,
) -> dict:
    """Tokenize and pack a folder of curated conversation parts (a curate run's conversations/) into shards.

    For a new tokenizer, chat template or sequence length without curating again.
    """
    from flows.config_file import ConfigError, check_tokenizer

    parts = sorted(str(p) for p in Path(conversations).glob("part-*.parquet"))
    if not parts:
        raise ConfigError(f"{conversations} holds no part-*.parquet: pass a curate run's conversations/ folder")
    check_tokenizer(config)
    paths = RunPaths.create(Path(out_dir), run_id or new_run_id())
    atomic_write_text(paths.config_json, config.model_dump_json(indent=2))
    manifest, (tokenize_report, pack_report) = shards_flow(parts, paths, config)
    summary = {
        "run_id": paths.run_id,
        "conversations": tokenize_report.inputs,
        "packed": pack_report.kept,
        "dropped": tokenize_report.dropped + pack_report.dropped,
        "manifest": manifest,
        "ledger": str(paths.ledger_dir),
    }
    atomic_write_text(paths.report_json, json.dumps(summary, indent=2))
    create_link_artifact(
        link=Path(manifest).resolve().as_uri(),
        link_text="shards manifest.json",
        key="build-shards-manifest",
        description="the training shards' manifest",
    )
    return summary
