"""Reading a CurationConfig from a TOML or JSON file, failing early with a message that says what to fix."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from pydantic import ValidationError

from schemas.config import CurationConfig
from schemas.errors import ConfigError


def validation_problems(error: ValidationError) -> str:
    """Each problem of a failed validation as `key.path: message`, joined by '; '."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in error.errors(include_url=False))


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
        raise ConfigError(
            f"config file {path} has {e.error_count()} problem(s): {validation_problems(e)}. "
            "Fix these keys or remove them to use the defaults (`chatsift config` prints every key)."
        ) from e
