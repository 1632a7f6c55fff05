"""The base of every config section: strict (unknown keys are errors) and frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigSection(BaseModel):
    """One table of the config file. Unknown keys are errors, so a typo fails before any work
    starts instead of silently running with a default; frozen, so a section is safe to share."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def data_lines(name: str) -> tuple[str, ...]:
    """The lines of schemas/config/data/<name> that are neither blank nor # comments."""
    from importlib.resources import files

    text = files("schemas.config").joinpath("data", name).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
