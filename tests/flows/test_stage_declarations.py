"""Every stage reads only the config its declaration names, so its cache key covers all it depends on.

Each stage runs on the demo inputs exactly as its flow runs it (`Stage.call` with the run's whole
config, and the heavy objects the flow builds from that config). Then every option that the
declaration does not cover is changed, one at a time, to another valid value, and the stage runs
again: its output and its cache key must not move. A stage that read an undeclared option would
serve stale output from the stage cache after that option changed; the planted-bug test shows
the check catches one.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from curation.clean.batch import CLEAN
from curation.contamination.benchmarks import read_benchmarks
from curation.contamination.check import BENCHMARK_INDEX, CONTAMINATION
from curation.contamination.report import CONTAMINATION_REPORT, write_findings
from curation.dedupe.exact import EXACT_DUPLICATES, EXACT_KEYS
from curation.dedupe.minhash import MINHASH_SIGNATURES, NEAR_DUPLICATES, minhash_signatures
from curation.ingest.read import INGEST
from curation.parquet import atomic_write_table, write_conversations
from curation.shards.pack import PACK, with_unique_ids
from curation.shards.split import SPLIT
from curation.shards.tokenization import TOKENIZE
from curation.shards.write import WRITE_SHARDS, tokenizer_info
from curation.stage import ConfigSections, Stage
from demo.inputs import DEMO_CONFIG, write_demo_inputs
from flows.resources import part_encoder, tokenizer_for
from schemas import Conversation
from schemas.arrow import MINHASH_SIGNATURE_SCHEMA
from schemas.config import BenchmarkSpec, CurationConfig
from schemas.config.contamination import RephraseRule
from schemas.files import file_digest

# Options whose type gives no other valid value by itself (None, nested specs, paired constraints).
EXPLICIT_ALTERNATIVES: dict[str, Any] = {
    "run.cache_dir": "/tmp/chatsift-other-cache",
    "run.max_workers": 3,
    "run.dask_address": "tcp://127.0.0.1:1",
    "model.allowed_models": ("Model: GPT-4",),
    "language.allowed": ("en",),
    "contamination.presets": ("gsm8k",),
    "contamination.presets_dir": "/data/benchmarks",
    "contamination.benchmarks": (BenchmarkSpec(name="other", path="other.jsonl", text_fields=("q",)),),
    "contamination.decisions_file": "decisions.csv",
    "contamination.roles": ("user", "assistant"),
    "contamination.remove_categories": ("near_verbatim",),
    "contamination.rephrase_rules": (RephraseRule(benchmark="gsm8k", min_score=0.75, min_anchor_share=0.5),),
    "shards.exports": ("axolotl",),
    "scrape.url_template": "https://sharegpt.com/share/{id}",
    "scrape.allowed_hosts": ("https://www.sharegpt.com",),
    "finetune.learning_rate": 1e-4,
    "finetune.max_steps": 3,
    "finetune.lora_target_modules": ("q_proj",),
}


def _candidates(value: Any, annotation: Any) -> list[Any]:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value * 2, value - 1]
    if isinstance(value, float):
        return [value * 0.9, value + 0.05, value - 0.05, value * 1.1]
    if typing.get_origin(annotation) is typing.Literal:
        return [a for a in typing.get_args(annotation) if a != value]
    if isinstance(value, str):
        return [value + "-other"]
    if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
        return [value[:-1], (*value, "other")] if value else [("other",)]
    return []


def changed_configs(base: CurationConfig) -> Iterator[tuple[str, CurationConfig]]:
    """(dotted option, a valid config differing from `base` in that option alone) for every option."""
    data = base.model_dump(mode="python")
    for section in CurationConfig.model_fields:
        model = getattr(base, section)
        for name, field in type(model).model_fields.items():
            path = f"{section}.{name}"
            value = getattr(model, name)
            options = (
                [EXPLICIT_ALTERNATIVES[path]] if path in EXPLICIT_ALTERNATIVES else _candidates(value, field.annotation)
            )
            for option in options:
                changed = {**data, section: {**data[section], name: option}}
                try:
                    config = CurationConfig.model_validate(changed)
                except ValueError:
                    continue
                if getattr(getattr(config, section), name) != value:
                    yield path, config
                    break
            else:
                raise AssertionError(f"no other valid value for {path}: add one to EXPLICIT_ALTERNATIVES")


@dataclass(frozen=True)
class Case:
    """Stages that run together on the demo data, and how their flow runs them."""

    stages: tuple[Stage[Any], ...]
    run: Callable[[CurationConfig], Any]


def _dumps(records: Any) -> list[Any]:
    return [r.model_dump(mode="json") for r in records]


def _report_counts(reports: Any) -> list[Any]:
    return [r.model_dump(exclude={"seconds"}) for r in reports]


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory, embed_units: Any) -> dict[str, Any]:
    """Every declared stage, run by the test as its flow runs it, on the demo inputs."""
    root = tmp_path_factory.mktemp("stages")
    base = DEMO_CONFIG
    files = write_demo_inputs(root / "in")
    records = list(INGEST.call(files, config=base))
    convs = [r for r in records if isinstance(r, Conversation)]
    cleaned, _, _ = CLEAN.call(convs, config=base)
    part = root / "part-00000.parquet"
    write_conversations(part, cleaned)
    signatures = root / "signatures-00000.parquet"
    atomic_write_table(
        signatures, minhash_signatures(cleaned, part=0, config=base.dedupe_minhash), schema=MINHASH_SIGNATURE_SCHEMA
    )
    keys = pl.from_arrow(EXACT_KEYS.call(cleaned, part=0, config=base))

    def tokenizer(config: CurationConfig) -> Any:
        return tokenizer_for(config.tokenizer.spec)

    split_kept = SPLIT.call(cleaned, config=base, count_tokens=part_encoder(base).content_token_counts).kept
    tokenized = with_unique_ids(TOKENIZE.call(split_kept, config=base, encoder=part_encoder(base))[0])

    def contamination(config: CurationConfig) -> Any:
        # The flow's run-wide step: the benchmark items and the index from this config, then the check.
        items = read_benchmarks(
            config.contamination.benchmark_specs(), index_answers=config.contamination.index_answers
        )
        index = BENCHMARK_INDEX.call(items, embed_units([i.text for i in items]).vectors, config=config, gpu=False)
        result = CONTAMINATION.call(cleaned, config=config, index=index, embed=embed_units, decisions={})
        findings = root / f"findings-{len(list(root.glob('findings-*')))}.parquet"
        write_findings(findings, result.findings)
        report = CONTAMINATION_REPORT.call(
            [findings],
            items,
            config=config,
            run_id="r",
            created_at="t",
            device="cpu",
            conversations_checked=len(cleaned),
            decisions=[],
            decisions_applied={},
        )
        # How many units came from the embedding cache says nothing about the result: left out.
        changed = {k: v for k, v in result.changed.items() if k not in ("units_embedded", "units_from_cache")}
        return _dumps(result.kept), _dumps(result.dropped), changed, _dumps(result.findings), report.model_dump()

    def pack_and_write(config: CurationConfig) -> Any:
        rows, dropped, packing = PACK.call(tokenized, config=config)
        out = root / f"shards-{len(list(root.glob('shards-*')))}"
        # The manifest's config_hash covers the whole config on purpose (it names the run's
        # options); it is given here as a constant, as the flow gives config.config_hash().
        manifest = WRITE_SHARDS.call(
            rows,
            out,
            config=config,
            tokenizer_info=tokenizer_info(tokenizer(config), config.tokenizer.spec),
            template=config.shards.template,
            run_id="r",
            config_hash="h",
        )
        return (
            _dumps(dropped),
            packing.model_dump(),
            manifest.model_dump(),
            [file_digest(f) for f in sorted(out.glob("*"))],
        )

    return {
        "ingest": Case((INGEST,), lambda c: _dumps(INGEST.call(files, config=c))),
        "clean": Case(
            (CLEAN,),
            lambda c: (lambda k, d, r: (_dumps(k), _dumps(d), _report_counts(r)))(*CLEAN.call(convs, config=c)),
        ),
        "exact keys": Case((EXACT_KEYS,), lambda c: EXACT_KEYS.call(cleaned, part=0, config=c).to_pylist()),
        "exact duplicates": Case((EXACT_DUPLICATES,), lambda c: EXACT_DUPLICATES.call(keys, config=c).rows()),
        "minhash signatures": Case(
            (MINHASH_SIGNATURES,), lambda c: MINHASH_SIGNATURES.call(cleaned, part=0, config=c).to_pylist()
        ),
        "near duplicates": Case(
            (NEAR_DUPLICATES,), lambda c: NEAR_DUPLICATES.call([str(signatures)], [str(part)], config=c).rows()
        ),
        "contamination": Case((BENCHMARK_INDEX, CONTAMINATION, CONTAMINATION_REPORT), contamination),
        "split": Case(
            (SPLIT,),
            lambda c: (lambda r: (_dumps(r.kept), _dumps(r.dropped), r.changed))(
                SPLIT.call(cleaned, config=c, count_tokens=part_encoder(c).content_token_counts)
            ),
        ),
        "tokenize": Case(
            (TOKENIZE,),
            lambda c: [_dumps(x) for x in TOKENIZE.call(split_kept, config=c, encoder=part_encoder(c))],
        ),
        "pack and write": Case((PACK, WRITE_SHARDS), pack_and_write),
        "cleaned": cleaned,
    }


def undeclared_dependencies(case: Case, base: CurationConfig) -> list[str]:
    """The options outside every declaration of `case` whose change moves its output or a cache key."""
    expected = case.run(base)
    keys = [s.config_key(base) for s in case.stages]
    covered = {path for s in case.stages for path in s.keyed_options(base)}
    moved = []
    for path, config in changed_configs(base):
        if path in covered:
            continue
        if case.run(config) != expected or [s.config_key(config) for s in case.stages] != keys:
            moved.append(path)
    return moved


STAGE_CASES = [
    "ingest",
    "clean",
    "exact keys",
    "exact duplicates",
    "minhash signatures",
    "near duplicates",
    "contamination",
    "split",
    "tokenize",
    "pack and write",
]


@pytest.mark.slow
@pytest.mark.parametrize("name", STAGE_CASES)
def test_a_stage_depends_only_on_the_options_it_declares(name: str, cases: dict[str, Any]) -> None:
    case = cases[name]
    assert case.run(DEMO_CONFIG) == case.run(DEMO_CONFIG), "the stage must be deterministic for this check"
    assert undeclared_dependencies(case, DEMO_CONFIG) == []


def test_every_option_has_another_valid_value() -> None:
    changed = dict(changed_configs(DEMO_CONFIG))
    every = {f"{s}.{n}" for s, f in CurationConfig.model_fields.items() for n in f.annotation.model_fields}
    assert set(changed) == every


@pytest.mark.slow
def test_the_check_catches_a_stage_that_reads_an_undeclared_option(cases: dict[str, Case]) -> None:
    # Planted bug: a signature stage whose output depends on the threshold, which its declaration
    # (and so its cache key) leaves out.
    def leaky_signatures(convs: list[Conversation], *, part: int, config: Any) -> pa.Table:
        table = MINHASH_SIGNATURES.run(convs, part=part, config=config)
        return table.filter(pa.array([config.threshold < 0.75] * table.num_rows))

    leaky = Stage("leaky", leaky_signatures, config="dedupe_minhash", only_fields=MINHASH_SIGNATURES.only_fields)
    cleaned = cases["cleaned"]
    case = Case((leaky,), lambda c: leaky.call(cleaned, part=0, config=c).to_pylist())
    assert undeclared_dependencies(case, DEMO_CONFIG) == ["dedupe_minhash.threshold"]


def test_sections_a_stage_did_not_declare_cannot_be_read() -> None:
    sections = ConfigSections(CurationConfig(), ("shape", "model"), "clean")
    assert sections.shape.min_turns == 2
    with pytest.raises(AttributeError, match="stage 'clean' reads only \\['shape', 'model'\\]: add 'split'"):
        _ = sections.split
    with pytest.raises(AttributeError, match="read-only"):
        sections.shape = None  # type: ignore[misc]
