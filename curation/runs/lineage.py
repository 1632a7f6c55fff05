"""What a run records about itself: the code version and fingerprint, and lineage.json (inputs, config, outputs)."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from schemas.files import file_digest
from schemas.ledger import InputFile, InputGroup, OutputFile, RunLineage
from schemas.run_layout import RunPaths

# The checkout (or installed tree) that holds the pipeline's packages.
_REPO = Path(__file__).resolve().parents[2]
# The packages whose source decides what a stage writes: any change to them is a new code version.
_CODE_PACKAGES = ("schemas", "curation", "flows")


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """A hash of every source file of the pipeline's packages: the stage cache's "code version".

    Finer than a git commit (a commit that changes only docs or tests keeps the cache) and
    available where no git checkout is (an installed wheel, a Docker image).
    """
    digest = hashlib.blake2b(digest_size=16)
    for package in _CODE_PACKAGES:
        for source in sorted((_REPO / package).rglob("*.py")):
            digest.update(str(source.relative_to(_REPO)).encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(_REPO), *args], capture_output=True, text=True, check=True, timeout=10
    ).stdout.strip()


def code_version() -> str:
    """The package version, plus the git commit (and '+dirty') when run from a checkout."""
    try:
        base = version("chatsift")
    except PackageNotFoundError:
        base = "unknown"
    if not (_REPO / ".git").exists():
        return base
    try:
        commit = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return base
    return f"{base}+g{commit}" + (".dirty" if dirty else "")


def run_lineage(
    *,
    paths: RunPaths,
    inputs: list[Path],
    config_hash: str,
    input_groups: list[InputGroup],
    input_files: Sequence[Path] = (),
) -> RunLineage:
    """The run's lineage: its inputs by content group and file by file (`input_files`, the files the inputs
    held), config and code, and a digest of every output file."""
    outputs = [OutputFile(path=str(f.relative_to(paths.root)), blake2b=file_digest(f)) for f in paths.published_files()]
    return RunLineage(
        run_id=paths.run_id,
        code_version=code_version(),
        code_fingerprint=code_fingerprint(),
        config_hash=config_hash,
        inputs=[str(p) for p in inputs],
        input_groups=input_groups,
        input_files=[InputFile(path=str(f), blake2b=file_digest(f)) for f in input_files],
        outputs=outputs,
    )
