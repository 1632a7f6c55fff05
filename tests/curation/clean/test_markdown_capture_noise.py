"""Capture noise around a turn: every widget and counter shape leaves nothing, and prose keeps its text.

The shapes are the extension's word-count widget ("Copy1 chars / 1 words", with the Copy button as a
<button> or glued, before or after the answer), the Korean "translate now" link, and ChatGPT's
regeneration counter "k / n" before the answer or under an edited prompt, in every wrapper.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from curation.clean.markdown import html_to_markdown, strip_assistant_capture_noise, strip_user_capture_noise

WRAPPER = '<div class="markdown prose w-full break-words dark:prose-invert light">{}</div>'
ANSWER = "<p>Here is the answer.</p>"
WIDGET_COUNTS = ["1 chars / 1 words", "7 chars | 2 words", "1234 chars / 210 words"]
COUNTERS = ["1 / 1", "2 / 2", "12 / 12"]


def _html_shapes(widget: str, counter: str) -> dict[str, str]:
    return {
        "button widget after, in the div": WRAPPER.format(ANSWER + f"<button>Copy</button><span>{widget}</span>"),
        "button widget after, no div": ANSWER + f"<button>Copy</button><span>{widget}</span>",
        "button widget inside the last p": WRAPPER.format(f"<p>Here is the answer.<button>Copy</button>{widget}</p>"),
        "glued widget first, in a p": WRAPPER.format(f"<p>Copy{widget}</p>" + ANSWER),
        "glued widget first, no div": f"<p>Copy{widget}</p>" + ANSWER,
        "glued widget last, in a p": WRAPPER.format(ANSWER + f"<p>Copy{widget}</p>"),
        "full widget last": WRAPPER.format(ANSWER + f"<p>지금 번역하기CopyCopy HTMLRead Aloud⏹️ Stop{widget}</p>"),
        "counter before the div": f"{counter}" + WRAPPER.format(ANSWER),
        "counter before the div, spaced": f"\n  {counter}  \n" + WRAPPER.format(ANSWER),
        "counter in a first p": WRAPPER.format(f"<p>{counter}</p>" + ANSWER),
        "counter in a first p, no div": f"<p>{counter}</p>" + ANSWER,
        "counter in a first div": WRAPPER.format(f"<div>{counter}</div>" + ANSWER),
        "counter in a first span": WRAPPER.format(f"<span>{counter}</span>" + ANSWER),
        "counter in a div before": f"<div>{counter}</div>" + WRAPPER.format(ANSWER),
        "counter glued in the first p": WRAPPER.format(f"<p>{counter}Here is the answer.</p>"),
        "counter after, bare": ANSWER + counter,
        "counter after, in the div": WRAPPER.format(ANSWER + counter),
        "counter in a last p": ANSWER + f"<p>{counter}</p>",
        "counter in a last div": WRAPPER.format(ANSWER + f"<div>{counter}</div>"),
        "counter glued in the last p": WRAPPER.format(f"<p>Here is the answer.{counter}</p>"),
        "counter and widget": f"{counter}" + WRAPPER.format(ANSWER + f"<p>Copy{widget}</p>"),
    }


@pytest.mark.parametrize("counter", COUNTERS)
@pytest.mark.parametrize("widget", WIDGET_COUNTS)
@pytest.mark.parametrize("shape", list(_html_shapes("", "")))
def test_every_widget_and_counter_shape_leaves_nothing(shape: str, widget: str, counter: str) -> None:
    assert html_to_markdown(_html_shapes(widget, counter)[shape]) == "Here is the answer."


@pytest.mark.parametrize("widget", WIDGET_COUNTS)
@pytest.mark.parametrize(
    "middle",
    ["<p>Copy{}</p>", "<button>Copy</button><span>{}</span>", "<p>{}</p>", "<div>지금 번역하기Copy{}</div>"],
)
def test_a_widget_between_two_blocks_of_the_answer_leaves_nothing(middle: str, widget: str) -> None:
    html = WRAPPER.format(ANSWER + middle.format(widget) + "<p>And more.</p>")
    assert html_to_markdown(html) == "Here is the answer.\n\nAnd more."


def test_a_counter_between_two_blocks_of_the_answer_is_kept_as_arithmetic() -> None:
    html = WRAPPER.format("<p>Divide:</p><p>2 / 2</p><p>which is 1.</p>")
    assert html_to_markdown(html) == "Divide:\n\n2 / 2\n\nwhich is 1."


@pytest.mark.parametrize(
    ("captured", "expected"),
    [
        ("Write a story about the group.4 / 4", "Write a story about the group."),
        ("Please continue in 135 words3 / 3", "Please continue in 135 words"),
        ("isn't it? 2 / 2", "isn't it?"),
        ("Exclude weekends in your calculations\n2 / 2", "Exclude weekends in your calculations"),
        ("an advanced civilization1 / 2", "an advanced civilization"),
        (
            "What are 50 YouTube materials about ASEAN?\n \n \n \n 지금 번역하기",
            "What are 50 YouTube materials about ASEAN?",
        ),
        ("localization.지금 번역하기", "localization."),
        ("Translate thisCopy7 chars / 2 words", "Translate this"),
        ("Translate this.\n7 chars / 2 words", "Translate this."),
    ],
)
def test_user_turn_tail_noise_is_removed(captured: str, expected: str) -> None:
    assert strip_user_capture_noise(captured) == expected


MUST_KEEP = [
    "Copy the file to the server.",
    "Copy the 3 chars / 1 words later",
    "The string has 12 chars / 3 words",
    "Use 3 / 4 of the cups of flour.",
    "What is 3 / 4",
    "Simplify x+1 / 2",
    "Compute 3.1 / 2",
    "so the probability is 1 / 2",
    "30 / 216 = 5 / 36",
    "The answer is:\n\n1 / 2",
    "Experience: 0 / 100 XP",
    "1 / 2 cup flour",
]


@pytest.mark.parametrize("text", MUST_KEEP)
def test_prose_that_looks_like_noise_is_kept(text: str) -> None:
    assert strip_user_capture_noise(text) == text
    assert strip_assistant_capture_noise(text) == text
    paragraphs = "".join(f"<p>{p}</p>" for p in text.split("\n\n"))
    assert html_to_markdown(WRAPPER.format(paragraphs)) == text


# What a leak looks like: a widget's count or Korean link, or a counter at either end of a turn.
_LEAK = re.compile(
    r"\d+ chars [/|] \d+ words|지금 번역하기\s*\Z|\A\d{1,3} / \d{1,3}[^\s\d]"
    r"|(?:[^\s\d]\d{1,3} / \d{1,3}|\s(\d{1,3}) / \1)\s*\Z"
)


def test_no_noise_is_left_in_the_real_sample_and_no_answer_changes(sharegpt_sample_path: Path) -> None:
    # 104 user turns end with a counter and 64 with a widget in the real sample; none is left but
    # "ls /1 / 1" (after "/", where a fraction may be meant). No real answer is touched.
    with gzip.open(sharegpt_sample_path, "rt", encoding="utf-8") as f:
        values = [(t["from"], t["value"]) for record in json.load(f) for t in record["conversations"]]
    leaks = [v for role, v in values if role == "human" and _LEAK.search(strip_user_capture_noise(v))]
    assert [v[-9:] for v in leaks] == ["ls /1 / 1"]
    assert [v for role, v in values if role == "gpt" and strip_assistant_capture_noise(v) != v] == []
