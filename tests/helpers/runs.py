"""Curate runs compared file by file, and saved ShareGPT pages to run them on."""

from __future__ import annotations

import json
from pathlib import Path

from demo.chatgpt_html import as_captured, sharegpt_page_html


def write_pages(folder: Path, convs: list[dict]) -> None:
    """Each ShareGPT record as a saved page `<id>.html` in `folder`, its answers as ChatGPT's HTML."""
    folder.mkdir(parents=True, exist_ok=True)
    for conv in convs:
        items = as_captured(conv["conversations"])
        (folder / f"{conv['id']}.html").write_text(sharegpt_page_html(page_id=conv["id"], items=items), "utf-8")


def output_files(run: Path) -> dict[str, bytes]:
    """Every file a trainer or reviewer reads, by path inside the run, except the manifest (it names the run)."""
    files = {}
    for sub in ("conversations", "ledger", "shards"):
        for f in sorted((run / sub).rglob("*")):
            if f.is_file() and f.name != "manifest.json":
                files[str(f.relative_to(run))] = f.read_bytes()
    return files


def manifest_without_run(run: Path) -> dict:
    manifest = json.loads((run / "shards" / "manifest.json").read_text())
    for key in ("run_id", "created_at"):
        manifest.pop(key, None)
    return manifest


def assert_same_outputs(a: Path, b: Path) -> None:
    """Runs `a` and `b` wrote the same output files, byte for byte, and the same manifest but for its run."""
    files_a, files_b = output_files(a), output_files(b)
    assert sorted(files_a) == sorted(files_b), "the same files, no extra parts and none missing"
    differing = [name for name in files_a if files_a[name] != files_b[name]]
    assert differing == []
    assert manifest_without_run(a) == manifest_without_run(b)
