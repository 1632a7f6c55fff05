"""The contamination report page and CSV: escaping, evidence highlighting, and a real headless Chromium."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from curation.contamination.report_html import (
    CSV_COLUMNS,
    contamination_report_html,
    flagged_pairs_csv,
    merge_spans,
)
from schemas.contamination import ContaminationReport, ReviewerDecision
from tests.helpers import browser
from tests.helpers.contamination_report import GSM8K_Q, MMLU_ANSWER, SCRIPT, sample_report


class _Page(HTMLParser):
    """Text, tag names and <mark> contents of an HTML document, as a browser would parse them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.marks: list[str] = []
        self.chunks: list[str] = []
        self._in_mark = 0
        self.feed(html)
        self.close()
        self.text = "".join(self.chunks)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "mark":
            self._in_mark += 1
            self.marks.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "mark":
            self._in_mark -= 1

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)
        if self._in_mark:
            self.marks[-1] += data


def test_merge_spans_sorts_merges_and_clamps() -> None:
    assert merge_spans([(5, 9), (0, 3), (2, 4), (8, 12), (20, 30), (-4, 1), (7, 7)], 22) == [(0, 4), (5, 12), (20, 22)]
    assert merge_spans([(3, 5), (5, 8)], 10) == [(3, 8)]
    assert merge_spans([(50, 60), (4, 2)], 10) == []


def _page_data(html: str) -> dict:
    """The pairs' data block of a page, as its script reads it."""
    block = re.search(r'<script type="application/json" id="pairs-data">(.*?)</script>', html, re.S)
    assert block is not None
    return json.loads(block.group(1))


def test_script_in_a_turn_cannot_leave_the_data_block() -> None:
    html = contamination_report_html(sample_report())
    # the page's own two scripts (data and code) and no other: the planted one is data, its < escaped
    assert html.lower().count("<script") == 2
    assert SCRIPT not in html and "\\u003cscript\\u003ealert(1)" in html
    data = _page_data(html)
    xss = next(p for p in data["pairs"] if p["conversation_id"] == "sharegpt-xss-0042")
    assert SCRIPT in xss["turn_text"] and xss["conversation"][1] == ["assistant", SCRIPT]
    assert xss["conversation_title"] == f"XSS question {SCRIPT}"


def test_page_is_self_contained_and_has_every_section() -> None:
    report = sample_report()
    html = contamination_report_html(report)
    assert html.startswith("<!DOCTYPE html>")
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    assert "<link" not in html and "@import" not in html and "url(" not in html and "fetch(" not in html
    text = _Page(html).text
    for needle in [
        report.run_id, report.created_at, "all-MiniLM-L6-v2", "drop_conversation", "near_verbatim ≥ 0.950",
        "rephrased ≥ 0.880", "n = 13, min coverage 0.50", "Totals", "11872", "Per benchmark and source",
        "14042", "1319", "Best scores", "threshold 0.80", "Flagged pairs (3)", "Reviewer decisions (2)",
        "not met in this run", "How to act on this", "conversation_id,benchmark,item_id,keep",
        "contamination.decisions_file", "Calibration", report.calibration, "Export decisions CSV",
        # this run's calibration figures
        "p50 0.310, p99 0.660, min 0.020, max 0.790", "Unflagged turns in [0.75, 0.80)",
    ]:  # fmt: skip
        assert needle in text, needle
    assert "<svg" in html and 'stroke-dasharray="5,3"' in html and "3 turns, 1 flagged" not in html
    assert "1 turns, 1 flagged" in html  # a bar of flagged turns, in red


def test_pairs_are_ordered_by_category_then_score_with_merged_spans() -> None:
    data = _page_data(contamination_report_html(sample_report()))
    ids = [p["conversation_id"] for p in data["pairs"]]
    assert ids == ["sharegpt-gsm8k-0001", "sharegpt-mmlu-0777", "sharegpt-xss-0042"]
    gsm8k, mmlu = data["pairs"][0], data["pairs"][1]
    # The GSM8K turn's two overlapping spans merge into one holding the whole question; clamped to the text.
    ((start, end),) = gsm8k["turn_spans"]
    assert gsm8k["turn_text"][start:end] == GSM8K_Q
    assert gsm8k["item_spans"] == [[0, len(GSM8K_Q)]]
    assert (mmlu["item_answer"], mmlu["cut_at"], len(mmlu["conversation"])) == (MMLU_ANSWER, 2, 4)


def test_empty_report_renders() -> None:
    html = contamination_report_html(sample_report(pairs=False))
    text = _Page(html).text
    assert "Flagged pairs (0)" in text and "Reviewer decisions (0)" in text
    assert _page_data(html)["pairs"] == []
    bare = ContaminationReport(
        run_id="r", created_at="t", model="m", device="cpu", threshold=0.8, near_verbatim_score=0.95,
        rephrased_score=0.88, ngram_n=13, ngram_min_coverage=0.5, action="drop_conversation", remove_categories=(),
    )  # fmt: skip
    assert "No score histogram" in _Page(contamination_report_html(bare)).text
    assert flagged_pairs_csv(bare) == ",".join(CSV_COLUMNS) + "\n"


def test_csv_round_trips_and_serves_as_a_decisions_template() -> None:
    report = sample_report()
    rows = list(csv.DictReader(io.StringIO(flagged_pairs_csv(report))))
    assert len(rows) == 3
    assert set(rows[0]) == set(CSV_COLUMNS) >= {"conversation_id", "benchmark", "item_id", "decision"}
    by_id = {r["conversation_id"]: r for r in rows}
    for p in report.pairs:
        row = by_id[p.conversation_id]
        assert row["turn_text"] == p.turn_text and row["item_text"] == p.item_text
        assert (row["benchmark"], row["item_id"], row["category"], row["action"]) == (
            p.benchmark, p.item_id, p.category, p.action,
        )  # fmt: skip
        assert float(row["score"]) == pytest.approx(p.score) and int(row["turn_index"]) == p.turn_index
        assert row["decision"] == (p.decision or "")
    # A reviewer fills in the decision column and the rows load as decisions.
    row = dict(by_id["sharegpt-mmlu-0777"], decision="keep")
    keep = ReviewerDecision.model_validate({k: row[k] for k in ("conversation_id", "benchmark", "item_id", "decision")})
    assert keep.decision == "keep" and keep.item_id == "anatomy/3"


# --- real headless Chromium ---------------------------------------------------------------------------------------


def test_missing_chromium_skips_or_fails_when_required(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CHATSIFT_REQUIRE_SHARED", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        browser.chromium_binary()
    monkeypatch.setenv("CHATSIFT_REQUIRE_SHARED", "1")
    with pytest.raises(pytest.fail.Exception, match="chromium is missing"):
        browser.chromium_binary()


def _run_chromium(binary: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", *args,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _png_colours(path: Path) -> int | None:
    """Distinct colours in the image (capped at 256), or None when Pillow is not installed."""
    try:
        from PIL import Image
    except ImportError:
        return None
    with Image.open(path) as img:
        colours = img.convert("RGB").getcolors(maxcolors=256)
    return 256 if colours is None else len(colours)


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    binary = browser.chromium_binary()
    report = sample_report()
    page = tmp_path / "report.html"
    page.write_text(contamination_report_html(report), encoding="utf-8")
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>", encoding="utf-8")

    shot, blank_shot = tmp_path / "report.png", tmp_path / "blank.png"
    _run_chromium(binary, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    _run_chromium(binary, tmp_path, f"--screenshot={blank_shot}", "--window-size=1280,2000", blank.as_uri())
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 2000)
    assert len(data) > 3 * blank_shot.stat().st_size and len(data) > 50_000
    # Without Pillow the size comparison above stands in: a flat page compresses to almost nothing.
    colours, blank_colours = _png_colours(shot), _png_colours(blank_shot)
    if colours is not None:
        assert colours >= 16 and blank_colours == 1, (colours, blank_colours)

    dom = _run_chromium(binary, tmp_path, "--dump-dom", page.as_uri()).stdout
    rendered = _Page(dom)
    # the page's script rendered every pair as text (and dropped the parsed data block): the planted <script>
    # is no element of the page
    assert rendered.tags.count("script") == 1 and SCRIPT in rendered.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    for p in report.pairs:
        assert p.conversation_id in rendered.text and p.item_id in rendered.text
        assert p.turn_text[:40] in rendered.text and p.item_text[-40:] in rendered.text
    assert GSM8K_Q in rendered.marks and rendered.marks.count("pituitary gland") == 2 and len(rendered.marks) == 4
    assert "<mark>pituitary gland</mark>" in dom
    assert "Reference answer" in rendered.text and "cut here: turns 2 to 3 are removed" in rendered.text
    assert "Showing 1-3 of 3 pairs" in rendered.text and "your decision: keep" in rendered.text
    assert f"Title: XSS question {SCRIPT}" in rendered.text  # the planted title is text too


def test_five_thousand_pairs_open_a_page_at_a_time(tmp_path: Path) -> None:
    """At 5,000 flagged pairs the page renders its first 50, and the pager and the filters work on all of
    them (bench.report measures its size and time to open on real data)."""
    binary = browser.chromium_binary()
    one = sample_report().pairs[1]
    kinds = ("similar", "rephrased")
    pairs = [
        one.model_copy(update={"conversation_id": f"c{k}", "score": 0.8 + k % 100 / 1000, "category": kinds[k % 2]})
        for k in range(5000)
    ]
    page = tmp_path / "report.html"
    page.write_text(contamination_report_html(sample_report().model_copy(update={"pairs": pairs})), encoding="utf-8")
    rendered = _Page(_run_chromium(binary, tmp_path, "--dump-dom", page.as_uri()).stdout)
    assert "Showing 1-50 of 5000 pairs (5000 flagged)" in rendered.text and "page 1 of 100" in rendered.text
    # highest score first: the 50 pairs at 0.899 (c99, c199, ...), ties in the report's order; not c0 (0.800)
    assert rendered.text.index("conversation c199 ") < rendered.text.index("conversation c299 ")
    assert "conversation c0 " not in rendered.text and len(re.findall(r"conversation c\d+ ", rendered.text)) == 50
