"""A stage's declaration: its name, its function and the config it reads, written once beside the function.

The flows run a stage only through its declaration: `stage.call(data, config=config, ...)` hands the
function the declared sections and nothing else, and `stage.config_key(config)` is the part of the
stage cache's key that covers options. So the options a stage can read and the options its cached
output is keyed on are the same by construction; tests/flows/test_stage_declarations.py changes
every other option and checks that neither the output nor the key moves.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from schemas.config import CurationConfig

R = TypeVar("R")


class ConfigSections:
    """Some sections of a CurationConfig, read like one (`config.shape.min_turns`); any other
    section is an AttributeError that names the declaration to extend."""

    def __init__(self, config: CurationConfig, names: tuple[str, ...], stage: str) -> None:
        self.__dict__.update({name: getattr(config, name) for name in names})
        self.__dict__["_declared"] = (stage, names)

    def __getattr__(self, name: str) -> Any:
        stage, names = self.__dict__["_declared"]
        raise AttributeError(f"stage {stage!r} reads only {list(names)}: add {name!r} to its declaration to read it")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("config sections are read-only")


@dataclass(frozen=True)
class Stage(Generic[R]):
    """One step of the pipeline as the flows run it.

    - `name`: the step's name in the stage cache (and in Prefect's task names).
    - `run`: the curation function; the flow calls it with the data, the heavy objects it builds
      (tokenizer, embedder, index) and `config=` what `config` names.
    - `config`: one section name (the function gets that section) or several (it gets a
      ConfigSections of them).
    - `only_fields`: where the output depends on just some fields of a single section, those fields;
      the key covers them alone (MinHash signatures: not the threshold, which acts in the global step).
    - `also_keyed`: options the flow uses to build the function's heavy arguments or to cut its work
      ("tokenizer", "shards.template", "run.batch_size"): in the key, never passed.
    """

    name: str
    run: Callable[..., R]
    config: str | tuple[str, ...] = ()
    only_fields: tuple[str, ...] = ()
    also_keyed: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.only_fields and not isinstance(self.config, str):
            raise ValueError(f"stage {self.name!r}: only_fields narrows a single section")

    def options(self, config: CurationConfig) -> Any:
        """What `run` receives as `config=`: the declared section, or a ConfigSections of them; None for none."""
        if isinstance(self.config, str):
            return getattr(config, self.config)
        if not self.config:
            return None
        return ConfigSections(config, self.config, self.name)

    def call(self, *args: Any, config: CurationConfig, **resources: Any) -> R:
        """Run the stage on `args` with its declared options (and no others) and the flow's heavy objects."""
        options = self.options(config)
        if options is None:
            return self.run(*args, **resources)
        return self.run(*args, config=options, **resources)

    def keyed_options(self, config: CurationConfig) -> dict[str, Any]:
        """Every option value the stage's output depends on, by its dotted path ("shape.min_turns")."""
        values: dict[str, Any] = {}
        sections = (self.config,) if isinstance(self.config, str) else self.config
        for section in sections:
            dumped = getattr(config, section).model_dump(mode="json")
            fields = self.only_fields or tuple(dumped)
            values |= {f"{section}.{name}": dumped[name] for name in fields}
        for path in self.also_keyed:
            section, _, name = path.partition(".")
            dumped = getattr(config, section).model_dump(mode="json")
            values |= {path: dumped[name]} if name else {f"{section}.{k}": v for k, v in dumped.items()}
        return values

    def config_key(self, config: CurationConfig, extra: Mapping[str, str] | None = None) -> str:
        """A stable hash of the keyed options (and `extra` values the flow adds, such as input digests)."""
        canonical = json.dumps([self.keyed_options(config), dict(extra or {})], sort_keys=True)
        return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()
