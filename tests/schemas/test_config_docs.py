"""Every config option explains itself, and every doc it cites is in the user's clone.

`chatsift config`, the Prefect run form (the pydantic JSON schema) and a reader of schemas/config/
all see a field's description; each description ends with where its default comes from, a page
under docs/ (defaults.md has one section per config table). These tests fail when a field has no
description, when a cited docs/<page>.md#<anchor> has no such page or heading, or when anything
cites the notes folder beside the checkout, which a user's clone does not have.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest
from pydantic import BaseModel

from schemas.config import BenchmarkSpec, ConfigSection, CurationConfig, ShapeConfig
from tests.conftest import REPO_ROOT

DOCS = REPO_ROOT / "docs"
# The notes folder beside the checkout, spelled in two pieces so this file does not cite it itself.
NOTES_CITATION = "shared" + "/notes"
# docs/<page>.md, optionally with #<anchor>: what a description or a comment cites.
DOC_CITATION = re.compile(r"docs/(?P<page>[\w.-]+\.md)(?:#(?P<anchor>[\w-]+))?")
# ](page.md#anchor) or ](#anchor): a relative link between the pages of docs/.
DOC_LINK = re.compile(r"\]\((?P<page>[\w.-]+\.md)?#(?P<anchor>[\w-]+)\)")
CITING_PACKAGES = ("schemas", "curation", "flows", "train", "demo", "tests", "bench")
TEXT_SUFFIXES = (".py", ".toml", ".yaml", ".yml", ".md")


def _sections() -> list[type[BaseModel]]:
    """Every config section model: CurationConfig's fields, and the benchmark spec inside [contamination]."""
    sections: list[type[BaseModel]] = []
    for name, field in CurationConfig.model_fields.items():
        section = field.annotation
        assert isinstance(section, type) and issubclass(section, ConfigSection), f"{name} is not a config section"
        sections.append(section)
    return [*sections, BenchmarkSpec]


SECTIONS = _sections()
FIELDS = [(section, name) for section in SECTIONS for name in section.model_fields]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a markdown heading: lowercased, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@cache
def anchors(page: str) -> frozenset[str]:
    """The heading anchors of docs/<page>, with GitHub's -1, -2 ... suffixes for repeated headings."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    in_fence = False
    for line in (DOCS / page).read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        match = re.match(r"#{1,6}\s+(.+?)\s*#*\s*$", line)
        if in_fence or not match:
            continue
        slug = github_slug(match.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(found)


def citation_problem(page: str, anchor: str | None) -> str | None:
    """Why docs/<page>#<anchor> does not resolve, or None when it does."""
    if not (DOCS / page).is_file():
        return f"docs/{page} does not exist"
    if anchor is not None and anchor not in anchors(page):
        return f"docs/{page} has no heading with anchor #{anchor} (it has: {', '.join(sorted(anchors(page)))})"
    return None


def repo_files() -> list[Path]:
    """The files git tracks, and new ones it does not ignore; every file outside hidden folders and
    .venv when this is not a git checkout."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        paths = [REPO_ROOT / p for p in out.split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        paths = [
            p for p in REPO_ROOT.rglob("*") if not any(part.startswith(".") for part in p.relative_to(REPO_ROOT).parts)
        ]
    return [p for p in paths if p.is_file() and ".venv" not in p.relative_to(REPO_ROOT).parts]


# --- descriptions ---------------------------------------------------------------------------


@pytest.mark.parametrize(("section", "name"), FIELDS, ids=[f"{s.__name__}.{n}" for s, n in FIELDS])
def test_every_field_has_a_description(section: type[BaseModel], name: str) -> None:
    description = section.model_fields[name].description
    assert description and description.strip(), f"{section.__name__}.{name} has no description"
    # A sentence, not a placeholder: it says what the option does.
    assert len(description.split()) >= 4, f"{section.__name__}.{name}: {description!r} says too little"


def test_every_section_field_of_curation_config_has_a_description() -> None:
    missing = [name for name, field in CurationConfig.model_fields.items() if not field.description]
    assert not missing, f"CurationConfig fields without a description: {missing}"


@pytest.mark.parametrize("name", list(CurationConfig.model_fields))
def test_every_section_names_its_table(name: str) -> None:
    """A section's docstring and its description say which table of the config file it is."""
    section = CurationConfig.model_fields[name].annotation
    assert isinstance(section, type)
    assert f"[{name}]" in (section.__doc__ or ""), f"{section.__name__}'s docstring does not state [{name}]"
    assert f"[{name}]" in (CurationConfig.model_fields[name].description or "")


def test_defaults_page_has_a_section_per_config_table() -> None:
    missing = [name for name in CurationConfig.model_fields if name not in anchors("defaults.md")]
    assert not missing, f"docs/defaults.md has no section for {missing}"
    assert "prefect" in anchors("defaults.md")


def test_json_schema_carries_the_descriptions() -> None:
    """The Prefect run form is built from the JSON schema: the descriptions must be in it."""
    schema = CurationConfig.model_json_schema()
    min_turns = schema["$defs"]["ShapeConfig"]["properties"]["min_turns"]
    assert min_turns["description"] == ShapeConfig.model_fields["min_turns"].description
    assert "docs/defaults.md#shape" in min_turns["description"]
    assert min_turns["minimum"] == 1 and min_turns["default"] == 2
    assert "[shape]" in schema["properties"]["shape"]["description"]
    # And every field of every section, not only the one picked above.
    undescribed = [
        f"{model}.{prop}"
        for model, definition in schema["$defs"].items()
        for prop, spec in definition.get("properties", {}).items()
        if not spec.get("description")
    ]
    assert not undescribed, f"fields without a description in the JSON schema: {undescribed}"


# --- citations ------------------------------------------------------------------------------


def test_doc_citations_in_descriptions_resolve() -> None:
    problems = []
    cited = 0
    for section, name in FIELDS:
        for match in DOC_CITATION.finditer(section.model_fields[name].description or ""):
            cited += 1
            problem = citation_problem(match["page"], match["anchor"])
            if problem:
                problems.append(f"{section.__name__}.{name}: {problem}")
    assert not problems, "\n".join(problems)
    # Most defaults cite their source: a refactor that drops the citations fails here.
    assert cited >= len(FIELDS) // 2, f"only {cited} of {len(FIELDS)} descriptions cite docs/"


def _citing_files() -> list[Path]:
    files = [p for p in repo_files() if p.suffix in TEXT_SUFFIXES]
    return [p for p in files if p.relative_to(REPO_ROOT).parts[0] in CITING_PACKAGES or p.parent == REPO_ROOT]


def test_doc_citations_in_code_and_comments_resolve() -> None:
    """Every docs/<page>.md#<anchor> in the code (and the top-level README and pyproject) exists."""
    problems = []
    for path in _citing_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in DOC_CITATION.finditer(text):
            problem = citation_problem(match["page"], match["anchor"])
            if problem:
                line = text.count("\n", 0, match.start()) + 1
                problems.append(f"{path.relative_to(REPO_ROOT)}:{line}: {problem}")
    assert not problems, "\n".join(problems)


def test_links_between_doc_pages_resolve() -> None:
    problems = []
    for path in sorted(DOCS.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        for match in DOC_LINK.finditer(text):
            problem = citation_problem(match["page"] or path.name, match["anchor"])
            if problem:
                problems.append(f"docs/{path.name}: {problem}")
    assert not problems, "\n".join(problems)


def test_nothing_cites_the_notes_beside_the_checkout() -> None:
    """A user's clone has no ../shared: facts the code relies on live in docs/."""
    offenders = []
    for path in repo_files():
        if path.suffix not in TEXT_SUFFIXES:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if NOTES_CITATION in line:
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert not offenders, "cites the notes folder, which a user's clone lacks:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("run", "run"),
        ("dedupe_minhash", "dedupe_minhash"),
        ("A GPT turn's markup (early 2023)", "a-gpt-turns-markup-early-2023"),
        ("The detection curve: 24 bands x 7 rows", "the-detection-curve-24-bands-x-7-rows"),
    ],
)
def test_github_slug(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug
