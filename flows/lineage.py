"""What a run records about itself: the code version, and lineage.json (inputs, config, code, outputs)."""

from __future__ import annotations

import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from flows.stage_cache import code_fingerprint, file_digest
from schemas.ledger import InputGroup, OutputFile, RunLineage


def code_version() -> str:
    """The package version, plus the git commit (and '+dirty') when run from a checkout."""
    try:
        base = version("chatsift")
    except PackageNotFoundError:
        base = "unknown"
    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists():
        return base
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return base
    return f"{base}+g{commit}" + (".dirty" if dirty else "")


def run_lineage(
    *, run_id: str, root: Path, inputs: list[Path], config_hash: str, input_groups: list[InputGroup]
) -> RunLineage:
    """The run's lineage: its inputs by content group, config and code, and a digest of every output file."""
    outputs = [
        OutputFile(path=str(f.relative_to(root)), blake2b=file_digest(f))
        for folder in ("conversations", "ledger", "shards")
        for f in sorted((root / folder).glob("*"))
        if f.is_file()
    ]
    return RunLineage(
        run_id=run_id,
        code_version=code_version(),
        code_fingerprint=code_fingerprint(),
        config_hash=config_hash,
        inputs=[str(p) for p in inputs],
        input_groups=input_groups,
        outputs=outputs,
    )
