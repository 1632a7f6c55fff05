"""The scrape flow against a local server on 127.0.0.1 that misbehaves on purpose (tests/scrape_server.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from curation.ingest.read import list_input_files, read_conversations
from flows.scrape import scrape_flow
from schemas import Conversation, Dropped
from schemas.config import CurationConfig, IngestConfig
from tests.conftest import REPO_ROOT
from tests.helpers.scrape_server import MisbehavingServer
from tests.helpers.terminal import terminal_text

pytestmark = pytest.mark.slow

KINDS = ("ok", "rl", "er", "ea", "sf", "sl", "tr", "rx", "ry", "hg", "hs", "bu", "nf", "go", "bl", "cl", "em", "nd")
INVALID_LINES = ["../../etc/passwd", "a/b", "..", "x" * 200, "wN\\BG8"]


@pytest.fixture(scope="module")
def server(sharegpt_sample: list[dict]) -> Iterator[MisbehavingServer]:
    ids = {}

    def conversation_for(page_id: str) -> dict:
        return sharegpt_sample[ids.setdefault(page_id, len(ids) % len(sharegpt_sample))]

    with MisbehavingServer(conversation_for) as s:
        yield s


def _config(port: int, **scrape: Any) -> CurationConfig:
    data = CurationConfig().model_dump(mode="json")
    data["scrape"] |= {
        "allowed_hosts": ["127.0.0.1"],
        "url_template": f"http://127.0.0.1:{port}/c/{{id}}",
        "concurrency": 8,
        "per_host_rate": 0,
        # The head of an ordinary page must come in time even while the suite loads both cores and
        # this process's server threads stream the 60 MB pages; only "sl"/"sf" (SLOW_SECONDS) miss it.
        "timeout_s": 3.0,
        "max_tries": 3,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        **scrape,
    }
    return CurationConfig.model_validate(data)


def _journal(out: Path) -> list[dict]:
    lines = (out / "store" / "journal.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _latest(out: Path) -> dict[str, dict]:
    return {r["page_id"]: r for r in _journal(out)}


def test_every_id_is_accounted_for_and_the_good_pages_parse(
    tmp_path: Path, prefect_server: None, server: MisbehavingServer
) -> None:
    ids = [f"{kind}{i:05d}" for kind in KINDS for i in range(2)]
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids + INVALID_LINES + [ids[0]]) + "\n")
    out = tmp_path / "scrapes"
    summary = scrape_flow(ids_file=ids_file, out_dir=out, config=_config(server.port))

    latest = _latest(out)
    outcome = {i: (latest[i]["outcome"], latest[i]["reason"]) for i in ids}
    for i in ids:
        kind = i[:2]
        if kind in ("ok", "rl", "er", "sf", "ry", "bu"):
            assert outcome[i] == ("fetched", None), i
        elif kind in ("ea", "sl"):
            assert outcome[i] == ("failed", "fetch_failed"), i
            assert latest[i]["tries"] == 3
        elif kind == "tr":
            assert outcome[i][0] == "failed" and outcome[i][1] in ("truncated_body", "fetch_failed"), i
            assert latest[i]["tries"] == 3
        elif kind == "rx":
            assert outcome[i][1] == "redirect_off_allowlist", i
        elif kind in ("hg", "hs"):
            assert outcome[i][1] == "page_too_large", i
        elif kind in ("cl", "em", "nd"):
            assert outcome[i] == ("failed", "empty_input" if kind == "em" else "no_next_data"), i
            assert latest[i]["tries"] == 1, "a whole answer is not asked again in the same run"
        else:
            expected = {"nf": ("not_found", "not_found"), "go": ("gone", "gone"), "bl": ("blocked", "blocked")}
            assert outcome[i] == expected[kind], i
    assert latest["er00000"]["tries"] == 3 and latest["rl00000"]["tries"] == 2 and latest["sf00000"]["tries"] == 2
    first, second = server.times("rl00000")[:2]
    assert second - first >= 0.95, "Retry-After: 1 was honoured"
    hits = server.hits()
    assert hits["hg00000"] == 1 and hits["hs00000"] == 1, "a page over the size cap is not retried"
    assert hits["nf00000"] == 1 and hits["go00000"] == 1 and hits["bl00000"] == 1
    assert hits["ok00000"] == 1, "a repeated id is fetched once"

    # the ledger: every id that was not fetched, and every invalid line, with its reason
    ledger = pl.read_parquet(out / summary["run_id"] / "ledger" / "*.parquet")
    not_fetched = {i for i in ids if outcome[i][0] != "fetched"}
    assert set(ledger.filter(pl.col("reason") != "invalid_id")["conversation_id"]) == not_fetched
    assert ledger.filter(pl.col("reason") == "invalid_id").height == len(INVALID_LINES)
    assert set(ledger["stage"]) == {"scrape"}
    fetched = [i for i in ids if outcome[i][0] == "fetched"]
    assert summary["outcomes"]["fetched"] == len(fetched) and len(fetched) + ledger.height == len(ids) + len(
        INVALID_LINES
    )

    # the fetched pages are saved pages for ingest, with the URL and fetch time as provenance
    pages = list(list_input_files(Path(summary["pages_dir"])))
    assert sorted(p.name for p in pages) == sorted(f"{i}.html" for i in fetched)
    records = [r for p in pages for r in read_conversations(p, config=IngestConfig())]
    convs = [r for r in records if isinstance(r, Conversation)]
    drops = [r for r in records if isinstance(r, Dropped)]
    assert sorted(c.id.split("_")[0] for c in convs) == sorted(i for i in fetched if not i.startswith("bu"))
    assert {d.reason for d in drops} == {"invalid_utf8"}
    for c in convs:
        page_id = c.id.split("_")[0]
        assert c.provenance.url == f"http://127.0.0.1:{server.port}/c/{page_id}" or page_id.startswith("ry")
        assert c.provenance.fetched_at == latest[page_id]["fetched_at"]
        assert len(c.turns) >= 2


def test_an_ids_file_that_is_not_utf8_loses_only_its_bad_lines(
    tmp_path: Path, prefect_server: None, server: MisbehavingServer
) -> None:
    ids_file = tmp_path / "ids.txt"
    ids_file.write_bytes(b"ok00020\n\xff\xfeok00021\nok00022\r\nok\xe900023\nok00024\n")
    out = tmp_path / "scrapes"
    summary = scrape_flow(ids_file=ids_file, out_dir=out, config=_config(server.port))
    assert summary["outcomes"] == {"fetched": 3, "invalid": 2}
    ledger = pl.read_parquet(out / summary["run_id"] / "ledger" / "*.parquet").sort("record_index")
    assert ledger["conversation_id"].to_list() == ["ids.txt#1", "ids.txt#3"]
    assert set(ledger["reason"]) == {"invalid_id"}
    assert [d[:17] for d in ledger["detail"]] == ["line 2: not UTF-8", "line 4: not UTF-8"]


def test_a_rerun_fetches_nothing_twice(tmp_path: Path, prefect_server: None, server: MisbehavingServer) -> None:
    ids = [f"{kind}{i:05d}" for kind in ("ok", "nf", "go", "bl", "ea") for i in range(10, 14)]
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    out = tmp_path / "scrapes"
    scrape_flow(ids_file=ids_file, out_dir=out, config=_config(server.port))
    before = server.hits()
    again = scrape_flow(ids_file=ids_file, out_dir=out, config=_config(server.port))
    after = server.hits()
    for i in ids:
        if i.startswith("ea"):
            assert after[i] > before[i], "a failed page is tried again on a re-run"
        else:
            assert after[i] == before[i] == 1, i
    assert again["outcomes"]["fetched"] == 4 and again["fetched_now"] == 0 and again["fetched_from_store"] == 4


def test_a_killed_scrape_resumes_without_fetching_a_finished_page_again(
    tmp_path: Path, prefect_server: None, sharegpt_sample: list[dict]
) -> None:
    """SIGKILL to a running `chatsift scrape`, then the same command again.

    A page whose request was in flight at the kill may be requested again (nothing recorded it
    as fetched); a page recorded as fetched before the kill is never requested again.
    """
    from prefect.settings import PREFECT_API_URL

    ids = [f"ok{i:05d}" for i in range(500, 700)]
    with MisbehavingServer(lambda pid: sharegpt_sample[int(pid[2:]) % 3000], ok_delay=0.05) as server:
        ids_file = tmp_path / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
        config_file = tmp_path / "config.json"
        config_file.write_text(_config(server.port, concurrency=4, timeout_s=5).model_dump_json())
        out = tmp_path / "scrapes"
        command = [sys.executable, "-m", "flows.cli", "scrape", "--ids", str(ids_file), "--out", str(out)]
        command += ["--config", str(config_file)]
        env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
        log = open(tmp_path / "scrape.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        journal = out / "store" / "journal.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if journal.exists() and len(journal.read_text().splitlines()) >= 40:
                break
            time.sleep(0.02)
        assert process.poll() is None, (tmp_path / "scrape.log").read_text()
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        done_before = {r["page_id"] for r in _journal(out) if r["outcome"] == "fetched"}
        hits_before = server.hits()
        assert 40 <= len(done_before) < len(ids)

        resumed = subprocess.run(
            [*command, "--progress", "on"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
        # the terminal's bar counts the listed pages
        assert f"{len(ids)}/{len(ids)} pages" in terminal_text(resumed.stderr)
        hits_after = server.hits()
    assert all(hits_after[i] == hits_before[i] == 1 for i in done_before), "no finished page fetched twice"
    latest = _latest(out)
    assert set(latest) == set(ids) and all(r["outcome"] == "fetched" for r in latest.values()), "none lost"
    fetched_lines = [r["page_id"] for r in _journal(out) if r["outcome"] == "fetched"]
    assert len(fetched_lines) == len(set(fetched_lines)) == len(ids), "each page recorded once"
    pages = list(list_input_files(out / "pages"))
    assert sorted(p.stem for p in pages) == sorted(ids), "every page written once"


def test_the_per_host_rate_limit_spaces_requests(
    tmp_path: Path, prefect_server: None, server: MisbehavingServer
) -> None:
    ids = [f"ok{i:05d}" for i in range(100, 120)]
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    summary = scrape_flow(ids_file=ids_file, out_dir=tmp_path / "s", config=_config(server.port, per_host_rate=10))
    assert summary["outcomes"] == {"fetched": 20}
    times = sorted(t for i in ids for t in server.times(i))
    # 10 request starts/s however many requests may be open at once. The server sees arrivals, and a
    # request can wait a moment for a pooled connection after its slot, so one gap may shrink: check
    # the median gap and that no 11 requests ever arrive within 0.85 s (without the limit, 20 take ~50 ms).
    gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False))
    windows = [b - a for a, b in zip(times, times[10:], strict=False)]
    assert len(times) == 20 and 0.095 <= gaps[len(gaps) // 2] <= 0.13, gaps
    assert min(windows) >= 0.85, windows
    assert times[-1] - times[0] >= 1.8
