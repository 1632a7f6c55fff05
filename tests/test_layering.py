"""The house rules that code review alone would let slip: layering, purity, no bare except."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ["schemas", "curation", "flows", "train"]
# package -> the top-level modules it must never import
FORBIDDEN = {
    "schemas": {"prefect", "curation", "flows", "train"},
    "curation": {"prefect", "flows", "train"},
    # train/ is a library like curation/: the finetune flow (flows/) calls it, never the reverse.
    "train": {"prefect", "curation", "flows"},
    "flows": set(),
}


def _sources(package: str) -> list[Path]:
    return sorted((REPO_ROOT / package).rglob("*.py"))


def _imported_roots(tree: ast.AST) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


ALL_SOURCES = [p for pkg in PACKAGES for p in _sources(pkg)]


def test_there_is_code_to_check() -> None:
    assert len(_sources("curation")) >= 5 and len(_sources("schemas")) >= 3 and len(_sources("flows")) >= 4


@pytest.mark.parametrize("path", ALL_SOURCES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_imports_follow_the_layers(path: Path) -> None:
    package = path.relative_to(REPO_ROOT).parts[0]
    bad = _imported_roots(ast.parse(path.read_text("utf-8"))) & FORBIDDEN[package]
    assert not bad, f"{path.relative_to(REPO_ROOT)} imports {sorted(bad)}, which {package}/ must not"


@pytest.mark.parametrize("path", ALL_SOURCES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_bare_except(path: Path) -> None:
    tree = ast.parse(path.read_text("utf-8"))
    bare = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler) and n.type is None]
    assert not bare, f"bare except at {path.relative_to(REPO_ROOT)} lines {bare}"


@pytest.mark.parametrize(
    "path", _sources("curation") + _sources("schemas"), ids=lambda p: str(p.relative_to(REPO_ROOT))
)
def test_curation_and_schemas_read_no_environment(path: Path) -> None:
    tree = ast.parse(path.read_text("utf-8"))
    uses = [
        n.lineno
        for n in ast.walk(tree)
        if (isinstance(n, ast.Attribute) and n.attr in {"environ", "getenv", "environb"})
    ]
    assert not uses, f"{path.relative_to(REPO_ROOT)} reads environment variables at lines {uses}"


@pytest.mark.parametrize("path", ALL_SOURCES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_builtin_hash(path: Path) -> None:
    """Python's hash() is salted per process: hashes that decide what is kept must be stable."""
    tree = ast.parse(path.read_text("utf-8"))
    calls = [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "hash"
    ]
    assert not calls, f"builtin hash() at {path.relative_to(REPO_ROOT)} lines {calls}"


def test_the_checker_catches_a_violation() -> None:
    tree = ast.parse("import prefect\nfrom flows.cli import main\nfrom . import sibling\n")
    assert _imported_roots(tree) & FORBIDDEN["curation"] == {"prefect", "flows"}
