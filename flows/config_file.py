"""Load a CurationConfig from TOML or JSON, failing early with a message that says what to fix."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from pydantic import ValidationError

from schemas.config import CurationConfig


class ConfigError(ValueError):
    """The run's configuration or inputs are wrong; nothing has been done yet."""


def load_config(path: Path | None) -> CurationConfig:
    """The defaults when `path` is None, else the file's values over the defaults."""
    if path is None:
        return CurationConfig()
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (pass an existing .toml or .json file, or omit --config)")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {e}") from e
    try:
        return CurationConfig.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors(include_url=False)
        )
        raise ConfigError(
            f"config file {path} has {e.error_count()} problem(s): {problems}. "
            "Fix these keys or remove them to use the defaults (`chatsift config` prints every key)."
        ) from e


def check_inputs(inputs: list[Path]) -> None:
    """Fail before any work when an input is missing or the list is empty."""
    if not inputs:
        raise ConfigError("no inputs given: pass ShareGPT pages, JSON/JSONL dumps or directories of them")
    missing = [str(p) for p in inputs if not p.exists()]
    if missing:
        raise ConfigError(f"input(s) not found: {', '.join(missing)}")


def check_resources(config: CurationConfig) -> None:
    """Load what the run needs (the tokenizer) before any work, so a missing one fails first."""
    from curation.tokenizer_load import TokenizerUnavailableError
    from flows.resources import tokenizer_for

    try:
        tokenizer_for(config.tokenizer.spec)
    except TokenizerUnavailableError as e:
        raise ConfigError(f"tokenizer.spec={config.tokenizer.spec!r}: {e}") from e
