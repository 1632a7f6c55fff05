"""The per-record cleaning stages, applied to one batch in a fixed, explicit order."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from curation.clean.filters import (
    apply_blocked_phrases,
    keep_allowed_languages,
    keep_allowed_models,
    repair_shape,
)
from curation.clean.markdown import convert_assistant_html
from curation.clean.secrets import redact_secrets
from curation.runs.stage_reports import stage_report
from curation.stage import Stage
from schemas import Conversation, Dropped, StageReport, StageResult
from schemas.config import BlockedConfig, LanguageConfig, MarkdownConfig, ModelConfig, SecretsConfig, ShapeConfig


class CleanOptions(Protocol):
    """The sections clean_batch reads: a CurationConfig, or the ConfigSections the flow passes."""

    @property
    def model(self) -> ModelConfig: ...
    @property
    def markdown(self) -> MarkdownConfig: ...
    @property
    def shape(self) -> ShapeConfig: ...
    @property
    def blocked(self) -> BlockedConfig: ...
    @property
    def language(self) -> LanguageConfig: ...
    @property
    def secrets(self) -> SecretsConfig: ...


def clean_batch(
    convs: Sequence[Conversation], *, config: CleanOptions
) -> tuple[list[Conversation], list[Dropped], list[StageReport]]:
    """Run model → markdown → shape → blocked → language → secrets over one batch.

    The cheap model filter runs first so no HTML is converted for conversations it drops;
    secrets are redacted last, on what is kept, so later dedupe sees redacted text.
    """
    steps: list[tuple[str, Callable[[Sequence[Conversation]], StageResult]]] = [
        ("model", lambda cs: keep_allowed_models(cs, config=config.model)),
        ("markdown", lambda cs: convert_assistant_html(cs, config=config.markdown)),
        ("shape", lambda cs: repair_shape(cs, config=config.shape)),
        ("blocked", lambda cs: apply_blocked_phrases(cs, config=config.blocked)),
        ("language", lambda cs: keep_allowed_languages(cs, config=config.language)),
        ("secrets", lambda cs: redact_secrets(cs, config=config.secrets)),
    ]
    current = list(convs)
    dropped: list[Dropped] = []
    reports: list[StageReport] = []
    for stage, run in steps:
        started = time.perf_counter()
        result = run(current)
        reports.append(
            stage_report(
                stage,
                inputs=len(current),
                kept=len(result.kept),
                dropped=result.dropped,
                changed=result.changed,
                seconds=time.perf_counter() - started,
            )
        )
        dropped.extend(result.dropped)
        current = result.kept
    return current, dropped, reports


CLEAN = Stage("clean", clean_batch, config=("model", "markdown", "shape", "blocked", "language", "secrets"))
