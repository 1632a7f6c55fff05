"""The markdown stage's bounds on hostile HTML: nesting depth, element count, long sibling runs.

bs4 builds and markdownify walks the tree recursively (about three Python frames per nested inline
element), and the tree costs about 1 KB of memory per element: without bounds one turn could raise
RecursionError, which stopped the whole run with no ledger, or take gigabytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from curation.clean.batch import clean_batch
from curation.clean.markdown import html_to_markdown
from schemas.config import CurationConfig, MarkdownConfig
from tests.helpers.conversations import conversation
from tests.helpers.peak_memory import peak_memory

WRAPPER = '<div class="markdown prose w-full break-words dark:prose-invert light">{}</div>'
NORMAL = conversation(
    ("user", "What is the capital of France?"),
    ("assistant", WRAPPER.format("<p>The capital of France is <strong>Paris</strong>.</p>")),
    id="normal",
)


def nested_spans(depth: int) -> str:
    return WRAPPER.format("<span>" * depth + "x" + "</span>" * depth)


@pytest.mark.parametrize("depth", [400, 1_000, 10_000])
def test_deeply_nested_turn_is_a_recorded_drop_and_the_batch_goes_on(depth: int) -> None:
    deep = conversation(("user", "Say x, please."), ("assistant", nested_spans(depth)), id="deep")
    kept, dropped, _ = clean_batch([deep, NORMAL], config=CurationConfig())
    assert [c.id for c in kept] == ["normal"]
    assert kept[0].turns[1].content == "The capital of France is **Paris**."
    assert [(d.conversation_id, d.stage, d.reason) for d in dropped] == [("deep", "markdown", "html_too_deep")]
    # The wrapper div is one more level than the spans.
    assert dropped[0].detail == f"turn=1 depth={depth + 1} (max_html_depth=100)"


@pytest.mark.parametrize("tag", ["span", "em", "blockquote", "div"])
def test_nesting_at_the_highest_allowed_depth_converts(tag: str) -> None:
    # 200, the ceiling of max_html_depth, stays clear of the recursion limit for every tag
    # (inline elements, the deepest recursion per level, first failed at 329 levels).
    depth = MarkdownConfig.model_fields["max_html_depth"].metadata[-1].le
    html = WRAPPER.format(f"<{tag}>" * (depth - 1) + "x" + f"</{tag}>" * (depth - 1))
    config = MarkdownConfig(max_html_depth=depth)
    kept, dropped, _ = clean_batch(
        [conversation(("user", "Say x, please, nothing else."), ("assistant", html))],
        config=CurationConfig(markdown=config),
    )
    assert dropped == []
    assert kept[0].turns[1].content.strip("> *_\n") == "x"


def test_max_html_depth_cannot_be_set_near_the_recursion_limit() -> None:
    with pytest.raises(ValidationError, match="max_html_depth"):
        MarkdownConfig(max_html_depth=300)


def test_turn_with_too_many_elements_is_a_recorded_drop() -> None:
    many = conversation(("user", "Break lines."), ("assistant", WRAPPER.format("<p>" + "a<br>" * 20 + "</p>")))
    config = CurationConfig(markdown=MarkdownConfig(max_html_elements=10))
    kept, dropped, _ = clean_batch([many, NORMAL], config=config)
    assert [c.id for c in kept] == ["normal"]
    assert (dropped[0].reason, dropped[0].detail) == ("html_too_large", "turn=1 elements>10 (max_html_elements=10)")


def test_highlight_spans_in_code_do_not_count_as_elements() -> None:
    # They are removed before the tree is built, so a long highlighted code block is converted.
    line = '<span class="hljs-keyword">return</span> <span class="hljs-number">1</span>\n'
    html = WRAPPER.format(f'<pre><code class="hljs language-python">{line * 50}</code></pre>')
    config = CurationConfig(markdown=MarkdownConfig(max_html_elements=10))
    kept, dropped, _ = clean_batch([conversation(("user", "Return one."), ("assistant", html))], config=config)
    assert dropped == []
    assert kept[0].turns[1].content == "```python\n" + "return 1\n" * 50 + "```"


def test_a_long_run_of_sibling_emphasis_converts_and_alternates() -> None:
    # Each emphasis right after another of its kind picked its delimiter by recursing into the
    # previous one: 2,000 siblings raised RecursionError.
    md = html_to_markdown(WRAPPER.format("<p>" + "<em>a</em>" * 5_000 + "</p>"))
    assert md == "*a*_a_" * 2_500


# Each turn is ~7 MB of ChatGPT HTML (under ingest's 8 MiB record limit), written to a JSON dump in
# the setup, then read and cleaned as a run does, in a process of its own (tests/helpers/peak_memory.py).
_HUGE_TURN_DUMP = """
import json
from pathlib import Path

wrapper = '<div class="markdown prose w-full break-words dark:prose-invert light">{{}}</div>'
size = 7_000_000
line = '<span class="hljs-keyword">def</span> <span class="hljs-title">f</span>(a_b): return a_b * 2\\n'
turns = {{
    "line_breaks": wrapper.format("<p>" + "a<br>" * (size // 5) + "</p>"),
    "paragraphs": wrapper.format("<p>A paragraph with <strong>bold</strong> text.</p>" * (size // 50)),
    "code_block": wrapper.format(
        '<pre><code class="hljs language-python">' + line * (size // len(line)) + "</code></pre>"
    ),
    "one_line": wrapper.format("<p>" + "word " * (size // 5) + "</p>"),
}}
html = turns["{shape}"]
dump = Path({folder!r}) / "dump.json"  # the test's tmp_path: pytest removes it
dump.write_text(json.dumps([{{"id": "big", "conversations": [
    {{"from": "human", "value": "Please write a very long answer."}}, {{"from": "gpt", "value": html}}]}}]))
del turns, html
"""
_READ_AND_CLEAN = """
from curation.clean.batch import clean_batch
from curation.ingest.read import read_conversations
from schemas import Conversation
from schemas.config import CurationConfig, IngestConfig

records = list(read_conversations(dump, config=IngestConfig()))
kept, dropped, _ = clean_batch([r for r in records if isinstance(r, Conversation)], config=CurationConfig())
result = {"kept_chars": [len(t.content) for c in kept for t in c.turns], "dropped": [d.reason for d in dropped]}
"""


@pytest.mark.parametrize(
    ("shape", "outcome", "min_text_chars"),
    # The code block's text is its 27-character line once per 88 bytes of highlighted HTML: about 2.1M.
    [
        ("line_breaks", "dropped", 0),
        ("paragraphs", "dropped", 0),
        ("code_block", "kept", 2_000_000),
        ("one_line", "kept", 5_000_000),
    ],
)
def test_a_7_mb_turn_stays_under_1_gib_of_memory(shape: str, outcome: str, min_text_chars: int, tmp_path: Path) -> None:
    # Before the element bound, "line_breaks" (1.4M <br>) took the bs4 tree alone to 1.6 GB.
    peak_mib, _, result = peak_memory(_HUGE_TURN_DUMP.format(shape=shape, folder=str(tmp_path)), _READ_AND_CLEAN)
    assert peak_mib < 1024, (peak_mib, result)
    if outcome == "dropped":
        assert result["dropped"] == ["html_too_large"]
    else:
        assert result["dropped"] == [] and result["kept_chars"][1] >= min_text_chars
