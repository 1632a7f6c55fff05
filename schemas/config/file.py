"""Reading a CurationConfig from a TOML or JSON file, failing early with a message that says what to fix."""

from __future__ import annotations

import json
import textwrap
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


# A comment line of `chatsift config`'s TOML holds at most this many characters.
_COMMENT_WIDTH = 100


def config_toml(config: CurationConfig) -> str:
    """The config as commented TOML that load_config reads back as the same config: each table and key with its
    description as comments, and options whose value is unset (None, which TOML cannot write) commented out."""
    lines = [
        "# chatsift's config: every option with its value and what it does (docs/defaults.md says where each default",
        "# comes from). Save it, change what you need, pass it with --config; keys left out keep their defaults.",
    ]
    values = config.model_dump(mode="json")
    for section, field in type(config).model_fields.items():
        model = getattr(config, section)
        lines += ["", *_comment(field.description), f"[{section}]"]
        tables: list[tuple[str, dict]] = []
        for key, option in type(model).model_fields.items():
            value = values[section][key]
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                tables += [(key, item) for item in value]
                continue
            lines += _comment(option.description)
            lines.append(f"# {key} =  (unset)" if value is None else f"{key} = {_toml_value(value)}")
        for key, item in tables:
            lines += ["", f"[[{section}.{key}]]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in item.items() if v is not None]
    return "\n".join(lines) + "\n"


def _comment(text: str | None) -> list[str]:
    return [f"# {line}" for line in textwrap.wrap(" ".join((text or "").split()), _COMMENT_WIDTH - 2)]


def _toml_value(value: object) -> str:
    """A TOML value: JSON's string escapes are TOML's, its numbers and booleans are TOML's too."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)
