"""Make the demo's input: real-markup ShareGPT pages, a JSON dump and a JSONL file, with bad input.

The conversations are written by the chatsift authors (flows/sample_data/conversations.json);
their assistant turns are rendered into ChatGPT's HTML, as ShareGPT captured them, so the demo
exercises the HTML converter, and a few inputs are broken on purpose so the ledger has work.
"""

from __future__ import annotations

import json
from pathlib import Path

from demo.chatgpt_html import as_captured, sharegpt_page_html
from schemas.config import BenchmarkSpec, ContaminationConfig, CurationConfig, SplitConfig
from schemas.files import atomic_write_text

SAMPLE_CONVERSATIONS = Path(__file__).parent / "sample_data" / "conversations.json"
# Benchmark-style questions written for the demo (no real benchmark is shipped): two of the
# sample's conversations quote them, one verbatim and one rephrased in a later round.
DEMO_BENCHMARK = Path(__file__).parent / "sample_data" / "demo_benchmark.jsonl"
# The sample's conversations are short; a small token budget lets the demo show splitting.
# Cutting (rather than dropping) contaminated conversations shows both outcomes.
DEMO_CONFIG = CurationConfig(
    split=SplitConfig(max_tokens=256),
    contamination=ContaminationConfig(
        benchmarks=(
            BenchmarkSpec(
                name="demo_bench",
                path=str(DEMO_BENCHMARK),
                id_field="id",
                text_fields=("question",),
                answer_fields=("answer",),
            ),
        ),
        action="cut_before_turn",
    ),
)
PAGE_COUNT = 8


def _items(turns: list[list[str]]) -> list[dict[str, str]]:
    # The extension stored human turns as plain text and gpt turns as the rendered HTML.
    return as_captured([{"from": role, "value": text} for role, text in turns])


def write_demo_inputs(dest: Path) -> list[Path]:
    """Write the demo inputs under `dest` and return the paths to pass to `curate`."""
    sample = json.loads(SAMPLE_CONVERSATIONS.read_text("utf-8"))
    pages_dir = dest / "pages"
    for conv in sample[:PAGE_COUNT]:
        page = sharegpt_page_html(
            page_id=conv["id"], title=conv.get("title", ""), model=conv.get("model"), items=_items(conv["turns"])
        )
        atomic_write_text(pages_dir / f"{conv['id']}.html", page)

    good_page = (pages_dir / f"{sample[0]['id']}.html").read_text("utf-8")
    # Broken on purpose: a download cut off mid-page, a page that is not a conversation,
    # and an id that would escape a directory if used as a file name.
    atomic_write_text(pages_dir / "truncated.html", good_page[: len(good_page) // 2])
    atomic_write_text(pages_dir / "not-a-conversation.html", "<html><body><h1>404</h1></body></html>")
    atomic_write_text(
        pages_dir / "unsafe-id.html",
        sharegpt_page_html(page_id="../../etc/passwd", items=_items(sample[0]["turns"])),
    )

    dump = [
        {"id": c["id"], **({"model": c["model"]} if "model" in c else {}), "conversations": _items(c["turns"])}
        for c in sample[PAGE_COUNT:]
    ]
    dump_path = dest / "sharegpt_dump.json"
    atomic_write_text(dump_path, json.dumps(dump, ensure_ascii=False, indent=1))

    jsonl_rows = [
        json.dumps(
            {
                "instruction": "Name three primary colours.",
                "input": "",
                "output": "Red, yellow and blue are the traditional primary colours in painting.",
            }
        ),
        json.dumps(
            {"instruction": "Translate to French.", "input": "Good morning, everyone.", "output": "Bonjour à tous."}
        ),
        json.dumps(
            {
                "id": "msgs-1",
                "messages": [
                    {"role": "system", "content": "You are a concise assistant."},
                    {"role": "user", "content": "What is the boiling point of water at sea level in Celsius?"},
                    {"role": "assistant", "content": "100 °C at standard atmospheric pressure."},
                ],
            }
        ),
        json.dumps(
            {
                "id": "msgs-2",
                "messages": [
                    {"role": "user", "content": "Call the weather tool for Paris."},
                    {"role": "tool", "content": '{"temp": 18}'},
                ],
            }
        ),
        '{"instruction": "this line is cut off',
    ]
    jsonl_path = dest / "instructions.jsonl"
    atomic_write_text(jsonl_path, "\n".join(jsonl_rows) + "\n")
    return [pages_dir, dump_path, jsonl_path]
