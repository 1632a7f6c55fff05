"""`chatsift runs show RUN`: the run's explore.html, opened from file:// in headless Chromium with no network, with
a sampled drop for every reason the run dropped for, and planted <script> tags shown as text. Screenshots are
kept in test-artifacts/explore/."""

from __future__ import annotations

import json
import re
import subprocess
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from demo.inputs import DEMO_CONFIG, write_demo_inputs
from flows.cli import main
from schemas import RunReport
from tests.helpers import browser

SCRIPT = "<script>alert('x')</script>"


class _Text(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.chunks: list[str] = []
        self.feed(html)
        self.text = "".join(self.chunks)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, prefect_server: None) -> Path:
    root = tmp_path_factory.mktemp("show")
    inputs = write_demo_inputs(root / "in")
    planted = root / "in" / "planted.json"
    # a title and a turn holding a script, twice: one is dropped as an exact duplicate of the other
    turns = [{"from": "human", "value": f"What does {SCRIPT} do in a page?"}, {"from": "gpt", "value": "It runs."}]
    records = [{"id": name, "title": f"title {SCRIPT}", "conversations": turns} for name in ("xss-kept", "xss-copy")]
    planted.write_text(json.dumps(records))
    config = root / "config.json"
    # the map on curate's page too, so the two pages can be compared ([run] explore_map is off by default)
    with_map = DEMO_CONFIG.model_copy(update={"run": DEMO_CONFIG.run.model_copy(update={"explore_map": True})})
    config.write_text(with_map.model_dump_json())
    argv = ["curate", *map(str, inputs), str(planted), "--out", str(root / "runs"), "--run-id", "r"]
    assert main([*argv, "--config", str(config), "--progress", "off"]) == 0
    return root / "runs" / "r"


def test_runs_show_writes_one_offline_page_with_every_text_escaped(run_dir: Path) -> None:
    # curate wrote the page itself ([run] explore_page, on by default), named in its report
    report = RunReport.model_validate_json((run_dir / "report.json").read_text())
    assert report.outputs["explore"] == str(run_dir / "explore.html")
    written_by_curate = (run_dir / "explore.html").read_text()
    assert main(["runs", "show", str(run_dir)]) == 0
    html = (run_dir / "explore.html").read_text()
    # the same page from the same files: the same text, and the same points with the same classes (UMAP is seeded,
    # but its float sums may round a last digit apart)
    assert _without_coordinates(html) == _without_coordinates(written_by_curate)
    assert "<script" not in html.lower() and SCRIPT not in html  # no script at all; the planted ones escaped
    assert not re.search(r"(src|href)=\"(https?:)?//", html) and "url(" not in html
    page = _Text(html)
    assert f"title: title {SCRIPT}" in page.text and SCRIPT in page.text
    # duplicates beside their kept copy, with the Jaccard and the words only one side has marked
    assert "<th>dropped: demoH3i4_0</th><th>kept: demoA1b2_0</th>" in html and "<del>" in html and "<ins>" in html
    near = html[html.index("<code>near_duplicate</code>") :]
    assert re.match(r"<code>near_duplicate</code> · Jaccard 0\.[5-9]\d\d", near)
    # the planted pair (dedupe keeps one of the two), its script escaped
    assert re.search(r"<th>dropped: xss-(copy|kept)</th><th>kept: xss-(copy|kept)</th>", html)
    # the split conversation and its pieces, in order
    splits = page.text[page.text.index("Split conversations and their pieces") :]
    assert "demoA1b2_0 · 2 pieces" in splits and splits.index("piece 0") < splits.index("piece 1")
    # tokens per conversation and per role, before curation (stages/clean/) and after, with the sample said
    for title in ("tokens per conversation (turn text)", "tokens per user turn", "tokens per assistant turn"):
        chart = html[html.index(f'aria-label="{title}"') :]
        chart = chart[: chart.index("</svg>")]
        assert "■ before (" in chart and "■ after (" in chart, title
    kept = pl.scan_parquet(run_dir / "conversations" / "*.parquet").select(pl.len()).collect().item()
    assert f"after: all {kept} conversations" in page.text and "mistral-7b-v0.1" in page.text


def _without_coordinates(html: str) -> str:
    return re.sub(r' cx="[\d.]+" cy="[\d.]+"', "", html)


def test_the_map_holds_a_point_per_kept_conversation_and_the_drops_as_layers(run_dir: Path) -> None:
    html = (run_dir / "explore.html").read_text()
    kept = pl.read_parquet(run_dir / "conversations" / "*.parquet")
    points = re.findall(r'<circle class="([^"]*)" cx="[\d.]+" cy="[\d.]+"><title>([^<]*)</title>', html)
    kept_points = {title.split(" · ")[0]: classes.split() for classes, title in points if classes.startswith("k ")}
    assert set(kept_points) == set(kept["id"]) and len(kept_points) == kept.height
    assert f"kept: all {kept.height} conversations; {kept.height} points." in html
    # every kept point has a source, a model and a cluster colour; hovering shows its first user turn
    assert all(len(classes) == 4 for classes in kept_points.values())
    for row in kept.head(5).iter_rows(named=True):
        first = next(t["content"] for t in row["turns"] if t["role"] == "user")
        hover = next(t for c, t in points if t.startswith(f"{row['id']} · kept · "))
        assert escape(" ".join(first.split())[:60]) in hover
    # the conversations the contamination check flagged, and those other stages dropped, on layers of their own
    ledger = pl.read_parquet(run_dir / "ledger" / "*.parquet")
    flagged = set(ledger.filter(pl.col("stage") == "contamination")["conversation_id"])
    contaminated = {t.split(" · ")[0] for c, t in points if c == "x"}
    assert flagged and contaminated == flagged
    assert any(c == "d" for c, _ in points)
    assert "colour by" in html and 'id="by-cluster"' in html and "#show-dropped:not(:checked)~svg .d" in html


def test_the_page_shows_a_sampled_drop_for_every_reason(run_dir: Path, tmp_path: Path) -> None:
    """Opened from file:// in headless Chromium (no network): each reason of the report has its section with
    one of the ledger's conversations of that reason, as text."""
    assert main(["runs", "show", str(run_dir)]) == 0
    page = (run_dir / "explore.html").as_uri()
    binary = browser.chromium_binary()
    common = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    dom = subprocess.run([*common, "--dump-dom", page], capture_output=True, text=True, timeout=60, check=True).stdout
    shown = _Text(dom).text
    report = RunReport.model_validate_json((run_dir / "report.json").read_text())
    ledger = pl.read_parquet(run_dir / "ledger" / "*.parquet").filter(pl.col("scope") == "conversation")
    reasons = [(s.stage, reason) for s in report.stages for reason in s.dropped_by_reason]
    assert len(reasons) >= 8
    for stage, reason in reasons:
        heading = f"{stage}: {reason} ("
        assert heading in shown, heading
        section = shown[shown.index(heading) :]
        ids = ledger.filter((pl.col("stage") == stage) & (pl.col("reason") == reason))["conversation_id"].to_list()
        assert any(i in section[:4000] for i in ids), (stage, reason)
    # text from the stage outputs where the run kept it, from the input's bytes where it did not
    assert "text from stages/clean/" in shown and "the input's raw bytes" in shown
    shot = browser.kept_artifacts_dir("explore") / "explore.png"
    subprocess.run([*common, f"--screenshot={shot}", "--window-size=1280,2400", page], timeout=60, check=True,
                   capture_output=True)  # fmt: skip
    assert shot.stat().st_size > 50_000


def test_the_map_in_the_browser_colours_and_hides_its_layers(run_dir: Path, tmp_path: Path) -> None:
    """In headless Chromium from file://: one point per kept conversation as the page states, a colouring picked by
    its radio button and a layer hidden by its check box, with no script on the page (CSS alone)."""
    kept = pl.scan_parquet(run_dir / "conversations" / "*.parquet").select(pl.len()).collect().item()
    with browser.Browser(tmp_path / "profile", width=1280, height=1000) as page:
        page.goto((run_dir / "explore.html").as_uri())
        assert page.evaluate("document.querySelectorAll('svg.map circle.k').length") == kept
        assert f"kept: all {kept} conversations; {kept} points." in page.text()
        # every histogram's legend: "before (N)" ends left of "after (N)" (they once overlapped at 4 digits)
        legends = (
            "[...document.querySelectorAll('svg[aria-label] text[text-anchor=end]')].map(t => "
            "[...t.querySelectorAll('tspan')].map(s => { const r = s.getBoundingClientRect(); "
            "return [r.left, r.right]; }))"
        )
        boxes = page.evaluate(legends)
        assert len(boxes) >= 6 and all(len(b) == 1 or b[0][1] <= b[1][0] for b in boxes)
        fills = "[...document.querySelectorAll('svg.map circle.k')].map(c => getComputedStyle(c).fill)"
        clusters = "new Set([...document.querySelectorAll('svg.map circle.k')].map(c => c.classList[3])).size"
        by_source = page.evaluate(fills)
        page.evaluate("document.getElementById('by-cluster').click()")
        by_cluster = page.evaluate(fills)
        # a colour per cluster, none of them the unpicked grey
        assert by_cluster != by_source and len(set(by_cluster)) == page.evaluate(clusters) >= 2
        assert "rgb(173, 181, 189)" not in by_cluster
        legend = "getComputedStyle(document.querySelector('.legend-cluster')).display"
        assert page.evaluate(legend) == "flex"
        dropped = "getComputedStyle(document.querySelector('svg.map circle.d')).display"
        assert page.evaluate(dropped) != "none"
        page.evaluate("document.getElementById('show-dropped').click()")
        assert page.evaluate(dropped) == "none"
        page.evaluate("document.getElementById('show-dropped').click()")
        page.evaluate("document.getElementById('map').scrollIntoView()")
        shot = page.screenshot(browser.kept_artifacts_dir("explore") / "explore-map.png")
    assert shot.stat().st_size > 20_000
