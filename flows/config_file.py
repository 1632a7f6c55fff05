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
    """Load what the run needs (tokenizer, benchmarks, embedder) before any work, so a missing one fails first."""
    check_tokenizer(config)
    check_contamination_resources(config, require_benchmarks=False)


def check_tokenizer(config: CurationConfig) -> None:
    """The configured tokenizer loads, or a ConfigError that says which spec failed and why."""
    from curation.tokenizer_load import TokenizerUnavailableError
    from flows.resources import tokenizer_for

    try:
        tokenizer_for(config.tokenizer.spec)
    except TokenizerUnavailableError as e:
        raise ConfigError(f"tokenizer.spec={config.tokenizer.spec!r}: {e}") from e


def check_contamination_resources(config: CurationConfig, *, require_benchmarks: bool) -> None:
    """Benchmark files readable, decisions file valid, device present and model loadable, or a ConfigError."""
    from curation.benchmarks import BenchmarkReadError, read_benchmarks
    from curation.reviewer_decisions import DecisionsFileError, read_decisions
    from flows.resources import DeviceUnavailableError, contamination_devices, embedder_for

    c = config.contamination
    if not c.enabled:
        return
    specs = c.benchmark_specs()
    if not specs:
        if require_benchmarks:
            raise ConfigError(
                "no benchmarks configured: set contamination.presets (with presets_dir for local files) "
                "or contamination.benchmarks"
            )
        return
    try:
        read_benchmarks(specs, index_answers=c.index_answers)
        if c.decisions_file:
            read_decisions(Path(c.decisions_file))
        device, _ = contamination_devices(c.device)
    except (BenchmarkReadError, DecisionsFileError, DeviceUnavailableError) as e:
        raise ConfigError(f"contamination: {e}") from e
    try:
        embedder_for(c.model, device)
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"contamination.model={c.model!r} could not be loaded ({e}); use 'all-MiniLM-L6-v2' (bundled, "
            "offline) or a local sentence-transformers folder"
        ) from e


def resume_arguments(run_dir: Path) -> tuple[list[Path], Path, CurationConfig, str]:
    """The inputs, output folder, config and run id recorded by the run in `run_dir`."""
    record_path, config_path = run_dir / "run.json", run_dir / "config.json"
    if not record_path.is_file() or not config_path.is_file():
        raise ConfigError(
            f"{run_dir} is not a run folder (no run.json and config.json): pass OUT/<run-id> of a curate run"
        )
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
        config = CurationConfig.model_validate_json(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, ValidationError) as e:
        raise ConfigError(f"{run_dir}: run.json or config.json is unreadable ({e}); start a new run instead") from e
    return [Path(p) for p in record["inputs"]], run_dir.parent, config, run_dir.name
