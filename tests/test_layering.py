"""The house rules that code review alone would let slip: layering, purity, no bare except."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ["schemas", "curation", "flows", "train", "demo"]
# package -> the top-level modules it must never import
FORBIDDEN = {
    # schemas/ holds the contracts: it imports nothing of the project but itself.
    "schemas": {"prefect", "curation", "flows", "train", "demo"},
    "curation": {"prefect", "flows", "train", "demo"},
    # train/ is a library like curation/: the finetune flow (flows/) calls it, never the reverse.
    "train": {"prefect", "curation", "flows", "demo"},
    "flows": set(),
    # demo/ makes sample input; the pipeline never depends on it (only the demo command does).
    "demo": {"prefect", "flows", "train"},
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


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _project_imports(path: Path) -> set[str]:
    """The project modules `path` imports anywhere (also inside functions), by dotted name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from curation.shards import tokenizer_load` imports a module too
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def _import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in ALL_SOURCES}
    return {name: {m for m in _project_imports(path) if m in modules and m != name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle, found by depth-first search (each as the path that closes it)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_import_cycle_anywhere() -> None:
    """Lazy imports inside functions count too: a cycle through one is still two modules that need each other."""
    assert _cycles(_import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def _config_handed_to_curation(path: Path) -> list[int]:
    """Lines where a flows/ module calls a function imported from curation/ with `config=` itself,
    instead of through the function's Stage declaration (`STAGE.call(..., config=config)`)."""
    tree = ast.parse(path.read_text("utf-8"))
    from_curation = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("curation")
        for alias in node.names
    }
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in from_curation
        and any(k.arg == "config" for k in node.keywords)
    ]


@pytest.mark.parametrize("path", _sources("flows"), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_a_stage_reads_only_the_config_it_declares(path: Path) -> None:
    """flows/ hands options to curation/ only through a Stage declaration, which passes exactly the
    declared sections and keys the stage cache on them (tests/flows/test_stage_declarations.py
    checks the declarations against the stages' outputs)."""
    lines = _config_handed_to_curation(path)
    assert not lines, f"{path.relative_to(REPO_ROOT)} passes config= to a curation function at lines {lines}"


def test_the_config_check_catches_a_direct_call(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "from curation.shards.split import split_long_conversations\nsplit_long_conversations([], config=c)\n"
    )
    good = tmp_path / "good.py"
    good.write_text("from curation.shards.split import SPLIT\nSPLIT.call([], config=c)\n")
    assert _config_handed_to_curation(bad) == [2] and _config_handed_to_curation(good) == []
