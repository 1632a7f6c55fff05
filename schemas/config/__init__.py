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
    """All of a curation run's options."""

    run: RunConfig = RunConfig()
    ingest: IngestConfig = IngestConfig()
    markdown: MarkdownConfig = MarkdownConfig()
    shape: ShapeConfig = ShapeConfig()
    model: ModelConfig = ModelConfig()
    blocked: BlockedConfig = BlockedConfig()
    secrets: SecretsConfig = SecretsConfig()
    language: LanguageConfig = LanguageConfig()
    dedupe_exact: ExactDedupeConfig = ExactDedupeConfig()
    dedupe_minhash: MinHashConfig = MinHashConfig()
    split: SplitConfig = SplitConfig()
    contamination: ContaminationConfig = ContaminationConfig()
    tokenizer: TokenizerConfig = TokenizerConfig()
    shards: ShardsConfig = ShardsConfig()
    scrape: ScrapeConfig = ScrapeConfig()
    # Read by `chatsift finetune` only: it never changes a curated byte, so config_hash leaves it out.
    finetune: FinetuneConfig = FinetuneConfig()

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
