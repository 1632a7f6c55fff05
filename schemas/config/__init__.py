"""Every stage's options and their defaults: one module per stage family, and CurationConfig over them.

A config file (TOML or JSON) maps onto CurationConfig, one table per section ([shape], [split], ...);
unknown keys are errors, so a typo fails before any work starts instead of silently running with a
default. Every field carries a description with its default's source (docs/defaults.md), which
`chatsift config` and the Prefect run form show.
"""

from __future__ import annotations

import hashlib
import json

from schemas.config._base import ConfigSection
from schemas.config.clean import (
    CHATGPT_ERROR_RESPONSES,
    FASTCHAT_BLOCKED_WORDS,
    REFUSAL_PHRASES,
    BlockedConfig,
    LanguageConfig,
    MarkdownConfig,
    ModelConfig,
    SecretsConfig,
    ShapeConfig,
)
from schemas.config.contamination import (
    HUB_BENCHMARK_PRESETS,
    LOCAL_BENCHMARK_PRESETS,
    BenchmarkName,
    BenchmarkSpec,
    ContaminationConfig,
)
from schemas.config.dedupe import ExactDedupeConfig, MinHashConfig
from schemas.config.finetune import LLAMA_LINEAR_PROJECTIONS, FinetuneConfig
from schemas.config.ingest import IngestConfig
from schemas.config.run import EXECUTION_ONLY_RUN_OPTIONS, RunConfig
from schemas.config.scrape import ScrapeConfig
from schemas.config.shards import ChatTemplateName, ShardsConfig, SplitConfig, TokenizerConfig
from schemas.errors import ConfigError

__all__ = [
    "CHATGPT_ERROR_RESPONSES",
    "EXECUTION_ONLY_RUN_OPTIONS",
    "FASTCHAT_BLOCKED_WORDS",
    "HUB_BENCHMARK_PRESETS",
    "LLAMA_LINEAR_PROJECTIONS",
    "LOCAL_BENCHMARK_PRESETS",
    "REFUSAL_PHRASES",
    "BenchmarkName",
    "BenchmarkSpec",
    "BlockedConfig",
    "ChatTemplateName",
    "ConfigSection",
    "ContaminationConfig",
    "CurationConfig",
    "ExactDedupeConfig",
    "FinetuneConfig",
    "IngestConfig",
    "LanguageConfig",
    "MarkdownConfig",
    "MinHashConfig",
    "ModelConfig",
    "RunConfig",
    "ScrapeConfig",
    "SecretsConfig",
    "ShapeConfig",
    "ShardsConfig",
    "SplitConfig",
    "TokenizerConfig",
]


class CurationConfig(ConfigSection):
    """All of a curation run's options: one table of the config file per field ([run], [shape], ...).

    Each section's defaults and their sources are in docs/defaults.md, under the section's name.
    """

    run: RunConfig = RunConfig()
    """[run]: how a run is cut into tasks and where they run (docs/defaults.md#run)."""
    ingest: IngestConfig = IngestConfig()
    """[ingest]: reading input files (docs/defaults.md#ingest)."""
    markdown: MarkdownConfig = MarkdownConfig()
    """[markdown]: assistant turns from ChatGPT HTML to markdown (docs/defaults.md#markdown)."""
    shape: ShapeConfig = ShapeConfig()
    """[shape]: turn order and size (docs/defaults.md#shape)."""
    model: ModelConfig = ModelConfig()
    """[model]: which captured ChatGPT models to keep (docs/defaults.md#model)."""
    blocked: BlockedConfig = BlockedConfig()
    """[blocked]: refusal phrases and ChatGPT error widgets in assistant turns (docs/defaults.md#blocked)."""
    secrets: SecretsConfig = SecretsConfig()
    """[secrets]: API keys, e-mail addresses and phone numbers redacted (docs/defaults.md#secrets)."""
    language: LanguageConfig = LanguageConfig()
    """[language]: the optional language filter (docs/defaults.md#language)."""
    dedupe_exact: ExactDedupeConfig = ExactDedupeConfig()
    """[dedupe_exact]: exact duplicate removal (docs/defaults.md#dedupe_exact)."""
    dedupe_minhash: MinHashConfig = MinHashConfig()
    """[dedupe_minhash]: near-duplicate removal by MinHash LSH (docs/defaults.md#dedupe_minhash)."""
    split: SplitConfig = SplitConfig()
    """[split]: long conversations split at round boundaries (docs/defaults.md#split)."""
    contamination: ContaminationConfig = ContaminationConfig()
    """[contamination]: the check against benchmark items (docs/defaults.md#contamination)."""
    tokenizer: TokenizerConfig = TokenizerConfig()
    """[tokenizer]: the tokenizer (docs/defaults.md#tokenizer)."""
    shards: ShardsConfig = ShardsConfig()
    """[shards]: chat template, packing and the training shards (docs/defaults.md#shards)."""
    scrape: ScrapeConfig = ScrapeConfig()
    """[scrape]: fetching ShareGPT pages (docs/defaults.md#scrape)."""
    # Read by `chatsift finetune` only: it never changes a curated byte, so config_hash leaves it out.
    finetune: FinetuneConfig = FinetuneConfig()
    """[finetune]: fine-tuning on the shards; read by `chatsift finetune` only, so it is not part of config_hash
    (docs/defaults.md#finetune).
    """

    def check_curate_run(self) -> None:
        """Raise a ConfigError naming every pair of options that, though each is valid alone, makes a
        curate run useless or ignores one of them.

        A check of the curate run, not a validator: `chatsift shards build` packs finished
        conversations again for a shorter max_seq_len, where split does not run.
        """
        problems = []
        split, shards, run = self.split, self.shards, self.run
        if split.max_tokens > shards.max_seq_len:
            # A piece longer than a training row is dropped (overlong="drop") or cut mid-answer.
            problems.append(
                f"split.max_tokens={split.max_tokens} is over shards.max_seq_len={shards.max_seq_len}, so pieces "
                f"longer than a training row are {'dropped' if shards.overlong == 'drop' else 'truncated'}: set "
                f"split.max_tokens to at most {shards.max_seq_len}, or shards.max_seq_len to {split.max_tokens}"
            )
        if split.max_tokens <= 2 * split.turn_overhead_tokens:
            problems.append(
                f"split.max_tokens={split.max_tokens} leaves no text in a round: its user and assistant turns cost "
                f"2 x split.turn_overhead_tokens={split.turn_overhead_tokens} tokens alone; raise split.max_tokens"
            )
        if run.task_runner != "dask" and run.dask_address is not None:
            problems.append(
                f'run.dask_address is set but run.task_runner is "{run.task_runner}", which ignores it: set '
                'task_runner = "dask", or remove dask_address'
            )
        if run.task_runner == "dask" and run.max_workers is not None:
            problems.append(
                'run.max_workers sizes the "threads" and "processes" runners only, and run.task_runner is "dask": '
                "remove max_workers (dask_workers sizes a LocalCluster)"
            )
        if problems:
            raise ConfigError("; ".join(problems))

    def config_hash(self) -> str:
        """A stable hash of every option that can change an output, for lineage and the manifest.

        Where tasks run and whether work is cached never changes a byte of output (tests check
        both), so those options are left out: the same data curated on a laptop or a Dask
        cluster carries the same hash.
        """
        data = self.model_dump(mode="json")
        for name in EXECUTION_ONLY_RUN_OPTIONS:
            data["run"].pop(name)
        data.pop("finetune")
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()
