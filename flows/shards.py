"""The `shards` stage (curate's last; the `build-shards` flow's only one): tokenize each part with the chat
template, then pack and write the shards."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from prefect import flow, task

from curation.parquet import read_conversations_parquet, read_tokenized, write_ledger, write_tokenized
from curation.runs.stage_reports import merge_stage_reports, stage_report
from curation.shards.export import export_shards
from curation.shards.pack import PACK, with_unique_ids
from curation.shards.tokenization import TOKENIZE, ConversationEncoder
from curation.shards.write import WRITE_SHARDS, chat_template_info, tokenizer_info
from flows.execution import publish_failure, run_logger, run_parts, run_step
from flows.parts import PartResult, write_part
from flows.resources import check_tokenizer, part_encoder, template_for, tokenizer_config_for, tokenizer_for
from flows.run_files import publish_file_link
from flows.stage_cache import cached_part
from schemas import Conversation, StageReport
from schemas.config import CurationConfig
from schemas.errors import InputError
from schemas.files import atomic_write_text
from schemas.run_layout import RunPaths, conversation_parts, new_run_id, part_name
from schemas.shards import EXPORT_MANIFEST_NAME, MANIFEST_NAME, UNPACKED_ONLY_EXPORTS, ExportManifest


def _tokenize(
    part: str,
    paths: RunPaths,
    config: CurationConfig,
    encoder: ConversationEncoder,
    convs: list[Conversation] | None = None,
) -> PartResult:
    started = time.perf_counter()
    if convs is None:
        convs = read_conversations_parquet(Path(part))
    tokenized, dropped = TOKENIZE.call(convs, config=config, encoder=encoder)
    report = stage_report(
        "tokenize", inputs=len(convs), kept=len(tokenized), dropped=dropped, seconds=time.perf_counter() - started
    )
    return write_part(paths, "tokenize", part, tokenized, dropped, [report], write=write_tokenized)


def tokenized_part(
    part: str,
    paths: RunPaths,
    config: CurationConfig,
    encoder: ConversationEncoder | None = None,
    convs: list[Conversation] | None = None,
) -> PartResult:
    """One conversation part tokenized with the chat template, with `encoder` where split filled
    one for this part, and `convs` where split has the part's conversations in memory (what it
    wrote to `part`); cached on the part's content, the tokenizer and the template."""
    return cached_part(
        TOKENIZE,
        paths=paths,
        config=config,
        inputs=[(part_name(part), Path(part))],
        compute=lambda: _tokenize(part, paths, config, encoder or part_encoder(config), convs),
    )


@task(name="tokenize-part")
def tokenize_part(part: str, paths: RunPaths, config: CurationConfig) -> PartResult:
    """Tokenize one part with the chat template; cached on its content, the tokenizer and the template."""
    return tokenized_part(part, paths, config)


@task(name="pack-and-write-shards-global")
def pack_and_write_global(tokenized_parts: list[str], paths: RunPaths, config: CurationConfig) -> StageReport:
    """Run-wide: pack every tokenized conversation of the run and write the shards and manifest."""
    started = time.perf_counter()
    tokenized = with_unique_ids([t for part in tokenized_parts for t in read_tokenized(Path(part))])
    rows, dropped, packing = PACK.call(tokenized, config=config)
    tokenizer, template = tokenizer_for(config.tokenizer.spec), template_for(config)
    manifest = WRITE_SHARDS.call(
        rows,
        paths.shards_dir,
        config=config,
        tokenizer_info=tokenizer_info(
            tokenizer,
            config.tokenizer.spec,
            template=template,
            tokenizer_config=tokenizer_config_for(config.tokenizer.spec),
        ),
        template=config.shards.template,
        chat_template=chat_template_info(tokenizer, template),
        run_id=paths.run_id,
        config_hash=config.config_hash(),
        truncated=packing.truncated,
    )
    write_ledger(paths.ledger_part("pack", "00000"), dropped)
    run_logger().info(
        "pack: %d conversations → %d rows of ≤%d tokens, efficiency %.2f%% (lower bound %d rows)",
        manifest.total_conversations,
        packing.rows,
        config.shards.max_seq_len,
        100 * packing.efficiency,
        packing.lower_bound_rows,
    )
    return stage_report(
        "pack",
        inputs=len(tokenized),
        kept=manifest.total_conversations,
        dropped=dropped,
        changed={"truncated": packing.truncated},
        seconds=time.perf_counter() - started,
    )


def shards_stage(
    parts: list[str], paths: RunPaths, config: CurationConfig, *, tokenized: list[PartResult] | None = None
) -> tuple[str, list[StageReport]]:
    """Curated conversation parts → packed (or one-per-row) Parquet shards + manifest.json; `tokenized`:
    the parts tokenized already (curate's split stage does it, with the encodings it counted with)."""
    results = tokenized if tokenized is not None else run_parts(tokenize_part, [(p, paths, config) for p in parts])
    (tokenize_report,) = merge_stage_reports([r.report for r in results]) or [
        stage_report("tokenize", inputs=0, kept=0, dropped=[])
    ]
    pack_report = run_step(pack_and_write_global, [r.output for r in results], paths, config)
    return str(paths.shards_dir / MANIFEST_NAME), [tokenize_report, pack_report]


@task(name="export-shards")
def export_shards_task(shards_dir: str, out_dir: str, fmt: str, layout: str, conversations: str) -> ExportManifest:
    return export_shards(Path(shards_dir), Path(out_dir), fmt=fmt, layout=layout, conversations_dir=Path(conversations))


def write_configured_exports(
    paths: RunPaths, config: CurationConfig, *, conversations: Path | None = None
) -> dict[str, str]:
    """The published shards written in each format of [shards] exports; the folder of each. `conversations`:
    the text the messages export reads (default: the run's conversations/)."""
    folders: dict[str, str] = {}
    for fmt in config.shards.exports:
        folder = paths.export_dir(fmt)
        shutil.rmtree(folder, ignore_errors=True)  # an earlier attempt of this run
        layout = "unpacked" if fmt in UNPACKED_ONLY_EXPORTS else config.shards.export_layout
        source = str(conversations or paths.conversations_dir)
        exported = run_step(export_shards_task, str(paths.shards_dir), str(folder), fmt, layout, source)
        run_logger().info(
            "export %s (%s): %d rows, %d tokens, %d supervised → %s",
            fmt,
            exported.layout,
            exported.rows,
            exported.tokens,
            exported.supervised_tokens,
            folder,
        )
        publish_file_link(
            key=f"shards-export-{fmt}",
            path=folder / EXPORT_MANIFEST_NAME,
            link_text=f"{fmt} export_manifest.json",
            description=f"the shards in {fmt}'s format: {exported.rows} rows, {exported.supervised_tokens} "
            "supervised tokens, as in the shards",
        )
        folders[fmt] = str(folder)
    return folders


@flow(name="build-shards", log_prints=True, on_failure=[publish_failure])
def build_shards_flow(
    conversations: Path,
    out_dir: Path = Path("runs"),
    config: CurationConfig = CurationConfig(),
    run_id: str | None = None,
) -> dict:
    """Tokenize and pack a folder of curated conversation parts (a curate run's conversations/) into shards.

    For a new tokenizer, chat template or sequence length without curating again.
    """
    parts = conversation_parts(Path(conversations))
    if not parts:
        raise InputError(f"{conversations} holds no part-*.parquet: pass a curate run's conversations/ folder")
    check_tokenizer(config)
    paths = RunPaths.create(Path(out_dir), run_id or new_run_id())
    atomic_write_text(paths.config_json, config.model_dump_json(indent=2))
    manifest, (tokenize_report, pack_report) = shards_stage(parts, paths, config)
    exports = write_configured_exports(paths, config, conversations=Path(conversations))
    summary = {
        "run_id": paths.run_id,
        "conversations": tokenize_report.inputs,
        "packed": pack_report.kept,
        "dropped": tokenize_report.dropped + pack_report.dropped,
        "stages": [r.model_dump(mode="json") for r in (tokenize_report, pack_report)],
        "manifest": manifest,
        "ledger": str(paths.ledger_dir),
        **{f"export_{fmt}": folder for fmt, folder in exports.items()},
    }
    atomic_write_text(paths.report_json, json.dumps(summary, indent=2))
    publish_file_link(
        path=manifest,
        link_text="shards manifest.json",
        key="build-shards-manifest",
        description="the training shards' manifest",
    )
    return summary
