"""The base of every config section: strict (unknown keys and loose scalar types are errors) and frozen."""

from __future__ import annotations

import json
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

# What each scalar option accepts, by its annotation. A float option takes an int (TOML writes 1 for
# 1.0, the Prefect form sends 1); nothing else is converted: pydantic would read true as 1, "5" as
# 5 and 1.0 as 1 for an int, and "yes" or 1 as true for a bool, so a slip would run with a value
# the user never wrote.
_SCALAR_KINDS: dict[type, tuple[tuple[type, ...], str]] = {
    bool: ((bool,), "true or false"),
    int: ((int,), "a whole number"),
    float: ((int, float), "a number"),
}


def _scalar_kind(annotation: Any) -> type | None:
    """bool, int or float when the annotation is one of them (or it | None), else None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else None
    return annotation if annotation in _SCALAR_KINDS else None


class ConfigSection(BaseModel):
    """One table of the config file. Unknown keys are errors, so a typo fails before any work
    starts instead of silently running with a default; frozen, so a section is safe to share."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    @field_validator("*", mode="before")
    @classmethod
    def _exact_scalar_type(cls, value: Any, info: ValidationInfo) -> Any:
        """A bool, int or float option takes only what it says (ints for a float): strict types,
        while lists still fill tuple options as TOML, JSON and the Prefect form write them."""
        kind = _scalar_kind(cls.model_fields[info.field_name or ""].annotation)
        if kind is None or value is None:
            return value
        accepted, wanted = _SCALAR_KINDS[kind]
        # bool is a subclass of int, so it is refused by name for int and float options.
        if isinstance(value, accepted) and (kind is bool or not isinstance(value, bool)):
            return value
        raise ValueError(f"expected {wanted}, got {_as_written(value)}")


def _as_written(value: Any) -> str:
    """The value as a config file would spell it (true, "5", 1.0)."""
    try:
        return json.dumps(value)
    except TypeError:
        return repr(value)


def data_lines(name: str) -> tuple[str, ...]:
    """The lines of schemas/config/data/<name> that are neither blank nor # comments."""
    from importlib.resources import files

    text = files("schemas.config").joinpath("data", name).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
